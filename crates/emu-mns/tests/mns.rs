//! The MNS service over HTTP on an ephemeral port, on a manual emulator clock: long polls that
//! wake on a send or on a clock advance, visibility and receipt handles, batches, STS tokens,
//! tenants, errors, durability, HTTP push, admin routes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use emu_core::accounts::TokenSettings;
use emu_core::{Clock, Config, Shared, TenantId};
use emu_mns::{Mns, MnsConfig, signature};

const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const Q: &str = "Alicom-Queue-1234567890123456-ArtcCdrReport";

fn config() -> Config {
    let mut v: toml::Value = toml::from_str(include_str!("../../../fixtures/default.toml")).unwrap();
    let tenants: toml::Value = toml::from_str(
        r#"
        [[tenants]]
        name = "default"
        uid = "1234567890123456"
        [[tenants.access_keys]]
        id = "testAK"
        secret = "testSecret"
        [[tenants]]
        name = "other"
        uid = "6543210987654321"
        [[tenants.access_keys]]
        id = "otherAK"
        secret = "otherSecret"
        "#,
    )
    .unwrap();
    v.as_table_mut().unwrap().insert("tenants".into(), tenants["tenants"].clone());
    v.try_into().unwrap()
}

fn shared(clock: Clock) -> Shared {
    let ts = TokenSettings {
        mqtt_host: "127.0.0.1:0/mqtt".into(),
        mqtt_ws_port: 0,
        mqtt_tcp_port: 0,
        conference_topic: "t".into(),
        server_id: "s".into(),
        lifetime_ms: 1000,
    };
    Shared::with_clock(config(), ts, clock)
}

struct Emu {
    mns: Arc<Mns>,
    base: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Clone)]
struct Creds {
    ak: String,
    sk: String,
    token: Option<String>,
}

fn root() -> Creds {
    Creds { ak: "testAK".into(), sk: "testSecret".into(), token: None }
}

struct Resp {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Resp {
    fn tag(&self, name: &str) -> Option<String> {
        let open = format!("<{name}>");
        let start = self.body.find(&open)? + open.len();
        let end = self.body[start..].find(&format!("</{name}>"))? + start;
        Some(self.body[start..end].to_string())
    }

    fn tags(&self, name: &str) -> Vec<String> {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        self.body
            .match_indices(&open)
            .filter_map(|(i, _)| {
                let s = i + open.len();
                self.body[s..].find(&close).map(|e| self.body[s..s + e].to_string())
            })
            .collect()
    }

    fn code(&self) -> Option<String> {
        self.tag("Code")
    }

    #[track_caller]
    fn expect_error(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code().as_deref()), (status, Some(code)), "{}", self.body);
        assert!(self.body.contains("<Error xmlns=\"http://mns.aliyuncs.com/doc/v1\">"), "{}", self.body);
        for t in ["Code", "Message", "RequestId", "HostId"] {
            assert!(self.tag(t).is_some_and(|v| !v.is_empty()), "{t} missing: {}", self.body);
        }
        assert_eq!(self.headers["content-type"], "text/xml;charset=utf-8");
        assert_eq!(self.tag("RequestId").unwrap(), self.headers["x-mns-request-id"].to_str().unwrap());
    }
}

impl Emu {
    async fn start(mns: Arc<Mns>) -> Emu {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = emu_mns::router(mns.clone())
            .merge(axum::Router::from(emu_admin::routes::mns::routes().with_state(mns.clone())));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Emu { mns, base, http: reqwest::Client::new(), stop: Some(tx), task: Some(task) }
    }

    async fn manual() -> Emu {
        let mns = Mns::new(shared(Clock::manual_at(T0)), MnsConfig::default(), None).unwrap();
        Emu::start(mns).await
    }

    async fn stop(mut self) {
        self.mns.shutdown();
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }

    fn advance(&self, ms: u64) {
        self.mns.shared.clock.advance(ms).unwrap();
    }

    async fn call_with(
        &self,
        method: &str,
        target: &str,
        body: Option<&str>,
        c: &Creds,
        extra: &[(&str, &str)],
    ) -> Resp {
        let mut h = HeaderMap::new();
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        h.insert("date", HeaderValue::from_str(&date).unwrap());
        h.insert("x-mns-version", HeaderValue::from_static("2015-06-06"));
        if let Some(b) = body {
            let md5 = B64.encode(hex_md5(b.as_bytes()));
            h.insert("content-md5", HeaderValue::from_str(&md5).unwrap());
            h.insert("content-type", HeaderValue::from_static("text/xml;charset=UTF-8"));
        }
        for (k, v) in extra {
            h.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        let sts = signature::string_to_sign(method, &h, target);
        let auth = format!("MNS {}:{}", c.ak, signature::sign(&c.sk, &sts));
        h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        if let Some(t) = &c.token {
            h.insert("security-token", HeaderValue::from_str(t).unwrap());
        }
        let req = self
            .http
            .request(method.parse().unwrap(), format!("{}{target}", self.base))
            .headers(h)
            .body(body.unwrap_or_default().to_string());
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.text().await.unwrap();
        Resp { status, headers, body }
    }

    async fn call(&self, method: &str, target: &str, body: Option<&str>) -> Resp {
        self.call_with(method, target, body, &root(), &[]).await
    }

    async fn create(&self, q: &str, attrs: &str) -> Resp {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Queue xmlns=\"http://mns.aliyuncs.com/doc/v1/\">{attrs}</Queue>"
        );
        self.call("PUT", &format!("/queues/{q}"), Some(&body)).await
    }

