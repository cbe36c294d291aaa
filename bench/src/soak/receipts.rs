//! The soak's receipt consumer: the vendor's puller against one `Alicom-Queue-<uid>-<type>`
//! queue — temporary credentials from `QueryTokenForMnsQueue` (refreshed 2 minutes before they
//! expire), batch receive with a long poll, batch delete of everything received — accounting
//! each receipt to its call in the [`Tally`], and deleting the WAV file a recording report names.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use base64::Engine;
use emu_mns::signature;
use serde_json::Value;

use super::Tally;
use crate::common::{Sender, Target, connect};

/// Messages per receive and delete (the API's maximum).
const BATCH: usize = 16;
/// Long poll of each receive: short enough to notice the end of the run.
const WAIT_SECS: u64 = 1;
/// Credentials are fetched again this long before they expire, as the vendor's pullers do.
const REFRESH_BEFORE_SECS: i64 = 120;

/// Temporary credentials and when they expire (seconds since the epoch).
struct Sts {
    id: String,
    secret: String,
    token: HeaderValue,
    expires: i64,
}

pub(super) struct Consumer {
    mns: String,
    pop: Target,
    pop_sender: Option<Sender>,
    message_type: &'static str,
    /// `/queues/<queue>/messages`.
    path: String,
    recordings: PathBuf,
    http: reqwest::Client,
    sts: Option<Sts>,
    tally: Arc<Tally>,
    refreshes: u64,
}

impl Consumer {
    pub(super) fn new(
        mns: &str,
        pop: Target,
        uid: &str,
        message_type: &'static str,
        recordings: PathBuf,
        tally: Arc<Tally>,
    ) -> anyhow::Result<Consumer> {
        Ok(Consumer {
            mns: mns.trim_end_matches('/').to_string(),
            pop,
            pop_sender: None,
            message_type,
            path: format!("/queues/Alicom-Queue-{uid}-{message_type}/messages"),
            recordings,
            http: reqwest::Client::builder().timeout(Duration::from_secs(WAIT_SECS + 10)).build()?,
            sts: None,
            tally,
            refreshes: 0,
        })
    }

