//! Shared helpers for the integration tests: an in-process emulator on ephemeral ports and a
//! POP client that signs like the vendor SDKs (RPC v1 and ACS3).

use std::sync::atomic::{AtomicU64, Ordering};

use emu_pop::signature::{acs3, pct, rpc_v1};
use emu_server::Running;
use serde_json::Value;

pub const AK: &str = "testAK";
pub const SK: &str = "testSecret";

pub struct Emu {
    pub running: Running,
    pub pop: String,
    pub admin: String,
    pub http: reqwest::Client,
}

/// The POP and admin tests count accounts: without the ready-made virtual parties (their own
/// tests are in voip_devices.rs).
const NO_VIRTUAL_DEVICES: &str = "[voip]\ndevices = []\n";

pub async fn start(overrides: &str) -> Emu {
    let config = emu_server::config::for_tests(&format!("{NO_VIRTUAL_DEVICES}{overrides}")).expect("test config");
    let running = emu_server::start(config).await.expect("emulator starts");
    Emu {
        pop: running.endpoints.pop.clone(),
        admin: running.endpoints.admin.clone(),
        running,
        http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().unwrap(),
    }
}

static NONCE: AtomicU64 = AtomicU64::new(1);

pub fn nonce() -> String {
    format!("{:08x}{:024x}", std::process::id(), NONCE.fetch_add(1, Ordering::Relaxed))
}

pub fn now_iso() -> String {
    chrono_like_now()
}

fn chrono_like_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // Civil-from-days (Howard Hinnant), enough for a timestamp parameter.
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The full RPC v1 parameter set of a request, signed.
pub fn signed_v1(method: &str, action: &str, business: &[(&str, &str)], ak: &str, sk: &str) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = business.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for (k, v) in [
        ("Action", action.to_string()),
        ("Version", "2017-05-25".into()),
        ("Format", "JSON".into()),
        ("AccessKeyId", ak.into()),
        ("SignatureMethod", "HMAC-SHA1".into()),
        ("SignatureVersion", "1.0".into()),
        ("SignatureNonce", nonce()),
        ("Timestamp", now_iso()),
    ] {
        if !params.iter().any(|(pk, _)| pk == k) {
            params.push((k.into(), v));
        }
    }
    let sts = rpc_v1::string_to_sign(method, params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    params.push(("Signature".into(), rpc_v1::sign(sk, &sts)));
    params
}

pub fn encode(params: &[(String, String)]) -> String {
    params.iter().map(|(k, v)| format!("{}={}", pct(k), pct(v))).collect::<Vec<_>>().join("&")
}

impl Emu {
    /// Sends a signed RPC v1 request (GET: query; POST: form body) and returns status and JSON.
    pub async fn v1_as(
        &self,
        method: &str,
        action: &str,
        business: &[(&str, &str)],
        ak: &str,
        sk: &str,
    ) -> (u16, Value) {
        let params = signed_v1(method, action, business, ak, sk);
        self.send_params(method, &params).await
    }

    pub async fn v1(&self, action: &str, business: &[(&str, &str)]) -> (u16, Value) {
        self.v1_as("POST", action, business, AK, SK).await
    }

    pub async fn send_params(&self, method: &str, params: &[(String, String)]) -> (u16, Value) {
        let req = if method == "GET" {
            self.http.get(format!("{}/?{}", self.pop, encode(params)))
        } else {
            self.http
                .post(format!("{}/", self.pop))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode(params))
        };
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")))
    }

    /// Sends an ACS3-signed POST with the business parameters in the query, like Tea 5.x.
    pub async fn acs3(&self, action: &str, query: &[(&str, &str)], sk: &str) -> (u16, Value) {
        let host = self.pop.trim_start_matches("http://").to_string();
        let headers = [
            ("host", host.clone()),
            ("x-acs-action", action.to_string()),
            ("x-acs-version", "2017-05-25".into()),
            ("x-acs-date", now_iso()),
            ("x-acs-signature-nonce", nonce()),
            ("accept", "application/json".into()),
            ("x-acs-content-sha256", acs3::hex_sha256(b"")),
        ];
        let signed: Vec<String> = headers.iter().map(|(k, _)| k.to_string()).collect();
        let canon = acs3::canonical_request(
            "POST",
            "/",
            query.iter().copied(),
            |n| headers.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone()),
            &signed,
            &acs3::hex_sha256(b""),
        );
        let auth = acs3::Authorization {
            credential: AK.into(),
            signed_headers: signed,
            signature: acs3::sign(sk, &acs3::string_to_sign(&canon)),
        };
        let q: Vec<(String, String)> = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut req = self.http.post(format!("{}/?{}", self.pop, encode(&q)));
        for (k, v) in headers.iter().filter(|(k, _)| *k != "host") {
            req = req.header(*k, v);
        }
        let resp = req.header("authorization", auth.header_value()).send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON"))
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        self.http.get(format!("{}{path}", self.admin)).send().await.unwrap().json().await.unwrap()
    }

    pub async fn admin_send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let resp = self.http.request(method, format!("{}{path}", self.admin)).json(&body).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    }

    /// A new account for a fresh device id.
    pub async fn new_account(&self) -> String {
        let (status, body) = self.v1("AddRtcAccount", &[("DeviceId", &format!("dev-{}", nonce()))]).await;
        assert_eq!((status, body["Code"].as_str()), (200, Some("OK")), "{body}");
        body["Module"].as_str().unwrap().to_string()
    }
}
