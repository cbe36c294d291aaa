//! Virtual VoIP devices (docs/voip-devices.md) driven only over the admin API, under the manual
//! clock: every party of a call played by the emulator, with codes, CDRs and receipts.

use std::time::Duration;

use emu_testkit::{CallbackServer, Emulator, Reply};
use serde_json::{Value, json};

const MANUAL: &str =
    "[clock]\nmode = \"manual\"\n[calls]\nring_timeout_ms = 30000\ncallback_timeout_ms = 3000\nrecent_calls = 100\n";
const WAIT: Duration = Duration::from_secs(5);

async fn emu() -> Emulator {
    Emulator::start(MANUAL).await.expect("emulator")
}

/// Makes a virtual device (and its account) with a behaviour.
async fn put(emu: &Emulator, rtc_id: &str, behavior: Value) -> Value {
    let (status, body) = emu
        .admin_put(
            &format!("/admin/voip/devices/{rtc_id}"),
            json!({"deviceId": format!("dev-{rtc_id}"), "behavior": behavior}),
        )
        .await
        .unwrap();
    assert!(status == 201 || status == 200, "{status} {body}");
    body
}

async fn device(emu: &Emulator, rtc_id: &str) -> Value {
    emu.admin_get(&format!("/admin/voip/devices/{rtc_id}")).await.unwrap()
}

async fn call(emu: &Emulator, body: Value) -> String {
    let (status, reply) = emu.admin_post_status("/admin/voip/calls", body).await.unwrap();
    assert_eq!(status, 201, "{reply}");
    reply["channelId"].as_str().unwrap().to_string()
}

async fn call_view(emu: &Emulator, channel_id: &str) -> Value {
    emu.admin_get(&format!("/admin/calls/{channel_id}")).await.unwrap()
}

/// The device's last call record.
async fn last_call(emu: &Emulator, rtc_id: &str) -> Value {
    let d = device(emu, rtc_id).await;
    d["calls"].as_array().and_then(|c| c.last().cloned()).unwrap_or_else(|| panic!("no call in {d}"))
}

