//! Durability with `--data-dir`: queues and messages (with their visibility state) in a redb
//! file (`<data-dir>/mns.redb`, crash-safe copy-on-write B-trees, fsync on commit).
//!
//! Write-ahead: every change is handed to [`Store::submit`] under the queue's lock (so the store
//! sees the changes of one queue in the order they happened) and the request is answered only
//! once its commit returned. One writer thread commits whatever has queued up in one transaction
//! (group commit), so concurrent requests share an fsync.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::queue::{QueueMeta, StoredMessage};

const QUEUES: TableDefinition<&str, &[u8]> = TableDefinition::new("queues");
const MESSAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("messages");

/// Separates tenant, queue and sequence number in keys (never part of a name).
const SEP: char = '\u{1f}';

/// One change to persist.
#[derive(Debug, Clone)]
pub enum Op {
    PutQueue {
        tenant: String,
        queue: String,
        meta: QueueMeta,
    },
    /// Deletes the queue and all its messages.
    DeleteQueue {
        tenant: String,
        queue: String,
    },
    PutMessage {
        tenant: String,
        queue: String,
        msg: StoredMessage,
    },
    DeleteMessage {
        tenant: String,
        queue: String,
        seq: u64,
    },
    /// Forgets everything (reset).
    Clear,
}

fn queue_key(tenant: &str, queue: &str) -> String {
    format!("{tenant}{SEP}{queue}")
}

fn message_key(tenant: &str, queue: &str, seq: u64) -> String {
    format!("{tenant}{SEP}{queue}{SEP}{seq:020}")
}

/// What was on disk at start-up.
#[derive(Debug, Default)]
pub struct Loaded {
    /// (tenant name, queue name, meta, messages in sequence order)
    pub queues: Vec<(String, String, QueueMeta, Vec<StoredMessage>)>,
    pub max_seq: u64,
}

/// Why the store cannot open, or a write did not become durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// `what` failed on `path` (the cause as text: redb's errors are not `Clone`).
    #[error("cannot {what} {}: {cause}", path.display())]
    Open { what: &'static str, path: PathBuf, cause: String },
    /// A batch of writes failed; every waiter of the batch gets this.
    #[error("the write failed: {0}")]
    Write(String),
    #[error("the store thread has stopped")]
    Stopped,
}

type Reply = oneshot::Sender<Result<(), StoreError>>;