    /// Receives and deletes until `stop`.
    pub(super) async fn run(mut self, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = self.round().await {
                self.tally.error(format!("{} consumer: {e:#}", self.message_type));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// QueryTokenForMnsQueue when there are no credentials or they expire soon.
    async fn credentials(&mut self) -> anyhow::Result<()> {
        let now = chrono::Utc::now().timestamp();
        if self.sts.as_ref().is_some_and(|s| s.expires - REFRESH_BEFORE_SECS > now) {
            return Ok(());
        }
        if self.pop_sender.is_none() {
            self.pop_sender = Some(connect(&self.pop.authority).await?);
        }
        self.refreshes += 1;
        let nonce = format!("soak-mns-{}-{}-{}", self.message_type, self.refreshes, crate::common::run_id());
        let params = [("Action", "QueryTokenForMnsQueue"), ("MessageType", self.message_type)];
        let reply = match self.pop.call(self.pop_sender.as_mut().context("connected")?, &params, &nonce).await {
            Ok(r) => r,
            Err(e) => {
                self.pop_sender = None;
                return Err(e);
            }
        };
        let dto = &reply["MessageTokenDTO"];
        let field = |k: &str| dto[k].as_str().map(str::to_string).with_context(|| format!("no {k} in {reply}"));
        // ExpireTime is Asia/Shanghai wall time (UTC+8, no DST).
        let expire = chrono::NaiveDateTime::parse_from_str(&field("ExpireTime")?, "%Y-%m-%d %H:%M:%S")?;
        self.sts = Some(Sts {
            id: field("AccessKeyId")?,
            secret: field("AccessKeySecret")?,
            token: HeaderValue::from_str(&field("SecurityToken")?)?,
            expires: expire.and_utc().timestamp() - 8 * 3600,
        });
        Ok(())
    }

    /// A signed MNS request with the temporary key; its status and body.
    async fn request(&self, method: Method, target: &str, body: Option<String>) -> anyhow::Result<(u16, String)> {
        let sts = self.sts.as_ref().context("no credentials")?;
        let mut h = HeaderMap::new();
        h.insert(
            header::DATE,
            HeaderValue::from_str(&chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string())?,
        );
        h.insert("x-mns-version", HeaderValue::from_static("2015-06-06"));
        if let Some(b) = &body {
            let md5 = base64::engine::general_purpose::STANDARD
                .encode(signature::md5_upper_hex(b.as_bytes()).to_ascii_lowercase());
            h.insert("content-md5", HeaderValue::from_str(&md5)?);
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml;charset=UTF-8"));
        }
        let sts_string = signature::string_to_sign(method.as_str(), &h, target);
        let auth = format!("MNS {}:{}", sts.id, signature::sign(&sts.secret, &sts_string));
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&auth)?);
        h.insert("security-token", sts.token.clone());
        let mut req = self.http.request(method, format!("{}{target}", self.mns)).headers(h);
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await?))
    }

    /// One batch receive (long poll), its receipts accounted for, and one batch delete.
    async fn round(&mut self) -> anyhow::Result<()> {
        self.credentials().await?;
        let target = format!("{}?numOfMessages={BATCH}&waitseconds={WAIT_SECS}", self.path);
        let (status, body) = self.request(Method::GET, &target, None).await?;
        if status == 404 && body.contains("<Code>MessageNotExist</Code>") {
            return Ok(());
        }
        if status != 200 {
            bail!("receive: HTTP {status}: {body}");
        }
        let mut handles = Vec::new();
        for message in body.split("<Message>").skip(1) {
            let handle = tag(message, "ReceiptHandle").context("a message without ReceiptHandle")?;
            let text = tag(message, "MessageBody").context("a message without MessageBody")?;
            if tag(message, "DequeueCount").is_some_and(|n| n != "1") {
                self.tally.redelivered.fetch_add(1, Ordering::Relaxed);
            }
            self.tally.mns_received.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.account(text) {
                self.tally.error(format!("{} {text}: {e:#}", self.message_type));
            }
            handles.push(handle.to_string());
        }
        if handles.is_empty() {
            bail!("receive: HTTP 200 without messages: {body}");
        }
        let list: String = handles.iter().map(|h| format!("<ReceiptHandle>{h}</ReceiptHandle>")).collect();
        let delete = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><ReceiptHandles xmlns="http://mns.aliyuncs.com/doc/v1/">{list}</ReceiptHandles>"#
        );
        let (status, body) = self.request(Method::DELETE, &self.path, Some(delete)).await?;
        if status != 204 {
            bail!("batch delete of {} messages: HTTP {status}: {body}", handles.len());
        }
        self.tally.mns_deleted.fetch_add(handles.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// A receipt (base64 JSON) counted against its call; a recording's file deleted.
    fn account(&self, text: &str) -> anyhow::Result<()> {
        let json = base64::engine::general_purpose::STANDARD.decode(text)?;
        let report: Value = serde_json::from_slice(&json)?;
        let channel = report["channelId"].as_str().context("no channelId")?.to_string();
        if self.message_type == "ArtcCdrReport" {
            *self.tally.cdrs.lock().expect("tally").entry(channel).or_default() += 1;
            return Ok(());
        }
        *self.tally.recordings.lock().expect("tally").entry(channel).or_default() += 1;
        if report["status_code"] != "200000" {
            bail!("recording status {}", report["status_code"]);
        }
        let file = report["record_file"].as_str().context("no record_file")?;
        if file.is_empty() || file.contains(['/', '\\']) || file.starts_with('.') {
            bail!("record_file {file:?} is not a file name");
        }
        let path = self.recordings.join(file);
        let bytes = std::fs::metadata(&path).with_context(|| format!("the recording {}", path.display()))?.len();
        std::fs::remove_file(&path)?;
        self.tally.recording_files_deleted.fetch_add(1, Ordering::Relaxed);
        self.tally.recording_bytes_deleted.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }
}

/// The text of the first `<name>…</name>` in `xml`.
fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..start + end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tags() {
        let xml = "<Message><ReceiptHandle>1-A-1-x</ReceiptHandle><MessageBody>e30=</MessageBody></Message>";
        assert_eq!(tag(xml, "ReceiptHandle"), Some("1-A-1-x"));
        assert_eq!(tag(xml, "MessageBody"), Some("e30="));
        assert_eq!(tag(xml, "DequeueCount"), None);
    }
}
