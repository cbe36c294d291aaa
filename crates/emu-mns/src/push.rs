//! HTTP push of receipts (the vendor's alternative to the queues): every receipt delivered to a
//! tenant's queue is also POSTed, as a JSON array of one report, to each configured URL for its
//! tenant and message type. A delivery succeeds on a 2xx answer whose JSON body, if it has a
//! `code`, says `0` (the vendor asks for `{"code":0,"msg":"成功"}`); otherwise it is retried with
//! exponential backoff on the emulator clock. Every attempt is an event `receipt.push`.

use std::sync::Arc;

use emu_core::TenantId;
use emu_core::events::NewEvent;
use serde_json::{Value, json};

use crate::Mns;

pub use emu_core::config::PushTarget;

/// Starts one background push per matching target.
pub(crate) fn start(
    mns: &Arc<Mns>,
    tenant: TenantId,
    message_type: &str,
    message_id: &str,
    json: &[u8],
    channel_id: Option<String>,
) {
    let tenant_name = mns.shared.tenants.get(tenant).name.clone();
    let targets: Vec<PushTarget> =
        mns.push_targets().into_iter().filter(|t| t.matches(&tenant_name, message_type)).collect();
    if targets.is_empty() {
        return;
    }
    // Read back only for a push (the queue holds the text): most runs configure none.
    let body: Value = serde_json::from_slice(json).unwrap_or_default();
    for target in targets {
        let job = Job {
            mns: mns.clone(),
            tenant: tenant_name.clone(),
            message_type: message_type.to_string(),
            message_id: message_id.to_string(),
            payload: json!([body]),
            channel_id: channel_id.clone(),
            url: target.url,
        };
        tokio::spawn(job.run());
    }
}

struct Job {
    mns: Arc<Mns>,
    tenant: std::sync::Arc<str>,
    message_type: String,
    message_id: String,
    payload: Value,
    channel_id: Option<String>,
    url: String,
}

impl Job {
    async fn run(self) {
        let max = self.mns.config().push_max_attempts.max(1);
        let mut backoff = self.mns.config().push_backoff_ms;
        for attempt in 1..=max {
            let (status, ok, error) = self.attempt().await;
            let last = ok || attempt == max;
            let retry_in = (!last).then_some(backoff);
            self.mns.shared.events.record(NewEvent {
                kind: "receipt.push",
                channel_id: self.channel_id.clone(),
                tenant: Some(self.tenant.clone()),
                detail: json!({
                    "url": self.url,
                    "messageType": self.message_type,
                    "messageId": self.message_id,
                    "attempt": attempt,
                    "status": status,
                    "ok": ok,
                    "error": error,
                    "retryInMs": retry_in,
                })
                .into(),
                ..Default::default()
            });
            if ok {
                tracing::debug!(url = %self.url, attempt, "receipt pushed");
                return;
            }
            tracing::info!(url = %self.url, attempt, status, error = ?error, "receipt push failed");
            let Some(wait) = retry_in else { return };
            let clock = &self.mns.shared.clock;
            if !crate::sleep_until(clock, self.mns.closing(), clock.now_ms() + wait).await {
                return;
            }
            backoff = backoff.saturating_mul(2);
        }
    }

    /// (HTTP status, success, error text)
    async fn attempt(&self) -> (Option<u16>, bool, Option<String>) {
        let resp = self.mns.http_client().post(&self.url).json(&self.payload).send().await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return (None, false, Some(e.to_string())),
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return (Some(status), false, Some(format!("HTTP {status}: {}", truncate(&text))));
        }
        match serde_json::from_str::<Value>(&text).ok().and_then(|v| v.get("code").cloned()) {
            None => (Some(status), true, None),
            Some(code) if code == json!(0) || code == json!("0") => (Some(status), true, None),
            Some(code) => {
                (Some(status), false, Some(format!("the receiver answered code {code}: {}", truncate(&text))))
            }
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}
