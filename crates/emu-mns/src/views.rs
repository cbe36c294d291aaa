//! What the admin API shows of the service: queues, their messages (peeked: nothing
//! changes), the HTTP push targets.

use serde::Serialize;

use super::*;

/// A queue as the admin API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueView {
    pub tenant: String,
    pub name: String,
    pub attributes: QueueAttrs,
    pub create_time: Millis,
    pub last_modify_time: Millis,
    pub active_messages: usize,
    pub inactive_messages: usize,
    pub delay_messages: usize,
}

/// A message as the admin API shows it (peeked: nothing changes).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub message_id: String,
    /// `active`, `inactive` (received, invisible) or `delayed`.
    pub state: &'static str,
    pub body: String,
    /// The body base64-decoded and parsed, when it is base64 JSON (alicom receipts are).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoded: Option<serde_json::Value>,
    pub body_md5: String,
    pub priority: u8,
    pub enqueue_time: Millis,
    pub next_visible_time: Millis,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_dequeue_time: Option<Millis>,
    pub dequeue_count: u32,
}

impl Mns {
    /// The HTTP push targets in force.
    pub fn push_targets(&self) -> Vec<PushTarget> {
        self.push_targets.read().clone()
    }

    /// Replaces the HTTP push targets (until the next reset).
    pub fn set_push_targets(&self, targets: Vec<PushTarget>) {
        *self.push_targets.write() = targets;
    }

    /// Every queue (of one tenant, or of all), sorted by tenant then name.
    pub fn queues(&self, tenant: Option<TenantId>) -> Vec<QueueView> {
        let now = self.now();
        let mut v: Vec<(TenantId, QueueView)> = self
            .queues
            .iter()
            .filter(|e| tenant.is_none_or(|t| e.key().tenant == t))
            .map(|e| {
                let cell = e.value();
                let mut st = cell.state.lock();
                self.tick(cell, &mut st, now);
                let c = st.counts(now);
                (
                    cell.tenant,
                    QueueView {
                        tenant: self.tenant_name(cell.tenant),
                        name: st.name.clone(),
                        attributes: st.meta.attrs.clone(),
                        create_time: st.meta.create_time,
                        last_modify_time: st.meta.last_modify_time,
                        active_messages: c.active,
                        inactive_messages: c.inactive,
                        delay_messages: c.delayed,
                    },
                )
            })
            .collect();
        v.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
        v.into_iter().map(|(_, q)| q).collect()
    }

    /// The messages of a queue (without consuming them): active ones in delivery order first.
    pub fn messages(&self, tenant: TenantId, name: &str) -> Result<Vec<MessageView>, MnsError> {
        use base64::Engine;
        let cell = self.cell(tenant, name)?;
        let now = self.now();
        let mut st = self.lock(&cell)?;
        self.tick(&cell, &mut st, now);
        Ok(st
            .all_messages()
            .into_iter()
            .map(|m| MessageView {
                state: m.state(now),
                body_md5: m.body_md5(),
                decoded: base64::engine::general_purpose::STANDARD
                    .decode(m.body.as_bytes())
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok()),
                message_id: m.id,
                body: m.body,
                priority: m.priority,
                enqueue_time: m.enqueue_time,
                next_visible_time: m.visible_at,
                first_dequeue_time: m.first_dequeue_time,
                dequeue_count: m.dequeue_count,
            })
            .collect())
    }

    /// Finds a queue by name in one tenant or, without one, in the first tenant that has it.
    pub fn find_queue(&self, tenant: Option<TenantId>, name: &str) -> Option<TenantId> {
        match tenant {
            Some(t) => self.queues.contains_key(&QueueKey { tenant: t, name: name.to_string() }).then_some(t),
            None => self
                .shared
                .tenants
                .all()
                .iter()
                .map(|t| t.id)
                .find(|t| self.queues.contains_key(&QueueKey { tenant: *t, name: name.to_string() })),
        }
    }
}