    async fn send(&self, q: &str, body: &str) -> Resp {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Message xmlns=\"http://mns.aliyuncs.com/doc/v1/\"><MessageBody>{body}</MessageBody></Message>"
        );
        self.call("POST", &format!("/queues/{q}/messages"), Some(&xml)).await
    }

    async fn get_json(&self, path: &str) -> serde_json::Value {
        self.http.get(format!("{}{path}", self.base)).send().await.unwrap().json().await.unwrap()
    }
}

fn hex_md5(b: &[u8]) -> String {
    signature::md5_upper_hex(b).to_lowercase()
}

#[tokio::test]
async fn send_receive_delete_and_the_response_shapes() {
    let emu = Emu::manual().await;
    let r = emu.create(Q, "<VisibilityTimeout>60</VisibilityTimeout>").await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.headers["location"], format!("{}/queues/{Q}", emu.base));
    assert_eq!(emu.create(Q, "<VisibilityTimeout>60</VisibilityTimeout>").await.status, 204, "same attributes");
    emu.create(Q, "<VisibilityTimeout>61</VisibilityTimeout>").await.expect_error(409, "QueueAlreadyExist");

    let sent = emu.send(Q, "eyJhIjoxfQ==").await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    assert_eq!(sent.headers["x-mns-version"], "2015-06-06");
    assert_eq!(sent.tag("MessageBodyMD5").unwrap(), signature::md5_upper_hex(b"eyJhIjoxfQ=="));
    let id = sent.tag("MessageId").unwrap();

    let r = emu.call("GET", &format!("/queues/{Q}/messages?waitseconds=0"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for t in [
        "MessageId",
        "ReceiptHandle",
        "MessageBody",
        "MessageBodyMD5",
        "EnqueueTime",
        "NextVisibleTime",
        "FirstDequeueTime",
        "DequeueCount",
        "Priority",
    ] {
        assert!(r.tag(t).is_some(), "{t} missing in {}", r.body);
    }
    assert_eq!(r.tag("MessageId").unwrap(), id);
    assert_eq!(r.tag("EnqueueTime").unwrap(), T0.to_string());
    assert_eq!(r.tag("NextVisibleTime").unwrap(), (T0 + 60_000).to_string());
    assert_eq!(r.tag("DequeueCount").unwrap(), "1");
    assert_eq!(r.tag("Priority").unwrap(), "8");
    let handle = r.tag("ReceiptHandle").unwrap();

    let d = emu.call("DELETE", &format!("/queues/{Q}/messages?ReceiptHandle={handle}"), None).await;
    assert_eq!((d.status, d.body.as_str()), (204, ""));
    emu.call("DELETE", &format!("/queues/{Q}/messages?ReceiptHandle={handle}"), None)
        .await
        .expect_error(400, "ReceiptHandleError");
    emu.call("GET", &format!("/queues/{Q}/messages"), None).await.expect_error(404, "MessageNotExist");

    let attrs = emu.call("GET", &format!("/queues/{Q}"), None).await;
    for t in [
        "QueueName",
        "CreateTime",
        "LastModifyTime",
        "DelaySeconds",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "VisibilityTimeout",
        "PollingWaitSeconds",
        "ActiveMessages",
        "InactiveMessages",
        "DelayMessages",
        "LoggingEnabled",
    ] {
        assert!(attrs.tag(t).is_some(), "{t} missing in {}", attrs.body);
    }
    assert_eq!(attrs.tag("VisibilityTimeout").unwrap(), "60");
    emu.stop().await;
}

#[tokio::test]
async fn long_poll_returns_within_milliseconds_of_a_send() {
    let emu = Arc::new(Emu::manual().await);
    emu.create(Q, "").await;
    let poller = {
        let emu = emu.clone();
        tokio::spawn(async move {
            let r = emu.call("GET", &format!("/queues/{Q}/messages?waitseconds=30"), None).await;
            (r, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poller.is_finished(), "the long poll must wait");
    let sent_at = Instant::now();
    assert_eq!(emu.send(Q, "aGk=").await.status, 201);
    let (r, got_at) = poller.await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.tag("MessageBody").unwrap(), "aGk=");
    let latency = got_at.saturating_duration_since(sent_at);
    assert!(latency < Duration::from_millis(100), "long poll answered {latency:?} after the send");
    Arc::try_unwrap(emu).ok().unwrap().stop().await;
}

#[tokio::test]
async fn long_poll_on_a_manual_clock_ends_when_emulator_time_has_passed() {
    let emu = Arc::new(Emu::manual().await);
    emu.create(Q, "").await;
    let poller = {
        let emu = emu.clone();
        tokio::spawn(async move { emu.call("GET", &format!("/queues/{Q}/messages?waitseconds=5"), None).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    emu.advance(4_000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!poller.is_finished(), "4 of 5 seconds have passed");
    emu.advance(1_000);
    let r = tokio::time::timeout(Duration::from_secs(2), poller).await.expect("ends on the advance").unwrap();
    r.expect_error(404, "MessageNotExist");
    Arc::try_unwrap(emu).ok().unwrap().stop().await;
}

#[tokio::test]
async fn visibility_timeout_brings_an_undeleted_message_back_and_wakes_a_waiting_poll() {
    let emu = Arc::new(Emu::manual().await);
    emu.create(Q, "<VisibilityTimeout>30</VisibilityTimeout>").await;
    emu.send(Q, "aGk=").await;
    let first = emu.call("GET", &format!("/queues/{Q}/messages"), None).await;
    let h1 = first.tag("ReceiptHandle").unwrap();
    assert!(h1.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{h1}");

    let poller = {
        let emu = emu.clone();
        tokio::spawn(async move { emu.call("GET", &format!("/queues/{Q}/messages?waitseconds=30"), None).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!poller.is_finished());
    emu.advance(30_000);
    let again = tokio::time::timeout(Duration::from_secs(2), poller).await.expect("woken by the advance").unwrap();
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.tag("DequeueCount").unwrap(), "2");
    assert_eq!(again.tag("FirstDequeueTime").unwrap(), T0.to_string());
    let h2 = again.tag("ReceiptHandle").unwrap();
    assert_ne!(h1, h2);

    // The stale handle is refused (delete and change visibility), the newest one works.
    emu.call("DELETE", &format!("/queues/{Q}/messages?ReceiptHandle={h1}"), None)
        .await
        .expect_error(400, "ReceiptHandleError");
    emu.call("PUT", &format!("/queues/{Q}/messages?ReceiptHandle={h1}&VisibilityTimeout=5"), None)
        .await
        .expect_error(400, "ReceiptHandleError");
    // Node's casing of the parameters.
    let cv = emu.call("PUT", &format!("/queues/{Q}/messages?receiptHandle={h2}&visibilityTimeout=5"), None).await;
    assert_eq!(cv.status, 200, "{}", cv.body);
    assert!(cv.body.contains("<ChangeVisibility"));
    assert_eq!(cv.tag("NextVisibleTime").unwrap(), (T0 + 35_000).to_string());
    let h3 = cv.tag("ReceiptHandle").unwrap();
    emu.call("DELETE", &format!("/queues/{Q}/messages?ReceiptHandle={h2}"), None)
        .await
        .expect_error(400, "ReceiptHandleError");
    emu.call("PUT", &format!("/queues/{Q}/messages?ReceiptHandle={h3}&VisibilityTimeout=0"), None)
        .await
        .expect_error(400, "InvalidArgument");
    emu.call("PUT", &format!("/queues/{Q}/messages?ReceiptHandle={h3}&VisibilityTimeout=43201"), None)
        .await
        .expect_error(400, "InvalidArgument");
    emu.call("PUT", &format!("/queues/{Q}/messages?ReceiptHandle={h3}"), None)
        .await
        .expect_error(400, "MissingVisibilityTimeout");
    emu.call("PUT", &format!("/queues/{Q}/messages?VisibilityTimeout=3"), None)
        .await
        .expect_error(400, "MissingReceiptHandle");
    // Past NextVisibleTime the handle is no longer valid either.
    emu.advance(5_000);
    emu.call("DELETE", &format!("/queues/{Q}/messages?ReceiptHandle={h3}"), None)
        .await
        .expect_error(400, "ReceiptHandleError");
    let third = emu.call("GET", &format!("/queues/{Q}/messages"), None).await;
    assert_eq!(third.tag("DequeueCount").unwrap(), "3");
    Arc::try_unwrap(emu).ok().unwrap().stop().await;
}

#[tokio::test]
async fn batches_peeks_priorities_and_limits() {
    let emu = Emu::manual().await;
    emu.create(Q, "").await;
    let batch = |n: usize, prio: bool| {
        let mut x = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Messages xmlns=\"http://mns.aliyuncs.com/doc/v1/\">",
        );
        for i in 0..n {
            let p = if prio { format!("<Priority>{}</Priority>", 16 - (i % 16)) } else { String::new() };
            x.push_str(&format!("<Message><MessageBody>m{i}</MessageBody>{p}</Message>"));
        }
        x + "</Messages>"
    };
    let r = emu.call("POST", &format!("/queues/{Q}/messages"), Some(&batch(17, false))).await;
    r.expect_error(400, "InvalidArgument");
    let r = emu.call("POST", &format!("/queues/{Q}/messages"), Some(&batch(16, true))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.tags("MessageId").len(), 16);

    let peek = emu.call("GET", &format!("/queues/{Q}/messages?peekonly=true&numOfMessages=3"), None).await;
    assert_eq!(peek.status, 200);
    assert_eq!(peek.tags("MessageBody"), ["m15", "m14", "m13"], "priority 1 first");
    assert!(peek.tag("ReceiptHandle").is_none() && peek.tag("NextVisibleTime").is_none());
    assert_eq!(peek.tags("DequeueCount"), ["0", "0", "0"]);
    let one = emu.call("GET", &format!("/queues/{Q}/messages?peekonly=true"), None).await;
    assert!(one.body.contains("<Message xmlns="), "single peek answers <Message>: {}", one.body);

    emu.call("GET", &format!("/queues/{Q}/messages?numOfMessages=17"), None).await.expect_error(400, "InvalidArgument");
    emu.call("GET", &format!("/queues/{Q}/messages?numOfMessages=0"), None).await.expect_error(400, "InvalidArgument");
    emu.call("GET", &format!("/queues/{Q}/messages?waitseconds=31"), None).await.expect_error(400, "InvalidArgument");
    let got = emu.call("GET", &format!("/queues/{Q}/messages?numOfMessages=16&waitseconds=1"), None).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert!(got.body.contains("<Messages xmlns="));
    let handles = got.tags("ReceiptHandle");
    assert_eq!(handles.len(), 16);

    // Batch delete with one stale handle: 404 and the failures listed, the rest deleted.
    let mut body = String::from("<ReceiptHandles xmlns=\"http://mns.aliyuncs.com/doc/v1/\">");
    for h in &handles[..3] {
        body.push_str(&format!("<ReceiptHandle>{h}</ReceiptHandle>"));
    }
    body.push_str("<ReceiptHandle>1-0123456789ABCDEF0123456789ABCDEF-1-nope</ReceiptHandle></ReceiptHandles>");
    let d = emu.call("DELETE", &format!("/queues/{Q}/messages"), Some(&body)).await;
    assert_eq!(d.status, 404, "{}", d.body);
    assert_eq!(d.tags("ErrorCode"), ["ReceiptHandleError"]);
    assert_eq!(d.tag("ReceiptHandle").unwrap(), "1-0123456789ABCDEF0123456789ABCDEF-1-nope");
    let mut body = String::from("<ReceiptHandles>");
    for h in &handles[3..] {
        body.push_str(&format!("<ReceiptHandle>{h}</ReceiptHandle>"));
    }
    body.push_str("</ReceiptHandles>");
    assert_eq!(emu.call("DELETE", &format!("/queues/{Q}/messages"), Some(&body)).await.status, 204);
    let attrs = emu.call("GET", &format!("/queues/{Q}"), None).await;
    assert_eq!(
        (attrs.tag("ActiveMessages").unwrap(), attrs.tag("InactiveMessages").unwrap()),
        ("0".into(), "0".into())
    );

    // Limits: 64 KiB bodies, priorities 1-16, delay 0-604800.
    let big = "x".repeat(65_537);
    emu.send(Q, &big).await.expect_error(400, "InvalidArgument");
    assert_eq!(emu.send(Q, &"x".repeat(65_536)).await.status, 201);
    let m = |extra: &str| format!("<Message><MessageBody>x</MessageBody>{extra}</Message>");
    for bad in [
        "<Priority>0</Priority>",
        "<Priority>17</Priority>",
        "<DelaySeconds>604801</DelaySeconds>",
        "<Priority>high</Priority>",
    ] {
        emu.call("POST", &format!("/queues/{Q}/messages"), Some(&m(bad))).await.expect_error(400, "InvalidArgument");
    }
    let delayed = emu.call("POST", &format!("/queues/{Q}/messages"), Some(&m("<DelaySeconds>10</DelaySeconds>"))).await;
    assert_eq!(delayed.status, 201);
    let attrs = emu.call("GET", &format!("/queues/{Q}"), None).await;
    assert_eq!(attrs.tag("DelayMessages").unwrap(), "1");
    emu.create("Bad-Attrs", "<VisibilityTimeout>0</VisibilityTimeout>").await.expect_error(400, "InvalidArgument");
    emu.create("Bad-Attrs", "<MessageRetentionPeriod>59</MessageRetentionPeriod>")
        .await
        .expect_error(400, "InvalidArgument");
    emu.stop().await;
}

#[tokio::test]
async fn bad_input_gets_vendor_errors_and_loses_nothing_elsewhere() {
    let emu = Emu::manual().await;
    emu.create(Q, "").await;
    emu.create("Keep", "").await;
    emu.send("Keep", "a2VlcA==").await;
    emu.call("POST", &format!("/queues/{Q}/messages"), Some("<Message><MessageBody>x</Message>"))
        .await
        .expect_error(400, "MalformedXML");
    emu.call("POST", &format!("/queues/{Q}/messages"), Some("not xml at all")).await.expect_error(400, "MalformedXML");
    emu.send("No-Such-Queue", "eA==").await.expect_error(404, "QueueNotExist");
    emu.call("GET", "/queues/No-Such-Queue/messages?waitseconds=0", None).await.expect_error(404, "QueueNotExist");
    emu.call("GET", "/queues/9starts-with-digit", None).await.expect_error(400, "InvalidQueueName");
    emu.call("GET", "/topics/t", None).await.expect_error(400, "InvalidRequestURL");
    let bad_sig =
        emu.call_with("GET", "/queues/Keep/messages", None, &Creds { sk: "wrong".into(), ..root() }, &[]).await;
    bad_sig.expect_error(403, "SignatureDoesNotMatch");
    let unknown =
        emu.call_with("GET", "/queues/Keep/messages", None, &Creds { ak: "NoSuchAK".into(), ..root() }, &[]).await;
    unknown.expect_error(403, "InvalidAccessKeyId");
    let r = emu.http.get(format!("{}/queues/Keep/messages", emu.base)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // Content-MD5 that does not match the body.
    let body = "<Message><MessageBody>eA==</MessageBody></Message>";
    let wrong_md5 = B64.encode(hex_md5(b"something else"));
    emu.call_with("POST", "/queues/Keep/messages", Some(body), &root(), &[("content-md5", &wrong_md5)])
        .await
        .expect_error(400, "InvalidDegist");
    // The other queue is intact.
    let keep = emu.call("GET", "/queues/Keep/messages?peekonly=true", None).await;
    assert_eq!(keep.tag("MessageBody").unwrap(), "a2VlcA==");
    emu.stop().await;
}

/// A body nesting one element 50,000 levels deep (~340 KB) inside a valid root.
fn deep(root: &str, inner: &str) -> String {
    const N: usize = 50_000;
    format!("<{root}>{}{}</{root}>", format!("<{inner}>").repeat(N), format!("</{inner}>").repeat(N))
}

#[tokio::test]
async fn deeply_nested_xml_is_malformed_and_changes_nothing() {
    let emu = Emu::manual().await;
    assert_eq!(emu.create(Q, "<VisibilityTimeout>60</VisibilityTimeout>").await.status, 201);
    assert_eq!(emu.send(Q, "a2VlcA==").await.status, 201);
    let messages = format!("/queues/{Q}/messages");
    let queue = format!("/queues/{Q}");
    let cases = [
        ("POST", messages.clone(), deep("Message", "MessageBody")),
        ("POST", messages.clone(), deep("Messages", "Message")),
        ("PUT", "/queues/Deep-New".to_string(), deep("Queue", "VisibilityTimeout")),
        ("PUT", format!("{queue}?metaoverride=true"), deep("Queue", "VisibilityTimeout")),
        ("DELETE", messages.clone(), deep("ReceiptHandles", "ReceiptHandle")),
    ];
    for (method, target, body) in &cases {
        emu.call(method, target, Some(body)).await.expect_error(400, "MalformedXML");
    }
    // The server still serves, and nothing changed.
    emu.call("GET", "/queues/Deep-New", None).await.expect_error(404, "QueueNotExist");
    let attrs = emu.call("GET", &queue, None).await;
    assert_eq!(attrs.tag("VisibilityTimeout").as_deref(), Some("60"), "{}", attrs.body);
    assert_eq!(attrs.tag("ActiveMessages").as_deref(), Some("1"), "{}", attrs.body);
    let peek = emu.call("GET", &format!("{messages}?peekonly=true"), None).await;
    assert_eq!(peek.tag("MessageBody").as_deref(), Some("a2VlcA=="), "{}", peek.body);
    emu.stop().await;
}

#[tokio::test]
async fn sts_tokens_are_scoped_checked_and_expire() {
    let emu = Emu::manual().await;
    emu.create(Q, "").await;
    emu.create("Another-Queue", "").await;
    emu.send(Q, "aGk=").await;
    let now = emu.mns.shared.clock.now_ms();
    let c = emu.mns.shared.tenants.issue_sts(TenantId(0), now, 600_000, vec![Q.to_string()]);
    let sts =
        Creds { ak: c.access_key_id.clone(), sk: c.access_key_secret.clone(), token: Some(c.security_token.clone()) };

    let r = emu.call_with("GET", &format!("/queues/{Q}/messages?waitseconds=0"), None, &sts, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let h = r.tag("ReceiptHandle").unwrap();
    assert_eq!(
        emu.call_with("DELETE", &format!("/queues/{Q}/messages?ReceiptHandle={h}"), None, &sts, &[]).await.status,
        204
    );

    emu.call_with("GET", "/queues/Another-Queue/messages", None, &sts, &[]).await.expect_error(403, "AccessDenied");
    let no_token = Creds { token: None, ..sts.clone() };
    emu.call_with("GET", &format!("/queues/{Q}/messages"), None, &no_token, &[])
        .await
        .expect_error(403, "AccessDenied");
    let bad_token = Creds { token: Some("CAISnope".into()), ..sts.clone() };
    emu.call_with("GET", &format!("/queues/{Q}/messages"), None, &bad_token, &[])
        .await
        .expect_error(403, "AccessDenied");
    let list = emu.call_with("GET", "/queues", None, &sts, &[]).await;
    assert_eq!(list.tags("QueueURL"), [format!("{}/queues/{Q}", emu.base)], "a scoped key lists its queues only");

    // The Host of the vendor's alicom account (hosts-file setups) and the tenant's own are fine;
    // another account is not.
    for host in ["1943695596114318.mns.cn-hangzhou.aliyuncs.com", "1234567890123456.mns.cn-hangzhou.aliyuncs.com"] {
        let r = emu.call_with("GET", &format!("/queues/{Q}/messages"), None, &sts, &[("host", host)]).await;
        r.expect_error(404, "MessageNotExist");
    }
    emu.call_with(
        "GET",
        &format!("/queues/{Q}/messages"),
        None,
        &sts,
        &[("host", "6543210987654321.mns.cn-hangzhou.aliyuncs.com")],
    )
    .await
    .expect_error(403, "AccessDenied");

    emu.advance(600_000);
    let expired = emu.call_with("GET", &format!("/queues/{Q}/messages"), None, &sts, &[]).await;
    expired.expect_error(403, "AccessDenied");
    assert!(expired.tag("Message").unwrap().contains("expired"));
    emu.stop().await;
}

#[tokio::test]
async fn tenants_see_only_their_queues() {
    let emu = Emu::manual().await;
    emu.create(Q, "").await;
    let other = Creds { ak: "otherAK".into(), sk: "otherSecret".into(), token: None };
    emu.call_with("GET", &format!("/queues/{Q}/messages"), None, &other, &[]).await.expect_error(404, "QueueNotExist");
    let list = emu.call_with("GET", "/queues", None, &other, &[]).await;
    assert_eq!(list.status, 200);
    assert!(list.tags("QueueURL").is_empty(), "{}", list.body);
    // Same name, other tenant: a different queue.
    assert_eq!(emu.call_with("PUT", &format!("/queues/{Q}"), Some("<Queue/>"), &other, &[]).await.status, 201);
    emu.stop().await;
}

#[tokio::test]
async fn list_queue_pages_with_prefix_marker_and_ret_number() {
    let emu = Emu::manual().await;
    for q in ["a-1", "a-2", "a-3", "b-1"] {
        emu.create(q, "").await;
    }
    let r = emu.call_with("GET", "/queues", None, &root(), &[("x-mns-prefix", "a-"), ("x-mns-ret-number", "2")]).await;
    assert_eq!(r.tags("QueueURL"), [format!("{}/queues/a-1", emu.base), format!("{}/queues/a-2", emu.base)]);
    let marker = r.tag("NextMarker").unwrap();
    let r = emu
        .call_with(
            "GET",
            "/queues",
            None,
            &root(),
            &[("x-mns-prefix", "a-"), ("x-mns-ret-number", "2"), ("x-mns-marker", &marker)],
        )
        .await;
    assert_eq!(r.tags("QueueURL"), [format!("{}/queues/a-3", emu.base)]);
    assert!(r.tag("NextMarker").is_none());
    let meta =
        emu.call_with("GET", "/queues", None, &root(), &[("x-mns-prefix", "b"), ("x-mns-with-meta", "true")]).await;
    assert_eq!(meta.tag("VisibilityTimeout").unwrap(), "30");
    emu.call_with("GET", "/queues", None, &root(), &[("x-mns-ret-number", "0")])
        .await
        .expect_error(400, "InvalidArgument");

    let set = emu
        .call("PUT", "/queues/a-1?metaoverride=true", Some("<Queue><PollingWaitSeconds>3</PollingWaitSeconds></Queue>"))
        .await;
    assert_eq!(set.status, 204, "{}", set.body);
    assert_eq!(emu.call("GET", "/queues/a-1", None).await.tag("PollingWaitSeconds").unwrap(), "3");
    emu.call("PUT", "/queues/nope?metaoverride=true", Some("<Queue/>")).await.expect_error(404, "QueueNotExist");
    assert_eq!(emu.call("DELETE", "/queues/a-1", None).await.status, 204);
    emu.call("GET", "/queues/a-1", None).await.expect_error(404, "QueueNotExist");
    emu.stop().await;
}

#[tokio::test]
async fn deliver_puts_base64_json_into_the_alicom_queue_and_admin_shows_it() {
    let emu = Emu::manual().await;
    let body = serde_json::json!({"channelId": "ch-1", "duration": "60"});
    let d = emu.mns.deliver(TenantId(0), "ArtcCdrReport", &body).await.unwrap();
    assert_eq!(d.queue, Q);
    let attrs = emu.call("GET", &format!("/queues/{Q}"), None).await;
    assert_eq!(attrs.tag("VisibilityTimeout").unwrap(), "30");
    let got = emu.call("GET", &format!("/queues/{Q}/messages"), None).await;
    let b = got.tag("MessageBody").unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&B64.decode(&b).unwrap()).unwrap(), body);
    assert_eq!(got.tag("MessageBodyMD5").unwrap(), signature::md5_upper_hex(b.as_bytes()));

    let queues = emu.get_json("/admin/mns/queues").await;
    assert_eq!(queues["queues"][0]["name"], Q);
    assert_eq!(queues["queues"][0]["inactiveMessages"], 1);
    let msgs = emu.get_json(&format!("/admin/mns/queues/{Q}/messages")).await;
    assert_eq!(msgs["messages"][0]["decoded"], body);
    assert_eq!(msgs["messages"][0]["state"], "inactive");
    let events = emu.mns.shared.events.query(&Default::default());
    assert!(events.iter().any(|e| e.kind == "receipt.queued" && e.channel_id.as_deref() == Some("ch-1")));

    let purged: serde_json::Value =
        emu.http.post(format!("{}/admin/mns/queues/{Q}/purge", emu.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(purged["purged"], 1);

    // Retention: swept without anyone touching the queue.
    emu.create("Short-Lived", "<MessageRetentionPeriod>60</MessageRetentionPeriod>").await;
    emu.send("Short-Lived", "eA==").await;
    emu.advance(60_000);
    emu.mns.sweep();
    assert_eq!(emu.mns.queues(Some(TenantId(0))).iter().find(|q| q.name == "Short-Lived").unwrap().active_messages, 0);

    emu.mns.reset();
    emu.call("GET", &format!("/queues/{Q}"), None).await.expect_error(404, "QueueNotExist");
    emu.stop().await;
}

#[tokio::test]
async fn http_push_retries_with_backoff_on_the_emulator_clock() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    let receiver = {
        let hits = hits.clone();
        axum::Router::new().route(
            "/push",
            axum::routing::post(move |body: axum::body::Bytes| {
                let hits = hits.clone();
                async move {
                    let n = hits.fetch_add(1, Ordering::SeqCst);
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    assert_eq!(v[0]["channelId"], "ch-9");
                    if n < 2 {
                        (axum::http::StatusCode::OK, r#"{"code":1,"msg":"busy"}"#)
                    } else {
                        (axum::http::StatusCode::OK, r#"{"code":0,"msg":"成功"}"#)
                    }
                }
            }),
        )
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/push", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, receiver).await.unwrap() });

    let config = MnsConfig {
        push: vec![emu_mns::PushTarget { tenant: "default".into(), message_type: "*".into(), url }],
        push_backoff_ms: 1000,
        ..MnsConfig::default()
    };
    let mns = Mns::new(shared(Clock::manual_at(T0)), config, None).unwrap();
    mns.deliver(TenantId(0), "VoiceRecordReport", &serde_json::json!({"channelId": "ch-9"})).await.unwrap();
    let wait_for = |n: usize| {
        let hits = hits.clone();
        async move {
            for _ in 0..100 {
                if hits.load(Ordering::SeqCst) >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("only {} pushes", hits.load(Ordering::SeqCst));
        }
    };
    wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the retry waits for emulator time");
    mns.shared.clock.advance(1000).unwrap();
    wait_for(2).await;
    mns.shared.clock.advance(1000).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 2, "the second retry waits twice as long");
    mns.shared.clock.advance(1000).unwrap();
    wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pushes: Vec<_> =
        mns.shared.events.query(&Default::default()).into_iter().filter(|e| e.kind == "receipt.push").collect();
    assert_eq!(pushes.len(), 3);
    assert_eq!(
        pushes.iter().map(|e| e.detail.field("ok").as_bool().unwrap()).collect::<Vec<_>>(),
        [false, false, true]
    );
    assert_eq!(pushes[0].detail.field("retryInMs"), 1000);
    assert_eq!(pushes[1].detail.field("retryInMs"), 2000);
    mns.shutdown();
}

#[tokio::test]
async fn restart_with_a_data_dir_keeps_messages_and_their_visibility() {
    let dir = std::env::temp_dir().join(format!("emu-mns-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let clock = Clock::manual_at(T0);
    let (handle, delivered) = {
        let mns = Mns::new(shared(clock.clone()), MnsConfig::default(), Some(&dir)).unwrap();
        let emu = Emu::start(mns).await;
        emu.create(Q, "<VisibilityTimeout>100</VisibilityTimeout>").await;
        emu.send(Q, "b25l").await;
        emu.send(Q, "dHdv").await;
        emu.send(Q, "dGhyZWU=").await;
        let r = emu.call("GET", &format!("/queues/{Q}/messages"), None).await;
        let h = r.tag("ReceiptHandle").unwrap();
        let r2 = emu.call("GET", &format!("/queues/{Q}/messages"), None).await;
        let h2 = r2.tag("ReceiptHandle").unwrap();
        assert_eq!(emu.call("DELETE", &format!("/queues/{Q}/messages?ReceiptHandle={h2}"), None).await.status, 204);
        let d = emu.mns.deliver(TenantId(1), "VoiceRecordReport", &serde_json::json!({"k": 1})).await.unwrap();
        emu.stop().await;
        (h, d)
    };
    // Let the old instance (and its store thread) go away completely.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mns = Mns::new(shared(clock.clone()), MnsConfig::default(), Some(&dir)).unwrap();
    let emu = Emu::start(mns).await;
    let attrs = emu.call("GET", &format!("/queues/{Q}"), None).await;
    assert_eq!(attrs.tag("VisibilityTimeout").unwrap(), "100");
    assert_eq!(
        (attrs.tag("ActiveMessages").unwrap(), attrs.tag("InactiveMessages").unwrap()),
        ("1".into(), "1".into())
    );
    // The in-flight message keeps its receipt handle and its NextVisibleTime.
    let peek = emu.call("GET", &format!("/queues/{Q}/messages?peekonly=true"), None).await;
    assert_eq!(peek.tag("MessageBody").unwrap(), "dGhyZWU=");
    assert_eq!(emu.call("DELETE", &format!("/queues/{Q}/messages?ReceiptHandle={handle}"), None).await.status, 204);
    let other = emu.mns.messages(TenantId(1), &delivered.queue).unwrap();
    assert_eq!(other[0].message_id, delivered.message_id);
    // New messages do not reuse sequence numbers: FIFO order holds across the restart.
    emu.send(Q, "Zm91cg==").await;
    let order: Vec<String> = emu.mns.messages(TenantId(0), Q).unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(order, ["dGhyZWU=", "Zm91cg=="]);
    emu.mns.reset();
    emu.stop().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mns = Mns::new(shared(clock), MnsConfig::default(), Some(&dir)).unwrap();
    assert!(mns.queues(None).is_empty(), "reset clears the store too");
    drop(mns);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn shutdown_and_reset_end_pending_long_polls() {
    let emu = Arc::new(Emu::manual().await);
    emu.create(Q, "").await;
    let spawn_poll = || {
        let emu = emu.clone();
        tokio::spawn(async move { emu.call("GET", &format!("/queues/{Q}/messages?waitseconds=30"), None).await })
    };
    let poll = spawn_poll();
    tokio::time::sleep(Duration::from_millis(200)).await;
    emu.mns.reset();
    let r = tokio::time::timeout(Duration::from_secs(2), poll).await.expect("reset ends the poll").unwrap();
    r.expect_error(404, "QueueNotExist");

    emu.create(Q, "").await;
    let poll = spawn_poll();
    tokio::time::sleep(Duration::from_millis(200)).await;
    emu.mns.shutdown();
    let r = tokio::time::timeout(Duration::from_secs(2), poll).await.expect("shutdown ends the poll").unwrap();
    r.expect_error(404, "MessageNotExist");
    Arc::try_unwrap(emu).ok().unwrap().stop().await;
}

#[tokio::test]
async fn ensure_queue_now_creates_alicom_queues_with_the_configured_defaults() {
    let config = MnsConfig { alicom_visibility_timeout_secs: 120, alicom_polling_wait_secs: 3, ..MnsConfig::default() };
    let mns = Mns::new(shared(Clock::manual_at(T0)), config, None).unwrap();
    let emu = Emu::start(mns).await;
    let name = "Alicom-Queue-6543210987654321-VoiceRecordReport";
    emu.mns.ensure_queue_now(TenantId(1), name).unwrap();
    emu.mns.ensure_queue_now(TenantId(1), name).unwrap();
    let other = Creds { ak: "otherAK".into(), sk: "otherSecret".into(), token: None };
    let attrs = emu.call_with("GET", &format!("/queues/{name}"), None, &other, &[]).await;
    assert_eq!(attrs.tag("VisibilityTimeout").unwrap(), "120");
    assert_eq!(attrs.tag("PollingWaitSeconds").unwrap(), "3");
    emu.call("GET", &format!("/queues/{name}"), None).await.expect_error(404, "QueueNotExist");
    assert_eq!(emu.mns.ensure_queue_now(TenantId(1), "bad name").unwrap_err().code, "InvalidQueueName");
    emu.stop().await;
}