#[tokio::test]
async fn ready_made_parties_are_online_like_sdk_devices() {
    let emu = emu().await;
    let list = emu.admin_get("/admin/voip/devices").await.unwrap();
    let ids: Vec<&str> = list["devices"].as_array().unwrap().iter().filter_map(|d| d["rtcId"].as_str()).collect();
    for id in ["9000000000000001", "9000000000000002", "9000000000000003", "9000000000000004"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let echo = device(&emu, "9000000000000001").await;
    assert_eq!((echo["state"].as_str(), echo["online"].as_bool()), (Some("idle"), Some(true)), "{echo}");
    assert_eq!(echo["behavior"]["audio"], "echo");
    let devices = emu.admin_get("/admin/devices").await.unwrap();
    let row = devices["devices"].as_array().unwrap().iter().find(|d| d["rtcId"] == "9000000000000001").cloned();
    let row = row.unwrap_or_else(|| panic!("not registered: {devices}"));
    assert_eq!((row["online"].as_bool(), row["connection"]["transport"].as_str()), (Some(true), Some("virtual")));
    let accounts = emu.admin_get("/admin/accounts").await.unwrap();
    assert!(accounts.to_string().contains("virtual-echo"), "{accounts}");
}

#[tokio::test]
async fn virtual_to_virtual_answered_then_the_callee_hangs_up() {
    let emu = emu().await;
    put(&emu, "7000000000000001", json!({"then": "manual"})).await;
    put(&emu, "7000000000000002", json!({"ring_ms": 1000, "then": "answer", "hangup_after_ms": 5000})).await;
    let ch = call(&emu, json!({"from": "7000000000000001", "to": ["7000000000000002"], "extend": "order-1"})).await;
    assert_eq!(device(&emu, "7000000000000001").await["state"], "calling");
    assert_eq!(device(&emu, "7000000000000002").await["state"], "ringing");
    emu.advance(1000).await.unwrap();
    assert_eq!(call_view(&emu, &ch).await["state"], "active");
    assert_eq!(device(&emu, "7000000000000001").await["state"], "in_call");
    emu.advance(5000).await.unwrap();
    let v = call_view(&emu, &ch).await;
    assert_eq!(v["state"], "ended", "{v}");
    let cdr = &v["cdr"];
    assert_eq!(
        (cdr["alicomRtcType"].as_str(), cdr["caller"].as_str(), cdr["callee"].as_str(), cdr["duration"].as_str()),
        (Some("voip2voip"), Some("7000000000000001"), Some("7000000000000002"), Some("5"))
    );
    assert_eq!(cdr["extend"].as_str().or(cdr["outId"].as_str()).unwrap_or("order-1"), "order-1");
    let caller = last_call(&emu, "7000000000000001").await;
    assert_eq!((caller["outcome"].as_str(), caller["code"].as_i64()), (Some("completed"), Some(2000099)));
    let callee = last_call(&emu, "7000000000000002").await;
    assert_eq!((callee["outcome"].as_str(), callee["code"].as_i64()), (Some("completed"), None));
    // The caller heard every server message an SDK hears, in order.
    let heard: Vec<String> = device(&emu, "7000000000000001").await["received"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["messageType"].as_str().unwrap().to_string())
        .collect();
    let order = ["ringing", "answered", "peerJoinedChannel", "peerLeftChannel"];
    let positions: Vec<usize> =
        order.iter().map(|m| heard.iter().position(|h| h == m).unwrap_or_else(|| panic!("{m} in {heard:?}"))).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{heard:?}");
    // The receipt went to the tenant's MNS queue.
    emu.event_where("receipt.queued", &ch, WAIT, |e| e.detail.field("messageType") == "ArtcCdrReport").await.unwrap();
}

#[tokio::test]
async fn every_outcome_with_its_code() {
    let emu = emu().await;
    put(&emu, "7100000000000001", json!({"then": "manual"})).await;
    let cases = [
        ("7100000000000002", json!({"ring_ms": 500, "then": "reject"}), 500, "rejected", 2000106),
        ("7100000000000003", json!({"then": "busy"}), 0, "failed", 2000109),
        ("7100000000000004", json!({"then": "no_answer"}), 30_000, "failed", 2000108),
        ("7100000000000005", json!({"then": "offline"}), 0, "failed", 3100000),
        ("7100000000000006", json!({"ring_ms": 100, "then": "answer_then_leave"}), 100, "completed", 2000099),
    ];
    for (callee, behavior, wait, outcome, code) in cases {
        put(&emu, callee, behavior.clone()).await;
        let ch = call(&emu, json!({"from": "7100000000000001", "to": [callee]})).await;
        emu.advance(wait).await.unwrap();
        let rec = last_call(&emu, "7100000000000001").await;
        assert_eq!(rec["channelId"], ch.as_str());
        assert_eq!((rec["outcome"].as_str(), rec["code"].as_i64()), (Some(outcome), Some(code)), "{behavior}: {rec}");
        let v = call_view(&emu, &ch).await;
        assert_eq!(v["state"], "ended", "{behavior}: {v}");
        assert!(v["cdr"].is_object(), "{behavior}: a CDR for every call");
        assert_eq!(device(&emu, "7100000000000001").await["state"], "idle");
    }
    // Manual: answered and then hung up through the admin API.
    put(&emu, "7100000000000007", json!({"then": "manual"})).await;
    let ch = call(&emu, json!({"from": "7100000000000001", "to": ["7100000000000007"]})).await;
    emu.advance(29_000).await.unwrap();
    let (s, b) = emu.admin_post_status("/admin/voip/devices/7100000000000007/answer", json!({})).await.unwrap();
    assert_eq!((s, b["state"].as_str()), (200, Some("in_call")), "{b}");
    let (s, b) = emu.admin_post_status("/admin/voip/devices/7100000000000007/answer", json!({})).await.unwrap();
    assert_eq!(s, 409, "{b}");
    assert!(b["error"].as_str().unwrap().contains("in_call"), "{b}");
    let (s, _) = emu.admin_post_status("/admin/voip/devices/7100000000000001/hangup", json!({})).await.unwrap();
    assert_eq!(s, 200);
    assert_eq!(call_view(&emu, &ch).await["state"], "ended");
    assert_eq!(last_call(&emu, "7100000000000007").await["code"], 2000099);
}

#[tokio::test]
async fn a_virtual_device_calls_a_phone() {
    let emu = emu().await;
    put(&emu, "7200000000000001", json!({"then": "manual"})).await;
    emu.admin_put("/admin/pstn/phones/13912340001", json!({"ring_ms": 1000, "then": "answer"})).await.unwrap();
    let ch = call(&emu, json!({"from": "7200000000000001", "phone": "13912340001", "display": "02160000001"})).await;
    emu.advance(1000).await.unwrap();
    assert_eq!(call_view(&emu, &ch).await["state"], "active");
    emu.advance(12_000).await.unwrap();
    let (s, _) = emu.admin_post_status("/admin/voip/devices/7200000000000001/hangup", json!({})).await.unwrap();
    assert_eq!(s, 200);
    let cdr = call_view(&emu, &ch).await["cdr"].clone();
    assert_eq!((cdr["alicomRtcType"].as_str(), cdr["duration"].as_str()), (Some("voip2pstn"), Some("12")), "{cdr}");
    assert_eq!(last_call(&emu, "7200000000000001").await["rtcType"], "voip2pstn");
}

#[tokio::test]
async fn a_phone_calls_a_virtual_device_through_the_inbound_callback() {
    let emu = emu().await;
    put(&emu, "7300000000000001", json!({"ring_ms": 2000, "then": "answer", "hangup_after_ms": 20_000})).await;
    let server = CallbackServer::start(|_| {
        Reply::Json(
            json!({"success": true, "model": {"mixedCalleeInfos": [{"type": "voip", "rtcId": "7300000000000001"}]}}),
        )
    })
    .await
    .unwrap();
    let (s, b) = emu.admin_put("/admin/callbacks", json!({"inbound": server.url})).await.unwrap();
    assert_eq!(s, 200, "{b}");
    let (s, c) =
        emu.admin_post_status("/admin/pstn/calls", json!({"from": "13911112222", "to": "02160000001"})).await.unwrap();
    assert_eq!(s, 201, "{c}");
    let ch = c["channelId"].as_str().unwrap().to_string();
    server.next_request().await.unwrap();
    emu.event("call.state", &ch, WAIT).await.unwrap();
    // The callback's answer reaches the driver on its own; wait until the device rings.
    emu.event_where("voip.state", &ch, WAIT, |e| e.detail.field("to") == "ringing").await.unwrap();
    emu.advance(2000).await.unwrap();
    assert_eq!(call_view(&emu, &ch).await["state"], "active");
    emu.advance(20_000).await.unwrap();
    let cdr = call_view(&emu, &ch).await["cdr"].clone();
    assert_eq!((cdr["alicomRtcType"].as_str(), cdr["duration"].as_str()), (Some("pstn2voip"), Some("20")), "{cdr}");
    let rec = last_call(&emu, "7300000000000001").await;
    assert_eq!((rec["role"].as_str(), rec["peer"].as_str()), (Some("callee"), Some("13911112222")));
}

#[tokio::test]
async fn rings_alongside_an_sdk_device_and_the_first_answer_wins() {
    let emu = emu().await;
    let mut carol = emu.registered("carol").await.unwrap();
    put(&emu, "7400000000000001", json!({"then": "manual"})).await;
    put(&emu, "7400000000000002", json!({"ring_ms": 3000, "then": "answer"})).await;
    let ch = call(&emu, json!({"from": "7400000000000001", "to": [carol.rtc_id, "7400000000000002"]})).await;
    let called = carol.expect("called").await.unwrap();
    assert_eq!(called.body["callerInfo"]["rtcId"], "7400000000000001");
    emu.advance(3000).await.unwrap();
    let bye = carol.expect("cs_disconnect").await.unwrap();
    assert_eq!(bye.body["causeCode"], 2000132, "answered on another device");
    let v = call_view(&emu, &ch).await;
    assert_eq!(v["state"], "active", "{v}");
}

#[tokio::test]
async fn an_sdk_device_calls_a_virtual_device() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();
    alice.call_voip("to-echo", &["9000000000000001"]).await.unwrap();
    alice.expect("ringing").await.unwrap();
    emu.advance(1000).await.unwrap();
    let answered = alice.expect("answered").await.unwrap();
    assert_eq!(emu_testkit::media(&answered).unwrap()["data"]["callResult"], 1);
    alice.expect("peerJoinedChannel").await.unwrap();
    assert_eq!(device(&emu, "9000000000000001").await["state"], "in_call");
    alice.leave("to-echo").await.unwrap();
    emu.event_where("voip.state", "to-echo", WAIT, |e| e.detail.field("to") == "idle").await.unwrap();
    assert_eq!(last_call(&emu, "9000000000000001").await["code"], 2000099);
}

