//! The message operations of a queue: send, receive (with long polling on the emulator
//! clock), peek, delete, change visibility. Each validates, changes the queue's state under its
//! lock, and is durable (written ahead to the store, with a data dir) before it answers.

use super::*;

impl Mns {
    /// SendMessage / BatchSendMessage: all validated first, then all enqueued.
    pub async fn send(
        &self,
        tenant: TenantId,
        name: &str,
        msgs: Vec<NewMessage>,
    ) -> Result<Vec<StoredMessage>, MnsError> {
        let cell = self.cell(tenant, name)?;
        let (sent, rx) = {
            let mut st = self.lock(&cell)?;
            for m in &msgs {
                m.validate(&st.meta.attrs)?;
            }
            let now = self.now();
            self.tick(&cell, &mut st, now);
            let sent: Vec<StoredMessage> = msgs
                .into_iter()
                .map(|m| {
                    let seq = self.seq.fetch_add(1, Ordering::Relaxed);
                    st.send(now, seq, m)
                })
                .collect();
            let rx = self.submit(
                |t| {
                    sent.iter()
                        .map(|m| Op::PutMessage { tenant: t.clone(), queue: name.to_string(), msg: m.clone() })
                        .collect()
                },
                tenant,
            );
            (sent, rx)
        };
        cell.notify.notify_waiters();
        durable(rx).await?;
        self.shared.metrics.mns("sent", sent.len());
        Ok(sent)
    }

    /// One non-blocking receive attempt: the messages, or when the next one becomes visible.
    fn try_receive(
        &self,
        cell: &QueueCell,
        n: usize,
    ) -> Result<(Vec<StoredMessage>, Option<Millis>, Durable), MnsError> {
        let mut st = self.lock(cell)?;
        let now = self.now();
        self.tick(cell, &mut st, now);
        let got = st.receive(now, n);
        let rx = if got.is_empty() {
            None
        } else {
            self.submit(
                |t| {
                    got.iter()
                        .map(|m| Op::PutMessage { tenant: t.clone(), queue: st.name.clone(), msg: m.clone() })
                        .collect()
                },
                cell.tenant,
            )
        };
        Ok((got, st.next_wakeup(), rx))
    }

    /// ReceiveMessage / BatchReceiveMessage with long polling: waits up to `wait_secs`
    /// (None: the queue's PollingWaitSeconds) of emulator time for a message to arrive or become
    /// visible again, and answers as soon as one does; else `MessageNotExist`.
    pub async fn receive(
        &self,
        tenant: TenantId,
        name: &str,
        n: usize,
        wait_secs: Option<u32>,
    ) -> Result<Vec<StoredMessage>, MnsError> {
        let cell = self.cell(tenant, name)?;
        let wait_ms = wait_secs.unwrap_or_else(|| cell.state.lock().meta.attrs.polling_wait_seconds) as u64 * 1000;
        let clock = self.shared.clock.clone();
        let deadline = clock.now_ms() + wait_ms;
        let mut advances = clock.subscribe_advances();
        let mut closing = self.closing.subscribe();
        loop {
            let notified = cell.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (got, next, rx) = self.try_receive(&cell, n)?;
            if !got.is_empty() {
                durable(rx).await?;
                self.shared.metrics.mns("received", got.len());
                return Ok(got);
            }
            let now = clock.now_ms();
            if now >= deadline || *closing.borrow() {
                return Err(MnsError::message_not_exist());
            }
            let target = next.map_or(deadline, |t| t.min(deadline));
            match clock.real_duration(target.saturating_sub(now)) {
                Some(d) => {
                    let d = d.max(std::time::Duration::from_millis(1));
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep(d) => {}
                        _ = closing.changed() => {}
                    }
                }
                None => {
                    tokio::select! {
                        _ = &mut notified => {}
                        r = advances.changed() => if r.is_err() { return Err(MnsError::message_not_exist()) },
                        _ = closing.changed() => {}
                    }
                }
            }
        }
    }

    /// PeekMessage / BatchPeekMessage: nothing changes; `MessageNotExist` when nothing is active.
    pub fn peek(&self, tenant: TenantId, name: &str, n: usize) -> Result<Vec<StoredMessage>, MnsError> {
        let cell = self.cell(tenant, name)?;
        let mut st = self.lock(&cell)?;
        self.tick(&cell, &mut st, self.now());
        let got = st.peek(n);
        if got.is_empty() {
            return Err(MnsError::message_not_exist());
        }
        Ok(got)
    }

    pub async fn delete_message(&self, tenant: TenantId, name: &str, handle: &str) -> Result<(), MnsError> {
        let mut errors = self.delete_messages(tenant, name, &[handle.to_string()]).await?;
        match errors.pop() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// BatchDeleteMessage: the handles that failed, with their errors.
    pub async fn delete_messages(
        &self,
        tenant: TenantId,
        name: &str,
        handles: &[String],
    ) -> Result<Vec<(String, MnsError)>, MnsError> {
        let cell = self.cell(tenant, name)?;
        let (errors, rx) = {
            let mut st = self.lock(&cell)?;
            let now = self.now();
            self.tick(&cell, &mut st, now);
            let mut deleted = Vec::new();
            let mut errors = Vec::new();
            for h in handles {
                match st.delete(now, h) {
                    Ok(m) => deleted.push(m.seq),
                    Err(e) => errors.push((h.clone(), e)),
                }
            }
            self.shared.metrics.mns("deleted", deleted.len());
            let rx = self.submit(
                |t| {
                    deleted
                        .iter()
                        .map(|seq| Op::DeleteMessage { tenant: t.clone(), queue: name.to_string(), seq: *seq })
                        .collect()
                },
                tenant,
            );
            (errors, rx)
        };
        durable(rx).await?;
        Ok(errors)
    }

    /// ChangeMessageVisibility: the new receipt handle and NextVisibleTime.
    pub async fn change_visibility(
        &self,
        tenant: TenantId,
        name: &str,
        handle: &str,
        seconds: u32,
    ) -> Result<StoredMessage, MnsError> {
        if !(queue::MIN_VISIBILITY_TIMEOUT..=queue::MAX_VISIBILITY_TIMEOUT).contains(&seconds) {
            return Err(MnsError::invalid_argument(format!(
                "The value of VisibilityTimeout should between {} and {} (got {seconds}).",
                queue::MIN_VISIBILITY_TIMEOUT,
                queue::MAX_VISIBILITY_TIMEOUT
            )));
        }
        let cell = self.cell(tenant, name)?;
        let (msg, rx) = {
            let mut st = self.lock(&cell)?;
            let now = self.now();
            self.tick(&cell, &mut st, now);
            let msg = st.change_visibility(now, handle, seconds)?;
            let rx =
                self.submit(|t| vec![Op::PutMessage { tenant: t, queue: name.to_string(), msg: msg.clone() }], tenant);
            (msg, rx)
        };
        // A shorter timeout moves the wake-up of waiting receivers forward.
        cell.notify.notify_waiters();
        durable(rx).await?;
        Ok(msg)
    }
}
