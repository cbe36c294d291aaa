//! The real binary: ready-file, /health, configuration errors, graceful shutdown.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_alicom-emu");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("alicom-emu-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits for the ready-file; the process dying first is a failure with its output.
fn wait_ready(child: &mut Child, path: &Path) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).expect("ready-file is one JSON object");
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("alicom-emu exited before ready: {status}");
        }
        assert!(Instant::now() < deadline, "no ready-file after 20 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn http_get(url: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(authority).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success();
    assert!(ok);
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "alicom-emu did not exit within {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn serves_on_defaults_with_ephemeral_ports_and_stops_on_sigterm() {
    let dir = temp_dir("ready");
    let ready = dir.join("ready.json");
    let mut child = Command::new(BIN)
        .args(["--ephemeral-ports", "--ready-file"])
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let endpoints = wait_ready(&mut child, &ready);
    for key in ["pop", "admin", "mqtt_ws", "access_key_id", "access_key_secret"] {
        assert!(endpoints[key].is_string(), "ready-file lacks {key}: {endpoints}");
    }
    assert_eq!(endpoints["access_key_id"], "testAK");
    let admin = endpoints["admin"].as_str().unwrap();
    let (status, body) = http_get(&format!("{admin}/health"));
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    // /health also answers on the POP port, for container healthchecks there.
    assert_eq!(http_get(&format!("{}/health", endpoints["pop"].as_str().unwrap())).0, 200);

    let probe = Command::new(BIN).args(["health", "--url", &format!("{admin}/health")]).status().unwrap();
    assert!(probe.success());

    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
    let probe =
        Command::new(BIN).args(["health", "--url", &format!("{admin}/health")]).stderr(Stdio::null()).status().unwrap();
    assert!(!probe.success(), "health fails once stopped");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_configuration_exits_2_with_a_message() {
    let dir = temp_dir("badcfg");
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[pop]\nsignature = \"sometimes\"\n").unwrap();
    let out = Command::new(BIN).arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("signature"), "{err}");

    let out = Command::new(BIN).args(["--config", "/nonexistent/x.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn environment_overrides_and_config_subcommand() {
    let out = Command::new(BIN)
        .arg("config")
        .env("ALICOM_EMU_POP__SIGNATURE", "log")
        .env("ALICOM_EMU_PORTS__ADMIN", "19999")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let cfg: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(cfg["pop"]["signature"].as_str(), Some("log"));
    assert_eq!(cfg["ports"]["admin"].as_integer(), Some(19999));
    assert_eq!(cfg["tenants"][0]["access_keys"][0]["id"].as_str(), Some("testAK"));
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(BIN)
        .env("ALICOM_EMU_PORTS__POP", &port)
        .env("ALICOM_EMU_PORTS__ADMIN", "0")
        .env("ALICOM_EMU_PORTS__MQTT_WS", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Media still in flight when the server closes a call's TURN allocations at the hang-up (the
/// other party's browser sends until it hears `peerLeftChannel`; a closing client refreshes its
/// allocation away) is dropped quietly: those datagrams are the clients' business, not errors of
/// the emulator. The soak (issue 20) found the TURN server logging an ERROR for each.
#[tokio::test]
async fn media_in_flight_after_a_hang_up_logs_no_error() {
    use emu_testkit::media::{ClientOptions, MediaClient};
    use emu_testkit::{Device, PopClient};
    use std::io::Read;

    let dir = temp_dir("turn-after-hangup");
    let ready = dir.join("ready.json");
    let mut child = Command::new(BIN)
        .args(["--ephemeral-ports", "--ready-file"])
        .arg(&ready)
        .env("ALICOM_EMU_SERVER__LOG_LEVEL", "warn")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let info = wait_ready(&mut child, &ready);
    let field = |k: &str| info[k].as_str().unwrap().to_string();
    let pop = PopClient::new(&field("pop"), &field("access_key_id"), &field("access_key_secret"));
    let mut devices = Vec::new();
    for name in ["alice", "bob"] {
        let rtc_id = pop.add_rtc_account(name).await.unwrap();
        let token = pop.get_rtc_token(&rtc_id, name).await.unwrap();
        let mut d = Device::connect(&field("mqtt_tcp"), &rtc_id, token).await.unwrap();
        d.register().await.unwrap();
        devices.push(d);
    }
    let (mut alice, mut bob) = (devices.remove(0), devices.remove(0));
    let wait = Duration::from_secs(10);
    let join_a = alice.call_voip("turn-noise", &[&bob.rtc_id]).await.unwrap();
    let called = bob.expect("called").await.unwrap();
    let mut a = MediaClient::connect_device(&mut alice, "turn-noise", &join_a, ClientOptions::default()).await.unwrap();
    let join_b = bob.answer(&called, true).await.unwrap().unwrap();
    let mut b = MediaClient::connect_device(&mut bob, "turn-noise", &join_b, ClientOptions::default()).await.unwrap();
    a.wait_rtp(25, wait).await.unwrap();
    b.wait_rtp(25, wait).await.unwrap();
    alice.leave("turn-noise").await.unwrap();
    bob.expect("peerLeftChannel").await.unwrap();
    // Both relays are gone by now; bob's client goes on sending a while, then both close.
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.close().await;
    b.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(!log.contains("ERROR"), "the emulator logged errors:\n{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