#[tokio::test]
async fn never_acking_devices_are_retransmitted_to_then_given_up() {
    let extra = "[gateway]\nretransmit_interval_ms = 20\nretransmit_attempts = 2\nsweep_interval_ms = 20\n";
    let emu = Emulator::start(&format!("{MANUAL}{extra}")).await.unwrap();
    put(&emu, "7500000000000001", json!({"then": "manual"})).await;
    put(&emu, "7500000000000002", json!({"then": "no_answer", "ack": false})).await;
    let ch = call(&emu, json!({"from": "7500000000000001", "to": ["7500000000000002"]})).await;
    let given_up = emu.event("envelope.undelivered", &ch, WAIT).await.unwrap();
    assert_eq!(
        (given_up.detail.field("messageType").as_str(), given_up.rtc_id.as_deref()),
        (Some("called"), Some("7500000000000002"))
    );
    let callee = device(&emu, "7500000000000002").await;
    assert_eq!((callee["state"].as_str(), callee["received"][0]["acked"].as_bool()), (Some("ringing"), Some(false)));
    let caller = device(&emu, "7500000000000001").await;
    assert!(!caller["received"].to_string().contains("\"ringing\""), "no ACK of called, no ringing: {caller}");
    emu.advance(30_000).await.unwrap();
    assert_eq!(last_call(&emu, "7500000000000001").await["code"], 2000108);
    assert_eq!(call_view(&emu, &ch).await["state"], "ended");
}

