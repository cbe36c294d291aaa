//! Input limits: hostile bodies that reach a recursive parser (deeply nested JSON) are refused
//! with an error and the emulator keeps serving.

use std::time::Duration;

use emu_testkit::Emulator;
use serde_json::json;

/// `[[[…]]]` nested `depth` deep: far beyond serde_json's recursion limit of 128.
fn deep_json(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// `base64(zlib(bytes))` with stored (uncompressed) deflate blocks: enough to carry any bytes in a
/// mediaSignal without building the deep value in the test.
fn zlib_base64(data: &[u8]) -> String {
    let mut z = vec![0x78, 0x01];
    let mut chunks = data.chunks(65_535).peekable();
    while let Some(c) = chunks.next() {
        z.push(u8::from(chunks.peek().is_none()));
        let len = c.len() as u16;
        z.extend(len.to_le_bytes());
        z.extend((!len).to_le_bytes());
        z.extend(c);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend(((b << 16) | a).to_be_bytes());
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in z.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn deeply_nested_json_into_admin_bodies_is_a_400_and_the_emulator_serves_on() {
    let emu = Emulator::start("").await.unwrap();
    let admin = emu.endpoints.admin.clone();
    let http = reqwest::Client::new();
    let body = deep_json(100_000);
    for (method, path) in [
        (reqwest::Method::POST, "/admin/sts"),
        (reqwest::Method::PUT, "/admin/pstn/phones/13800000000"),
        (reqwest::Method::POST, "/admin/pstn/calls"),
        (reqwest::Method::PUT, "/admin/callbacks"),
        (reqwest::Method::POST, "/admin/clock/advance"),
    ] {
        let r = http
            .request(method.clone(), format!("{admin}{path}"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{method} {path}: {}", r.text().await.unwrap());
    }
    assert!(emu.admin_get("/admin/clock").await.unwrap().is_object(), "still serving");
    emu.shutdown().await;
}

#[tokio::test]
async fn deeply_nested_json_over_mqtt_is_refused_and_the_session_goes_on() {
    let emu = Emulator::start("").await.unwrap();
    let mut bystander = emu.device("bystander").await.unwrap();
    bystander.register().await.unwrap();

    // Inside a mediaSignal (zlib + base64): an error ACK, the device stays connected.
    let mut deep = emu.device("deep-signal").await.unwrap();
    deep.register().await.unwrap();
    let signal = zlib_base64(deep_json(30_000).as_bytes());
    let env = deep.build_request("joinChannel", json!({"channelId": "deep", "mediaSignal": signal}), None);
    deep.publish(&env).await.unwrap();
    let ack = deep.expect_ack(&env.request_id).await.unwrap();
    assert_eq!(ack.response_code, 400, "{:?}", ack.body);
    assert!(ack.body["error"].as_str().unwrap().contains("recursion limit"), "{:?}", ack.body);
    deep.register().await.unwrap();

    // As the envelope itself: not JSON the server can read, so the connection is closed.
    let mut sloppy = emu.device("deep-envelope").await.unwrap();
    sloppy.register().await.unwrap();
    let server_topic = format!(
        "{}/p2p/{}",
        sloppy.token["conferenceTopic"].as_str().unwrap(),
        sloppy.token["serverId"].as_str().unwrap()
    );
    sloppy.publish_raw(&server_topic, deep_json(100_000).into_bytes()).await.unwrap();
    sloppy.expect_closed(Duration::from_secs(5)).await.unwrap();

    bystander.register().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test]
async fn a_deeply_nested_pop_body_gets_a_vendor_error() {
    let emu = Emulator::start("").await.unwrap();
    let http = reqwest::Client::new();
    for ct in ["application/json", "application/x-www-form-urlencoded"] {
        let r = http
            .post(format!("{}/?Format=JSON", emu.endpoints.pop))
            .header("content-type", ct)
            .header("x-acs-action", "AddRtcAccount")
            .body(deep_json(100_000))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{ct}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["Code"].is_string() && v["RequestId"].is_string(), "{ct}: {v}");
    }
    assert!(emu.admin_get("/admin/clock").await.unwrap().is_object(), "still serving");
    emu.shutdown().await;
}

const SHORT_TIMEOUTS: &str =
    "[server]\nheader_read_timeout_ms = 300\nidle_timeout_ms = 600\n[pop]\nsignature = \"off\"\n";

fn host_port(url: &str) -> String {
    url.split("://").nth(1).unwrap().trim_end_matches('/').split('/').next().unwrap().to_string()
}

/// Writes `bytes`, then waits (up to 5 s) for the server to close the connection; how long it took.
async fn closed_after(addr: &str, bytes: &[u8]) -> Option<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let t0 = std::time::Instant::now();
    s.write_all(bytes).await.unwrap();
    let mut buf = Vec::new();
    match tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await {
        Ok(_) => Some(t0.elapsed()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn stalled_http_connections_are_closed_after_the_configured_timeouts() {
    let emu = Emulator::start(SHORT_TIMEOUTS).await.unwrap();
    for (name, url) in [("pop", &emu.endpoints.pop), ("admin", &emu.endpoints.admin), ("mns", &emu.endpoints.mns)] {
        let addr = host_port(url);
        let half = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ");
        let took = closed_after(&addr, half.as_bytes()).await.unwrap_or_else(|| panic!("{name}: half a header"));
        assert!(took >= Duration::from_millis(250), "{name}: closed after {took:?}, before the header timeout");
        let took = closed_after(&addr, b"").await.unwrap_or_else(|| panic!("{name}: idle connection"));
        assert!(took >= Duration::from_millis(550), "{name}: idle closed after {took:?}");
    }
    // A normal request still works, and its keep-alive connection can be reused.
    let http = reqwest::Client::new();
    for _ in 0..2 {
        assert_eq!(http.get(format!("{}/admin/clock", emu.endpoints.admin)).send().await.unwrap().status(), 200);
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn long_polls_and_the_event_stream_outlast_the_timeouts() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let emu = Emulator::start(SHORT_TIMEOUTS).await.unwrap();
    let http = reqwest::Client::new();
    let mns = emu.endpoints.mns.trim_end_matches('/').to_string();
    let r = http.put(format!("{mns}/queues/Slow-Poll")).body("<Queue/>").send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // A 1 s long poll (longer than both timeouts) ends with its own answer.
    let t0 = std::time::Instant::now();
    let r = http.get(format!("{mns}/queues/Slow-Poll/messages?waitseconds=1")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("MessageNotExist"));
    assert!(t0.elapsed() >= Duration::from_millis(900), "the poll waited {:?}", t0.elapsed());

    // The admin event stream stays open while nothing happens.
    let addr = host_port(&emu.endpoints.admin);
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(format!("GET /admin/events/stream HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let mut rest = [0u8; 4096];
    let still_open = tokio::time::timeout(Duration::from_millis(1200), async {
        loop {
            if s.read(&mut rest).await.unwrap_or(0) == 0 {
                return;
            }
        }
    })
    .await
    .is_err();
    assert!(still_open, "the event stream was cut");
    drop(s);
    emu.shutdown().await;
}

/// `Max open files` of a process: (soft, hard), "unlimited" as u64::MAX.
fn open_files_limit(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(3)
        .take(2)
        .map(|x| if x == "unlimited" { u64::MAX } else { x.parse().unwrap() })
        .collect();
    (v[0], v[1])
}

#[test]
fn the_binary_raises_its_soft_open_files_limit_to_the_hard_limit() {
    use std::process::{Command, Stdio};
    let hard = open_files_limit(std::process::id()).1;
    if hard <= 256 {
        eprintln!("hard open-files limit {hard}: nothing to raise, skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("alicom-emu-nofile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ready, log) = (dir.join("ready.json"), dir.join("stderr.log"));
    // A soft limit of 256 as a shell would leave it, then the binary itself (exec: same pid).
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -Sn 256 && exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_alicom-emu")])
        .args(["--ephemeral-ports", "--ready-file"])
        .arg(&ready)
        .env("RUST_LOG", "info")
        .env("ALICOM_EMU_SERVER__LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        assert!(child.try_wait().unwrap().is_none(), "alicom-emu exited: {}", std::fs::read_to_string(&log).unwrap());
        assert!(std::time::Instant::now() < deadline, "no ready-file after 20 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (soft, hard_now) = open_files_limit(child.id());
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!((soft, hard_now), (hard, hard), "soft limit raised to the hard limit");
    let line = text.lines().find(|l| l.contains("open-files limit")).unwrap_or_else(|| panic!("no log line in {text}"));
    let entry: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["fields"]["was"], 256, "{line}");
    assert_eq!(entry["fields"]["soft"].as_u64(), Some(hard), "{line}");
}

/// Signed-looking RPC parameters with a wrong signature and a `pad`-byte parameter.
fn bogus_params(format: &str, pad: usize) -> String {
    format!(
        "Action=AddRtcAccount&Version=2017-05-25&Format={format}&AccessKeyId=testAK&SignatureMethod=HMAC-SHA1\
         &SignatureVersion=1.0&SignatureNonce=n1&Timestamp=2026-01-01T00%3A00%3A00Z&Signature=bogus&Pad={}",
        "x".repeat(pad)
    )
}

/// One raw HTTP/1.1 request (URLs longer than an `http::Uri` holds); (status, content type, body).
async fn raw_get(addr: &str, target: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await.unwrap().unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_string))
        .unwrap_or_default();
    (head[9..12].parse().unwrap(), content_type, body.to_string())
}

#[tokio::test]
async fn oversized_pop_requests_get_bounded_vendor_errors_and_a_bounded_log() {
    let emu = Emulator::start("").await.unwrap();
    let http = reqwest::Client::new();
    let pop = emu.endpoints.pop.trim_end_matches('/').to_string();
    let post = |body: String| {
        http.post(format!("{pop}/")).header("content-type", "application/x-www-form-urlencoded").body(body).send()
    };

    // A ~1 MB form body: its server string to sign is echoed as a marked prefix.
    let r = post(bogus_params("JSON", 1_000_000)).await.unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.len() < 16 * 1024, "a {} byte error", text.len());
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["Code"], "SignatureDoesNotMatch");
    let message = v["Message"].as_str().unwrap();
    assert!(message.contains("server string to sign is:POST&%2F&AccessKeyId%3DtestAK"), "{}", &message[..200]);
    assert!(message.contains("…[truncated: "), "{}", &message[message.len() - 100..]);

    // A ~1 MB query: refused by the HTTP layer (URL over 64 KiB), answered in the vendor's format.
    let addr = host_port(&pop);
    for (format, ct) in [("XML", "text/xml"), ("JSON", "application/json")] {
        let (status, content_type, body) = raw_get(&addr, &format!("/?{}", bogus_params(format, 1_000_000))).await;
        assert_eq!(status, 414, "{format}: {body}");
        assert!(content_type.starts_with(ct), "{format}: {content_type}");
        for field in ["Code", "Message", "RequestId", "HostId", "Recommend", "InvalidParameter"] {
            assert!(body.contains(field), "{format}: {field} missing in {body}");
        }
    }

    // 60 rejected 1 MB requests: the request log, and its JSON, stay small.
    for _ in 0..59 {
        assert_eq!(post(bogus_params("JSON", 1_000_000)).await.unwrap().status(), 400);
    }
    let log = http.get(format!("{}/admin/requests?limit=60", emu.endpoints.admin)).send().await.unwrap();
    let log = log.text().await.unwrap();
    assert!(log.len() < 5 << 20, "GET /admin/requests?limit=60 is {} bytes", log.len());
    let v: serde_json::Value = serde_json::from_str(&log).unwrap();
    let requests = v["requests"].as_array().unwrap();
    assert!(requests.iter().any(|r| r["status"] == 414), "the refused heads are logged");
    let last = requests.last().unwrap();
    assert_eq!(last["code"], "SignatureDoesNotMatch");
    assert!(last["serverStringToSign"].as_str().unwrap().contains("…[truncated: "));
    emu.shutdown().await;
}

/// Out of file descriptors, the admin listener closes new connections at once (the client is not
/// left hanging in the backlog), logs it, and serves again by itself once descriptors are free.
#[test]
fn out_of_file_descriptors_new_connections_are_closed_and_service_resumes() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("alicom-emu-emfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ready, log) = (dir.join("ready.json"), dir.join("stderr.log"));
    // Soft and hard limit 128: the binary cannot raise it.
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -n 128 && exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_alicom-emu")])
        .args(["--ephemeral-ports", "--ready-file"])
        .arg(&ready)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !ready.exists() || std::fs::read_to_string(&ready).unwrap_or_default().is_empty() {
        assert!(child.try_wait().unwrap().is_none(), "alicom-emu exited: {}", std::fs::read_to_string(&log).unwrap());
        assert!(std::time::Instant::now() < deadline, "no ready-file after 20 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let endpoints: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
    let admin = host_port(endpoints["admin"].as_str().unwrap());
    let health = |timeout: Duration| -> Option<String> {
        let mut s = std::net::TcpStream::connect(&admin).ok()?;
        s.set_read_timeout(Some(timeout)).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    };
    assert!(health(Duration::from_secs(5)).unwrap().starts_with("HTTP/1.1 200"), "serves at first");
    // Hold idle connections until the server has no descriptor left for another.
    let mut held = Vec::new();
    for _ in 0..200 {
        let s = std::net::TcpStream::connect(&admin).unwrap();
        held.push(s);
    }
    // A new request is answered by a closed connection, at once (not after the client gives up).
    let started = std::time::Instant::now();
    let refused = health(Duration::from_secs(5));
    assert!(refused.as_deref().is_none_or(str::is_empty), "no answer while out of descriptors: {refused:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "closed promptly, not left hanging: {:?}", started.elapsed());
    assert!(child.try_wait().unwrap().is_none(), "still running");
    // Descriptors free again: service resumes by itself.
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if health(Duration::from_secs(2)).is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "service did not resume");
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(text.contains("out of file descriptors"), "logged: {text}");
}
