//! The MNS queue service (docs/mns.md): the queue API of the vendor's MNS SDKs and of the alicom
//! receipt pullers, at the root of its own origin, with MNS V2 signatures, STS security tokens,
//! the vendor's error XML, limits and visibility semantics — every timer on the emulator clock.
//!
//! * [`router`]: the MNS HTTP API (its admin views live in emu-admin).
//! * [`Mns::deliver`]: how the rest of the emulator puts a receipt (`ArtcCdrReport`,
//!   `VoiceRecordReport`) into `Alicom-Queue-<uid>-<MessageType>`, plus optional HTTP push.
//! * With a data dir, everything is written ahead to `<data-dir>/mns.redb` ([`store`]).
//! * [`tls`]: a self-signed certificate and an HTTPS listener for the pullers that insist on it.
//! * [`listener`]: the HTTP serve loop (plain or TLS) with header-read and idle timeouts, which
//!   every HTTP listener of the emulator uses.

pub mod auth;
pub mod error;
pub mod http;
mod messages;
pub mod push;
pub mod queue;
pub mod signature;
pub mod store;
mod views;
pub mod xml;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dashmap::DashMap;
use emu_core::events::NewEvent;
use emu_core::{Millis, Shared, TenantId};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::{Notify, oneshot, watch};

pub use crate::error::MnsError;
pub use crate::http::router;
pub use crate::push::PushTarget;
use crate::queue::Counts;
use crate::queue::{AttrsPatch, NewMessage, QueueAttrs, QueueMeta, QueueState, StoredMessage};
use crate::store::{Op, Store, StoreError};
pub use crate::views::{MessageView, QueueView};

/// The vendor's account that hosts every alicom receipt queue (the Java puller's endpoint is
/// `https://1943695596114318.mns.cn-hangzhou.aliyuncs.com/`).
pub const ALICOM_ACCOUNT_ID: &str = "1943695596114318";

/// Settings of the MNS service: the `[mns]` configuration section.
pub use emu_core::config::MnsConfig;

/// `Alicom-Queue-<uid>-<MessageType>`.
pub fn alicom_queue_name(uid: &str, message_type: &str) -> String {
    // One allocation at its size (`format!` grew it twice, for every receipt).
    ["Alicom-Queue-", uid, "-", message_type].concat()
}

/// Queue names: 1–256 characters, letters, digits and `-`, starting with a letter.
pub fn valid_queue_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct QueueKey {
    tenant: TenantId,
    name: String,
}

struct QueueCell {
    tenant: TenantId,
    state: Mutex<QueueState>,
    /// Woken whenever a message may have become receivable (send, visibility change).
    notify: Notify,
    /// Set when the queue is deleted (or reset): waiters end with QueueNotExist.
    gone: AtomicBool,
}

/// A message put into a queue by [`Mns::deliver`].
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivered {
    pub queue: String,
    pub message_id: String,
    pub body_md5: String,
}

pub struct Mns {
    pub shared: Shared,
    config: MnsConfig,
    queues: DashMap<QueueKey, Arc<QueueCell>>,
    seq: AtomicU64,
    store: Option<Store>,
    closing: watch::Sender<bool>,
    push_targets: RwLock<Vec<PushTarget>>,
    http: reqwest::Client,
}

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("message store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot build the push HTTP client: {0}")]
    PushClient(reqwest::Error),
}

type Durable = Option<oneshot::Receiver<Result<(), StoreError>>>;

async fn durable(rx: Durable) -> Result<(), MnsError> {
    match rx {
        None => Ok(()),
        Some(rx) => match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(MnsError::internal(format!("the message store failed: {e}"))),
            Err(_) => Err(MnsError::internal("the message store stopped")),
        },
    }
}

