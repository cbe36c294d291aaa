//! A minimal POP client signing RPC v1 like the vendor SDKs.

use anyhow::{Context, bail};
use emu_pop::signature::{pct, rpc_v1};
use serde_json::Value;

#[derive(Clone)]
pub struct PopClient {
    base: String,
    ak: String,
    sk: String,
    http: reqwest::Client,
}

impl PopClient {
    pub fn new(base: &str, ak: &str, sk: &str) -> Self {
        PopClient { base: base.into(), ak: ak.into(), sk: sk.into(), http: reqwest::Client::new() }
    }

    /// Any action; returns the HTTP status and the JSON body.
    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> anyhow::Result<(u16, Value)> {
        let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let mut all: Vec<(&str, &str)> = params.to_vec();
        all.extend([
            ("Action", action),
            ("Version", "2017-05-25"),
            ("Format", "JSON"),
            ("AccessKeyId", self.ak.as_str()),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", nonce.as_str()),
            ("Timestamp", timestamp.as_str()),
        ]);
        let signature = rpc_v1::sign(&self.sk, &rpc_v1::string_to_sign("POST", all.iter().copied()));
        all.push(("Signature", &signature));
        let body = all.iter().map(|(k, v)| format!("{}={}", pct(k), pct(v))).collect::<Vec<_>>().join("&");
        let resp = self
            .http
            .post(format!("{}/", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await?))
    }

    async fn ok(&self, action: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
        let (status, body) = self.call(action, params).await?;
        if status != 200 || body["Code"] != "OK" {
            bail!("{action} failed: HTTP {status} {body}");
        }
        Ok(body)
    }

    pub async fn add_rtc_account(&self, device_id: &str) -> anyhow::Result<String> {
        let body = self.ok("AddRtcAccount", &[("DeviceId", device_id)]).await?;
        body["Module"].as_str().map(str::to_string).context("no Module")
    }

    /// The token object (GetRtcToken's Module, decoded).
    pub async fn get_rtc_token(&self, rtc_id: &str, device_id: &str) -> anyhow::Result<Value> {
        let body = self
            .ok("GetRtcToken", &[("UserId", rtc_id), ("DeviceId", device_id), ("IsCustomAccount", "false")])
            .await?;
        Ok(serde_json::from_str(body["Module"].as_str().context("no Module")?)?)
    }
}