#[tokio::test]
async fn an_sdk_login_kicks_the_virtual_device_and_a_put_takes_it_back() {
    let emu = emu().await;
    let pop = emu.pop();
    put(&emu, "7600000000000001", json!({})).await;
    let token = pop.get_rtc_token("7600000000000001", "dev-7600000000000001").await.unwrap();
    let mut sdk = emu_testkit::Device::connect(&emu.endpoints.mqtt_tcp, "7600000000000001", token).await.unwrap();
    sdk.register().await.unwrap();
    let d = device(&emu, "7600000000000001").await;
    assert_eq!(
        (d["state"].as_str(), d["kicked"].as_bool(), d["online"].as_bool()),
        (Some("offline"), Some(true), Some(false))
    );
    put(&emu, "7600000000000001", json!({})).await;
    sdk.expect("cs_quit").await.unwrap();
    let d = device(&emu, "7600000000000001").await;
    assert_eq!((d["state"].as_str(), d["online"].as_bool()), (Some("idle"), Some(true)), "{d}");
}

#[tokio::test]
async fn admin_errors_and_deletion() {
    let emu = emu().await;
    let (s, b) =
        emu.admin_put("/admin/voip/devices/7700000000000001", json!({"behavior": {"then": "dance"}})).await.unwrap();
    assert_eq!(s, 400, "{b}");
    let (s, b) = emu.admin_put("/admin/voip/devices/7700000000000001", json!({"behavior": {}})).await.unwrap();
    assert_eq!(s, 404, "no account and no deviceId: {b}");
    let (s, _) = emu.admin_put("/admin/voip/devices/7700000000000001", json!({"deviceId": "x"})).await.unwrap();
    assert_eq!(s, 201);
    let (s, _) =
        emu.admin_put("/admin/voip/devices/7700000000000001", json!({"behavior": {"then": "reject"}})).await.unwrap();
    assert_eq!(s, 200);
    let (s, b) = emu.admin_put("/admin/voip/devices/7700000000000001", json!({"deviceId": "y"})).await.unwrap();
    assert_eq!(s, 409, "{b}");
    let (s, b) = emu.admin_post_status("/admin/voip/calls", json!({"from": "7700000000000001"})).await.unwrap();
    assert_eq!(s, 400, "{b}");
    let (s, b) = emu.admin_post_status("/admin/voip/calls", json!({"from": "nobody", "to": ["x"]})).await.unwrap();
    assert_eq!(s, 404, "{b}");
    let (s, _) = emu.admin_delete("/admin/voip/devices/7700000000000001").await.unwrap();
    assert_eq!(s, 204);
    let (s, _) = emu.admin_delete("/admin/voip/devices/7700000000000001").await.unwrap();
    assert_eq!(s, 404);
    let devices = emu.admin_get("/admin/devices").await.unwrap();
    assert!(!devices.to_string().contains("7700000000000001"), "{devices}");
}

#[tokio::test]
async fn reset_makes_the_configured_devices_again() {
    let emu = emu().await;
    let (s, _) = emu.admin_delete("/admin/voip/devices/9000000000000001").await.unwrap();
    assert_eq!(s, 204);
    let (s, _) = emu.admin_post_status("/admin/reset", json!({})).await.unwrap();
    assert_eq!(s, 200);
    // The driver answers in order: its reset is done before this request is served.
    let echo = emu.admin_get("/admin/voip/devices/9000000000000001").await.unwrap();
    assert_eq!((echo["online"].as_bool(), echo["state"].as_str()), (Some(true), Some("idle")), "{echo}");
}