impl Mns {
    /// The service; with `data_dir`, queues and messages are loaded from and written ahead to
    /// `<data_dir>/mns.redb`.
    pub fn new(shared: Shared, config: MnsConfig, data_dir: Option<&Path>) -> Result<Arc<Mns>, StartError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(config.push_timeout_ms.max(1)))
            .build()
            .map_err(StartError::PushClient)?;
        let mns = Mns {
            push_targets: RwLock::new(config.push.clone()),
            shared,
            config,
            queues: DashMap::new(),
            seq: AtomicU64::new(1),
            store: None,
            closing: watch::channel(false).0,
            http,
        };
        let mns = match data_dir {
            None => mns,
            Some(dir) => {
                let (store, loaded) = Store::open(dir)?;
                let now = mns.shared.clock.now_ms();
                let mut restored = (0, 0);
                for (tenant_name, name, meta, msgs) in loaded.queues {
                    let Some(tenant) = mns.shared.tenants.by_name(&tenant_name).map(|t| t.id) else {
                        tracing::warn!(tenant = %tenant_name, queue = %name, "MNS store: queue of an unknown tenant ignored");
                        continue;
                    };
                    let mut state = QueueState::new(name.clone(), meta);
                    restored.0 += 1;
                    restored.1 += msgs.len();
                    for m in msgs {
                        state.insert(now, m);
                    }
                    mns.queues.insert(QueueKey { tenant, name }, Arc::new(new_cell(tenant, state)));
                }
                mns.seq.store(loaded.max_seq + 1, Ordering::Relaxed);
                tracing::info!(path = %store.path().display(), queues = restored.0, messages = restored.1, "MNS store opened");
                Mns { store: Some(store), ..mns }
            }
        };
        Ok(Arc::new(mns))
    }

    pub fn config(&self) -> &MnsConfig {
        &self.config
    }

    /// Where the store lives, when there is one.
    pub fn store_path(&self) -> Option<PathBuf> {
        self.store.as_ref().map(|s| s.path().to_path_buf())
    }

    fn tenant_name(&self, t: TenantId) -> String {
        self.shared.tenants.get(t).name.to_string()
    }

    fn now(&self) -> Millis {
        self.shared.clock.now_ms()
    }

    fn cell(&self, tenant: TenantId, name: &str) -> Result<Arc<QueueCell>, MnsError> {
        self.queues
            .get(&QueueKey { tenant, name: name.to_string() })
            .map(|c| c.clone())
            .ok_or_else(MnsError::queue_not_exist)
    }

    /// Locks a queue's state, unless the queue was deleted meanwhile.
    fn lock<'a>(&self, cell: &'a QueueCell) -> Result<parking_lot::MutexGuard<'a, QueueState>, MnsError> {
        let guard = cell.state.lock();
        if cell.gone.load(Ordering::Acquire) {
            return Err(MnsError::queue_not_exist());
        }
        Ok(guard)
    }

    /// Hands changes to the store (under the queue's lock, so they stay in order).
    fn submit(&self, ops: impl FnOnce(String) -> Vec<Op>, tenant: TenantId) -> Durable {
        let store = self.store.as_ref()?;
        let ops = ops(self.tenant_name(tenant));
        if ops.is_empty() {
            return None;
        }
        Some(store.submit(ops))
    }

    /// Ticks a queue to `now` (expiring messages) under its lock.
    fn tick(&self, cell: &QueueCell, state: &mut QueueState, now: Millis) {
        let expired = state.tick(now);
        if expired.is_empty() {
            return;
        }
        if let Some(store) = &self.store {
            let tenant = self.tenant_name(cell.tenant);
            let queue = state.name.clone();
            store.submit_detached(
                expired
                    .into_iter()
                    .map(|seq| Op::DeleteMessage { tenant: tenant.clone(), queue: queue.clone(), seq })
                    .collect(),
            );
        }
    }

    /// CreateQueue: `Ok(true)` when created, `Ok(false)` when it exists with the same attributes.
    pub async fn create_queue(&self, tenant: TenantId, name: &str, patch: &AttrsPatch) -> Result<bool, MnsError> {
        self.create_queue_with(tenant, name, patch, &QueueAttrs::default()).await
    }

    async fn create_queue_with(
        &self,
        tenant: TenantId,
        name: &str,
        patch: &AttrsPatch,
        defaults: &QueueAttrs,
    ) -> Result<bool, MnsError> {
        let (created, rx) = self.create_queue_now(tenant, name, patch, defaults)?;
        durable(rx).await?;
        Ok(created)
    }

    /// Creates the queue in memory and hands it to the store (not waiting for the commit).
    fn create_queue_now(
        &self,
        tenant: TenantId,
        name: &str,
        patch: &AttrsPatch,
        defaults: &QueueAttrs,
    ) -> Result<(bool, Durable), MnsError> {
        if !valid_queue_name(name) {
            return Err(MnsError::invalid_queue_name(name));
        }
        patch.validate()?;
        let attrs = patch.apply(defaults);
        match self.queues.entry(QueueKey { tenant, name: name.to_string() }) {
            dashmap::Entry::Occupied(e) => {
                if e.get().state.lock().meta.attrs == attrs {
                    Ok((false, None))
                } else {
                    Err(MnsError::queue_already_exist())
                }
            }
            dashmap::Entry::Vacant(v) => {
                let now = self.now();
                let meta = QueueMeta { attrs, create_time: now, last_modify_time: now };
                let cell = Arc::new(new_cell(tenant, QueueState::new(name, meta.clone())));
                let guard = cell.state.lock();
                let rx = self.submit(|t| vec![Op::PutQueue { tenant: t, queue: name.to_string(), meta }], tenant);
                drop(guard);
                v.insert(cell);
                Ok((true, rx))
            }
        }
    }

    /// Makes sure a queue exists (with the alicom defaults when it is created), e.g. for
    /// QueryTokenForMnsQueue: the puller's first receive must not fail with QueueNotExist.
    /// Waits until the new queue is durable.
    pub async fn ensure_queue(&self, tenant: TenantId, name: &str) -> Result<(), MnsError> {
        match self.create_queue_now(tenant, name, &AttrsPatch::default(), &self.alicom_defaults()) {
            Ok((_, rx)) => durable(rx).await,
            Err(MnsError { code: "QueueAlreadyExist", .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// [`Mns::ensure_queue`] for synchronous callers (the POP action): the queue exists in
    /// memory when this returns; its durable write is already queued ahead of any later change.
    pub fn ensure_queue_now(&self, tenant: TenantId, name: &str) -> Result<(), MnsError> {
        match self.create_queue_now(tenant, name, &AttrsPatch::default(), &self.alicom_defaults()) {
            Ok(_) | Err(MnsError { code: "QueueAlreadyExist", .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn alicom_defaults(&self) -> QueueAttrs {
        QueueAttrs {
            visibility_timeout: self.config.alicom_visibility_timeout_secs.clamp(1, queue::MAX_VISIBILITY_TIMEOUT),
            polling_wait_seconds: self.config.alicom_polling_wait_secs.min(queue::MAX_WAIT_SECONDS),
            ..QueueAttrs::default()
        }
    }

    /// SetQueueAttributes (`PUT /queues/q?metaoverride=true`).
    pub async fn set_queue_attributes(&self, tenant: TenantId, name: &str, patch: &AttrsPatch) -> Result<(), MnsError> {
        patch.validate()?;
        let cell = self.cell(tenant, name)?;
        let rx = {
            let mut st = self.lock(&cell)?;
            st.meta.attrs = patch.apply(&st.meta.attrs);
            st.meta.last_modify_time = self.now();
            let meta = st.meta.clone();
            self.submit(|t| vec![Op::PutQueue { tenant: t, queue: name.to_string(), meta }], tenant)
        };
        // A shorter wait or delay may make something receivable sooner.
        cell.notify.notify_waiters();
        durable(rx).await
    }

    pub fn queue_attributes(&self, tenant: TenantId, name: &str) -> Result<(QueueMeta, Counts), MnsError> {
        let cell = self.cell(tenant, name)?;
        let now = self.now();
        let mut st = self.lock(&cell)?;
        self.tick(&cell, &mut st, now);
        Ok((st.meta.clone(), st.counts(now)))
    }

    pub async fn delete_queue(&self, tenant: TenantId, name: &str) -> Result<(), MnsError> {
        let key = QueueKey { tenant, name: name.to_string() };
        let cell = self.cell(tenant, name)?;
        let rx = {
            let _st = self.lock(&cell)?;
            cell.gone.store(true, Ordering::Release);
            self.submit(|t| vec![Op::DeleteQueue { tenant: t, queue: name.to_string() }], tenant)
        };
        // Not under the queue's lock: map shards are locked before queues elsewhere.
        self.queues.remove_if(&key, |_, c| Arc::ptr_eq(c, &cell));
        cell.notify.notify_waiters();
        durable(rx).await
    }

    /// The tenant's queue names, sorted, from `marker` on, at most `limit`, with the next marker.
    pub fn list_queues(
        &self,
        tenant: TenantId,
        prefix: &str,
        marker: &str,
        limit: usize,
        visible: impl Fn(&str) -> bool,
    ) -> (Vec<String>, Option<String>) {
        let mut names: Vec<String> = self
            .queues
            .iter()
            .filter(|e| e.key().tenant == tenant && e.key().name.starts_with(prefix) && e.key().name.as_str() >= marker)
            .map(|e| e.key().name.clone())
            .filter(|n| visible(n))
            .collect();
        names.sort();
        let next = (names.len() > limit).then(|| names[limit].clone());
        names.truncate(limit);
        (names, next)
    }

    /// Puts a receipt into the tenant's `Alicom-Queue-<uid>-<message_type>` (created on demand
    /// with the alicom defaults) as `base64(JSON)`, durable before this returns, and starts the
    /// configured HTTP pushes of it in the background.
    pub async fn deliver(
        self: &Arc<Self>,
        tenant: TenantId,
        message_type: &str,
        body_json: &serde_json::Value,
    ) -> Result<Delivered, MnsError> {
        let channel_id = ["channelId", "channel_id", "call_id"]
            .iter()
            .find_map(|k| body_json.get(*k).and_then(|v| v.as_str()).map(str::to_string));
        // `to_vec` writes straight into bytes; `to_string` goes through `fmt` and cost 4× as much.
        self.deliver_json(tenant, message_type, &serde_json::to_vec(body_json).unwrap_or_default(), channel_id).await
    }

    /// [`Mns::deliver`] for a receipt already written as JSON (the call engine's typed CDR),
    /// with the call it is about.
    pub async fn deliver_json(
        self: &Arc<Self>,
        tenant: TenantId,
        message_type: &str,
        json: &[u8],
        channel_id: Option<String>,
    ) -> Result<Delivered, MnsError> {
        let (queue, m) = self.put_receipt(tenant, message_type, json, channel_id).await?;
        Ok(Delivered { queue, message_id: m.id.clone(), body_md5: m.body_md5() })
    }

    /// [`Mns::deliver_json`] for the call engine, which has no use for the reply.
    pub async fn queue_receipt(
        self: &Arc<Self>,
        tenant: TenantId,
        message_type: &str,
        json: &[u8],
        channel_id: Option<String>,
    ) -> Result<(), MnsError> {
        self.put_receipt(tenant, message_type, json, channel_id).await.map(drop)
    }

    async fn put_receipt(
        self: &Arc<Self>,
        tenant: TenantId,
        message_type: &str,
        json: &[u8],
        channel_id: Option<String>,
    ) -> Result<(String, StoredMessage), MnsError> {
        let t = self.shared.tenants.get(tenant);
        let queue = alicom_queue_name(&t.uid, message_type);
        self.ensure_queue(tenant, &queue).await?;
        // With SIMD: a receipt for every call (the base64 is the same as any encoder's).
        let body = base64_simd::STANDARD.encode_to_string(json);
        let mut sent = self.send(tenant, &queue, vec![NewMessage::new(body)]).await?;
        let m = sent.pop().ok_or_else(|| MnsError::internal("a message sent and none queued"))?;
        self.shared.events.record(NewEvent {
            kind: "receipt.queued",
            channel_id: channel_id.clone(),
            tenant: Some(t.name.clone()),
            detail: serde_json::json!({"queue": queue, "messageType": message_type, "messageId": m.id}).into(),
            ..Default::default()
        });
        push::start(self, tenant, message_type, &m.id, json, channel_id);
        Ok((queue, m))
    }

    /// Removes every message of a queue; returns how many there were.
    pub async fn purge(&self, tenant: TenantId, name: &str) -> Result<usize, MnsError> {
        let cell = self.cell(tenant, name)?;
        let (n, rx) = {
            let mut st = self.lock(&cell)?;
            let seqs = st.purge();
            let rx = self.submit(
                |t| {
                    seqs.iter()
                        .map(|seq| Op::DeleteMessage { tenant: t.clone(), queue: name.to_string(), seq: *seq })
                        .collect()
                },
                tenant,
            );
            (seqs.len(), rx)
        };
        durable(rx).await?;
        Ok(n)
    }

    /// Forgets every queue and message (also on disk) and the run-time push targets
    /// (`POST /admin/reset`). Long polls in progress end with QueueNotExist.
    pub fn reset(&self) {
        let cells: Vec<Arc<QueueCell>> = self.queues.iter().map(|e| e.value().clone()).collect();
        self.queues.clear();
        for c in &cells {
            // Under the queue's lock: every change submitted before is ahead of the clear, and
            // none comes after (a gone queue refuses changes).
            let _st = c.state.lock();
            c.gone.store(true, Ordering::Release);
        }
        if let Some(store) = &self.store {
            store.submit_detached(vec![Op::Clear]);
        }
        for c in &cells {
            c.notify.notify_waiters();
        }
        *self.push_targets.write() = self.config.push.clone();
    }

    /// Expires messages past their retention in every queue (queues otherwise expire theirs
    /// when next used). For a periodic housekeeping task.
    pub fn sweep(&self) {
        let now = self.now();
        let cells: Vec<Arc<QueueCell>> = self.queues.iter().map(|e| e.value().clone()).collect();
        for cell in cells {
            if let Ok(mut st) = self.lock(&cell) {
                self.tick(&cell, &mut st, now);
            }
        }
    }

    /// Ends every long poll in progress (with MessageNotExist) and every pending push retry, so
    /// a graceful shutdown does not wait for them. Call it when the emulator stops.
    pub fn shutdown(&self) {
        self.closing.send_replace(true);
    }

    pub(crate) fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    pub(crate) fn http_client(&self) -> &reqwest::Client {
        &self.http
    }
}

fn new_cell(tenant: TenantId, state: QueueState) -> QueueCell {
    QueueCell { tenant, state: Mutex::new(state), notify: Notify::new(), gone: AtomicBool::new(false) }
}

/// Sleeps until emulator time `target` (manual clock: until an advance gets there), or until
/// the service shuts down (false then).
pub(crate) async fn sleep_until(clock: &emu_core::Clock, mut closing: watch::Receiver<bool>, target: Millis) -> bool {
    let mut advances = clock.subscribe_advances();
    loop {
        if *closing.borrow() {
            return false;
        }
        let now = clock.now_ms();
        if now >= target {
            return true;
        }
        match clock.real_duration(target - now) {
            Some(d) => tokio::select! {
                _ = tokio::time::sleep(d.max(std::time::Duration::from_millis(1))) => {}
                _ = closing.changed() => {}
            },
            None => tokio::select! {
                r = advances.changed() => if r.is_err() { return false },
                _ = closing.changed() => {}
            },
        }
    }
}

impl emu_core::lifecycle::Reset for Mns {
    fn reset(&self) {
        Mns::reset(self);
    }
}
