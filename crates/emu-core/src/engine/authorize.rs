//! The customer's callbacks: outbound authorisation and inbound routing, and the plan check.

use crate::json_path::at;
use serde_json::{Value, json};

use super::call::CallState;
use super::plan::{self, Callee};
use super::ringing::callee_target;
use super::*;

impl Engine {
    pub(super) fn callback(
        &mut self,
        channel_id: &str,
        tenant: TenantId,
        kind: CallbackKind,
        url: String,
        body: Value,
        now: Millis,
    ) {
        self.timer(now + self.cfg.callback_timeout_ms, Timer::Callback { channel_id: channel_id.into() });
        self.out.push(Output::Callback { channel_id: channel_id.into(), tenant, kind, url, body });
    }

    pub(super) fn on_callback(
        &mut self,
        channel_id: &str,
        kind: CallbackKind,
        result: Result<Value, CallbackFailure>,
        now: Millis,
    ) {
        let expected = match kind {
            CallbackKind::Outbound => CallState::Authorizing,
            CallbackKind::Inbound => CallState::Routing,
        };
        let Some(call) = self.calls.get(channel_id).filter(|c| c.state == expected) else {
            tracing::info!(channel_id, ?kind, "late callback answer ignored");
            return;
        };
        let tenant = call.tenant;
        let success = |v: &Value| {
            matches!(v.get("success"), Some(Value::Bool(true)))
                || v.get("success").and_then(Value::as_str) == Some("true")
        };
        self.log(
            channel_id,
            "callback.answer",
            json!({"kind": kind, "result": match &result { Ok(v) => v.clone(), Err(e) => json!({"error": e.to_string()}) }}),
        );
        match (kind, result) {
            (CallbackKind::Outbound, Ok(v)) if success(&v) => {
                let call = self.calls.get_mut(channel_id).expect("present");
                if let Some(limit) = at(&v, "/model/timeLimit")
                    .and_then(|t| t.as_u64().or_else(|| t.as_str().and_then(|s| s.parse().ok())))
                {
                    call.time_limit_secs = Some(limit);
                }
                if let Some(rec) = at(&v, "/model/needRecord").and_then(Value::as_bool) {
                    call.need_record = rec;
                }
                self.ring_next_sequence(channel_id, now);
            }
            (CallbackKind::Outbound, Ok(v)) => {
                let msg = v
                    .get("message")
                    .and_then(Value::as_str)
                    .filter(|m| !m.is_empty())
                    .unwrap_or("call not allowed")
                    .to_string();
                self.refuse(channel_id, codes::NO_PERMISSION, &msg, now);
            }
            (CallbackKind::Outbound, Err(why)) => {
                tracing::warn!(channel_id, "outbound callback failed: {why}");
                self.refuse(channel_id, codes::SERVER_ERROR, &format!("outbound callback failed: {why}"), now);
            }
            (CallbackKind::Inbound, Ok(v)) if success(&v) => {
                let model = v.get("model").cloned().unwrap_or(Value::Null);
                match plan::parse(&model) {
                    Ok(p) => {
                        let valid = self.check_plan(tenant, p);
                        let call = self.calls.get_mut(channel_id).expect("present");
                        call.warnings.extend(valid.warnings);
                        call.time_limit_secs = model
                            .get("timeLimit")
                            .and_then(|t| t.as_u64().or_else(|| t.as_str().and_then(|s| s.parse().ok())));
                        call.need_record = model.get("needRecord").and_then(Value::as_bool).unwrap_or(false);
                        call.requested = valid
                            .sequences
                            .iter()
                            .flat_map(|g| &g.callees)
                            .map(|c| callee_target(c, call.display_number.as_deref()))
                            .collect();
                        call.pending_sequences = valid.sequences;
                        if call.pending_sequences.is_empty() {
                            return self.not_connected(channel_id, "the routing plan has no usable callee", now);
                        }
                        self.ring_next_sequence(channel_id, now);
                    }
                    Err(e) => self.not_connected(channel_id, &format!("inbound callback answer unusable: {e}"), now),
                }
            }
            (CallbackKind::Inbound, Ok(_)) => {
                self.not_connected(channel_id, "the inbound callback refused the call", now)
            }
            (CallbackKind::Inbound, Err(why)) => {
                self.not_connected(channel_id, &format!("inbound callback failed: {why}"), now)
            }
        }
    }

    /// Drops PSTN callees whose presenting number the tenant does not own.
    pub(super) fn check_plan(&self, tenant: TenantId, mut p: plan::Plan) -> plan::Plan {
        let r = &self.routing[tenant.0];
        let mut dropped = Vec::new();
        for group in &mut p.sequences {
            group.callees.retain(|c| match c {
                Callee::Pstn { platform_number, self_line, phone_number } => {
                    let ok = r.numbers.contains_key(platform_number) || self_line.as_ref().is_some_and(|l| r.self_lines.contains(l));
                    if !ok {
                        dropped.push(format!("PSTN callee {phone_number}: {platform_number:?} is not a bought number of this account; skipped"));
                    }
                    ok
                }
                Callee::Voip { .. } => true,
            });
        }
        p.sequences.retain(|g| !g.callees.is_empty());
        p.warnings.extend(dropped);
        p
    }
}