pub struct Store {
    path: PathBuf,
    tx: Option<mpsc::Sender<(Vec<Op>, Option<Reply>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Store {
    /// Lets the writer finish what was queued and close the file.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Store {
    /// Opens (or creates) `<dir>/mns.redb` and loads its content.
    pub fn open(dir: &Path) -> Result<(Store, Loaded), StoreError> {
        let failed = |what, path: &Path| {
            let path = path.to_path_buf();
            move |e: &dyn std::fmt::Display| StoreError::Open { what, path, cause: e.to_string() }
        };
        std::fs::create_dir_all(dir).map_err(|e| failed("create", dir)(&e))?;
        let path = dir.join("mns.redb");
        let db = Database::create(&path).map_err(|e| failed("open", &path)(&e))?;
        let loaded = load(&db).map_err(|e| failed("read", &path)(&e))?;
        let (tx, rx) = mpsc::channel::<(Vec<Op>, Option<Reply>)>();
        let thread = std::thread::Builder::new()
            .name("mns-store".into())
            .spawn(move || writer(db, rx))
            .map_err(|e| failed("start the writer thread for", &path)(&e))?;
        Ok((Store { path, tx: Some(tx), thread: Some(thread) }, loaded))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues changes; the receiver resolves once they are durable.
    pub fn submit(&self, ops: Vec<Op>) -> oneshot::Receiver<Result<(), StoreError>> {
        let (tx, rx) = oneshot::channel();
        let Some(sender) = &self.tx else { return rx };
        if let Err(mpsc::SendError((_, Some(reply)))) = sender.send((ops, Some(tx))) {
            let _ = reply.send(Err(StoreError::Stopped));
        }
        rx
    }

    /// Queues changes without waiting for them.
    pub fn submit_detached(&self, ops: Vec<Op>) {
        if let Some(sender) = &self.tx {
            let _ = sender.send((ops, None));
        }
    }
}

fn load(db: &Database) -> Result<Loaded, Box<dyn std::error::Error>> {
    {
        // Make sure both tables exist, so a read of a fresh file works.
        let w = db.begin_write()?;
        w.open_table(QUEUES)?;
        w.open_table(MESSAGES)?;
        w.commit()?;
    }
    let r = db.begin_read()?;
    let queues = r.open_table(QUEUES)?;
    let messages = r.open_table(MESSAGES)?;
    let mut out = Loaded::default();
    let mut index = std::collections::HashMap::new();
    for entry in queues.iter()? {
        let (k, v) = entry?;
        let key = k.value();
        let Some((tenant, queue)) = key.split_once(SEP) else { continue };
        let meta: QueueMeta = serde_json::from_slice(v.value())?;
        index.insert(key.to_string(), out.queues.len());
        out.queues.push((tenant.to_string(), queue.to_string(), meta, Vec::new()));
    }
    for entry in messages.iter()? {
        let (k, v) = entry?;
        let key = k.value();
        let Some((queue_key, _seq)) = key.rsplit_once(SEP) else { continue };
        let msg: StoredMessage = serde_json::from_slice(v.value())?;
        out.max_seq = out.max_seq.max(msg.seq);
        if let Some(i) = index.get(queue_key) {
            out.queues[*i].3.push(msg);
        }
    }
    Ok(out)
}

fn writer(db: Database, rx: mpsc::Receiver<(Vec<Op>, Option<Reply>)>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let result =
            apply(&db, batch.iter().flat_map(|(ops, _)| ops.iter())).map_err(|e| StoreError::Write(e.to_string()));
        if let Err(e) = &result {
            tracing::error!("MNS store: commit failed: {e}");
        }
        for (_, reply) in batch {
            if let Some(reply) = reply {
                let _ = reply.send(result.clone());
            }
        }
    }
}

fn apply<'a>(db: &Database, ops: impl Iterator<Item = &'a Op>) -> Result<(), Box<dyn std::error::Error>> {
    let w = db.begin_write()?;
    {
        let mut queues = w.open_table(QUEUES)?;
        let mut messages = w.open_table(MESSAGES)?;
        for op in ops {
            match op {
                Op::PutQueue { tenant, queue, meta } => {
                    queues.insert(queue_key(tenant, queue).as_str(), serde_json::to_vec(meta)?.as_slice())?;
                }
                Op::DeleteQueue { tenant, queue } => {
                    queues.remove(queue_key(tenant, queue).as_str())?;
                    let lo = format!("{tenant}{SEP}{queue}{SEP}");
                    let hi = format!("{tenant}{SEP}{queue}{}", char::from(SEP as u8 + 1));
                    messages.retain_in(lo.as_str()..hi.as_str(), |_, _| false)?;
                }
                Op::PutMessage { tenant, queue, msg } => {
                    messages
                        .insert(message_key(tenant, queue, msg.seq).as_str(), serde_json::to_vec(msg)?.as_slice())?;
                }
                Op::DeleteMessage { tenant, queue, seq } => {
                    messages.remove(message_key(tenant, queue, *seq).as_str())?;
                }
                Op::Clear => {
                    queues.retain(|_, _| false)?;
                    messages.retain(|_, _| false)?;
                }
            }
        }
    }
    w.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{NewMessage, QueueAttrs, QueueState};

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("emu-mns-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[tokio::test]
    async fn survives_reopen_and_deletes_queue_messages() {
        let dir = tmp("reopen");
        let meta = QueueMeta { attrs: QueueAttrs::default(), create_time: 1, last_modify_time: 1 };
        let mut q = QueueState::new("q", meta.clone());
        let m1 = q.send(1000, 1, NewMessage::new("one"));
        let m2 = q.send(1000, 2, NewMessage::new("two"));
        let received = q.receive(1000, 1).remove(0);
        {
            let (store, loaded) = Store::open(&dir).unwrap();
            assert!(loaded.queues.is_empty());
            let t = || "default".to_string();
            let ops = vec![
                Op::PutQueue { tenant: t(), queue: "q".into(), meta: meta.clone() },
                Op::PutQueue { tenant: t(), queue: "q-other".into(), meta: meta.clone() },
                Op::PutMessage { tenant: t(), queue: "q".into(), msg: m1.clone() },
                Op::PutMessage { tenant: t(), queue: "q".into(), msg: m2.clone() },
                Op::PutMessage { tenant: t(), queue: "q-other".into(), msg: StoredMessage { seq: 9, ..m2.clone() } },
                Op::PutMessage { tenant: t(), queue: "q".into(), msg: received.clone() },
            ];
            store.submit(ops).await.unwrap().unwrap();
            store.submit(vec![Op::DeleteQueue { tenant: t(), queue: "q-other".into() }]).await.unwrap().unwrap();
        }
        let (store, loaded) = Store::open(&dir).unwrap();
        assert_eq!(loaded.max_seq, 2, "the deleted queue's message is gone");
        assert_eq!(loaded.queues.len(), 1);
        let (tenant, name, m, msgs) = &loaded.queues[0];
        assert_eq!((tenant.as_str(), name.as_str(), m), ("default", "q", &meta));
        assert_eq!(msgs, &vec![received, m2]);
        store.submit(vec![Op::Clear]).await.unwrap().unwrap();
        drop(store);
        let (_store, loaded) = Store::open(&dir).unwrap();
        assert!(loaded.queues.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
