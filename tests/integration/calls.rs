//! Every call type, ending and callback through the real emulator, with testkit devices,
//! simulated phones and a local callback server, under the manual clock.

use std::time::Duration;

use emu_testkit::{CallbackServer, Emulator, Reply, media};
use serde_json::{Value, json};

const MANUAL: &str =
    "[clock]\nmode = \"manual\"\n[calls]\nring_timeout_ms = 30000\ncallback_timeout_ms = 3000\nrecent_calls = 100\n";

async fn emu() -> Emulator {
    Emulator::start(MANUAL).await.expect("emulator")
}

async fn cdr_of(emu: &Emulator, channel_id: &str) -> Value {
    let call = emu.admin_get(&format!("/admin/calls/{channel_id}")).await.unwrap();
    assert_eq!(call["state"], "ended", "{call}");
    call["cdr"].clone()
}

fn code(e: &emu_testkit::Envelope) -> i64 {
    e.body["causeCode"].as_i64().unwrap_or_else(|| panic!("no causeCode in {:?}", e.body))
}

#[tokio::test]
async fn voip_to_voip_answered_then_caller_hangs_up() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();
    alice.call_voip("chan-1", &[&bob.rtc_id]).await.unwrap();
    let called = bob.expect("called").await.unwrap();
    assert_eq!(called.body["callerInfo"]["rtcId"], alice.rtc_id.as_str());
    assert!(called.body.get("uuid").is_none());
    assert_eq!(media(&called).unwrap()["data"]["channelId"], "chan-1");
    alice.expect("ringing").await.unwrap(); // after bob's `called` ACK
    emu.advance(5_000).await.unwrap();
    let joined = bob.answer(&called, true).await.unwrap().unwrap();
    assert_eq!(media(&joined).unwrap()["data"]["dynamicConfig"], json!({}));
    let answered = alice.expect("answered").await.unwrap();
    assert_eq!(media(&answered).unwrap()["data"]["callResult"], 1);
    alice.expect("peerJoinedChannel").await.unwrap();
    emu.advance(60_000).await.unwrap();
    alice.leave("chan-1").await.unwrap();
    let left = bob.expect("peerLeftChannel").await.unwrap();
    assert_eq!(left.body["uuid"], bob.session_uuid.as_str());
    let cdr = cdr_of(&emu, "chan-1").await;
    assert_eq!(cdr["alicomRtcType"], "voip2voip");
    assert_eq!(
        (cdr["caller"].as_str(), cdr["callee"].as_str()),
        (Some(alice.rtc_id.as_str()), Some(bob.rtc_id.as_str()))
    );
    assert_eq!(cdr["duration"], "60");
    assert!(cdr["startTime"].as_str().unwrap().len() == 19);
    let cdrs = emu.admin_get("/admin/cdrs").await.unwrap();
    assert_eq!(cdrs["cdrs"][0]["report"]["channelId"], "chan-1");
    let timeline = emu.admin_get("/admin/calls/chan-1").await.unwrap()["timeline"].clone();
    assert!(timeline.as_array().unwrap().iter().any(|e| e["kind"] == "call.state" && e["detail"]["state"] == "active"));
}

#[tokio::test]
async fn callee_hangs_up_rejects_and_caller_cancels() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();

    alice.call_voip("c-hangup", &[&bob.rtc_id]).await.unwrap();
    let called = bob.expect("called").await.unwrap();
    bob.answer(&called, true).await.unwrap();
    alice.expect("answered").await.unwrap();
    bob.leave("c-hangup").await.unwrap();
    alice.expect("peerLeftChannel").await.unwrap();

    alice.call_voip("c-reject", &[&bob.rtc_id]).await.unwrap();
    let called = bob.expect("called").await.unwrap();
    bob.answer(&called, false).await.unwrap();
    let answered = alice.expect("answered").await.unwrap();
    assert_eq!(media(&answered).unwrap()["data"]["callResult"], 2, "the SDK reports 2000106");

    alice.call_voip("c-cancel", &[&bob.rtc_id]).await.unwrap();
    bob.expect("called").await.unwrap();
    alice.cancel("c-cancel").await.unwrap();
    let cancelled = bob.expect("canceledCall").await.unwrap();
    assert_eq!(media(&cancelled).unwrap()["data"]["channelId"], "c-cancel");
    assert_eq!(cdr_of(&emu, "c-cancel").await["duration"], "0");
}

#[tokio::test]
async fn no_answer_offline_and_busy() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();
    let mut carol = emu.registered("carol").await.unwrap();

    alice.call_voip("c-noanswer", &[&bob.rtc_id]).await.unwrap();
    bob.expect("called").await.unwrap();
    emu.advance(30_000).await.unwrap();
    bob.expect("canceledCall").await.unwrap();
    assert_eq!(code(&alice.expect("cs_disconnect").await.unwrap()), 2000108);

    let offline = emu.pop().add_rtc_account("never-logged-in").await.unwrap();
    alice.call_voip("c-offline", &[&offline]).await.unwrap();
    assert_eq!(code(&alice.expect("cs_disconnect").await.unwrap()), 3100000);

    // carol is in a call with bob, so bob is busy for alice.
    carol.call_voip("c-busy-1", &[&bob.rtc_id]).await.unwrap();
    let called = bob.expect("called").await.unwrap();
    bob.answer(&called, true).await.unwrap();
    alice.call_voip("c-busy-2", &[&bob.rtc_id]).await.unwrap();
    assert_eq!(code(&alice.expect("cs_disconnect").await.unwrap()), 2000109);
}

#[tokio::test]
async fn several_devices_first_answer_wins() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();
    let mut b1 = emu.registered("b1").await.unwrap();
    let mut b2 = emu.registered("b2").await.unwrap();
    alice.call_voip("c-multi", &[&b1.rtc_id, &b2.rtc_id]).await.unwrap();
    b1.expect("called").await.unwrap();
    let called2 = b2.expect("called").await.unwrap();
    b2.answer(&called2, true).await.unwrap();
    let elsewhere = b1.expect("cs_disconnect").await.unwrap();
    assert_eq!(code(&elsewhere), 2000132);
    assert!(elsewhere.body.get("uuid").is_none());
    alice.expect("answered").await.unwrap();
}

#[tokio::test]
async fn one_device_rejecting_cancels_the_other_ringing_devices() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();
    let mut b1 = emu.registered("b1").await.unwrap();
    let mut b2 = emu.registered("b2").await.unwrap();
    let mut b3 = emu.registered("b3").await.unwrap();
    alice.call_voip("c-one-rejects", &[&b1.rtc_id, &b2.rtc_id, &b3.rtc_id]).await.unwrap();
    b1.expect("called").await.unwrap();
    let called2 = b2.expect("called").await.unwrap();
    b3.expect("called").await.unwrap();
    b2.answer(&called2, false).await.unwrap();
    for other in [&mut b1, &mut b3] {
        let stopped = other.expect("cs_disconnect").await.unwrap();
        assert_eq!(code(&stopped), 2000133, "rejected on another device");
    }
    let answered = alice.expect("answered").await.unwrap();
    assert_eq!(media(&answered).unwrap()["data"]["callResult"], 2, "the caller's SDK reports 2000106");
    let call = emu.admin_get("/admin/calls/c-one-rejects").await.unwrap();
    assert_eq!((call["state"].as_str(), call["causeCode"].as_i64()), (Some("ended"), Some(2000106)));
    let outcomes: Vec<&str> = call["legs"].as_array().unwrap().iter().map(|l| l["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, vec!["rejected_elsewhere", "rejected", "rejected_elsewhere"]);

    // With the keep-ringing flag the others ring on, and the call connects when one answers.
    alice.call_voip_with_flag("c-keep-ringing", &[&b1.rtc_id, &b2.rtc_id], Some(json!(1))).await.unwrap();
    let called1 = b1.expect("called").await.unwrap();
    let called2 = b2.expect("called").await.unwrap();
    b1.answer(&called1, false).await.unwrap();
    let call = emu.admin_get("/admin/calls/c-keep-ringing").await.unwrap();
    assert_eq!((call["state"].as_str(), call["cancelOnReject"].as_bool()), (Some("ringing"), Some(false)));
    b2.answer(&called2, true).await.unwrap();
    assert_eq!(media(&alice.expect("answered").await.unwrap()).unwrap()["data"]["callResult"], 1);
}

#[tokio::test]
async fn device_lost_mid_call_and_kicked_mid_call() {
    let emu = Emulator::start(&format!("{MANUAL}\n[gateway]\nauth_timeout_ms = 10000\nheartbeat_timeout_ms = 95000\ndisconnect_grace_ms = 200\nretransmit_interval_ms = 2000\nretransmit_attempts = 3\ntoken_refresh_timeout_ms = 30000\nmax_packet_bytes = 262144\nmax_media_signal_bytes = 1048576\nsweep_interval_ms = 20\n")).await.unwrap();
    let mut alice = emu.registered("alice").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();
    alice.call_voip("c-lost", &[&bob.rtc_id]).await.unwrap();
    let called = bob.expect("called").await.unwrap();
    bob.answer(&called, true).await.unwrap();
    bob.drop_connection(); // the tab closes; after the grace period bob counts as gone
    alice.expect("peerLeftChannel").await.unwrap();

    let mut carol = emu.registered("carol").await.unwrap();
    alice.call_voip("c-kick", &[&carol.rtc_id]).await.unwrap();
    let called = carol.expect("called").await.unwrap();
    carol.answer(&called, true).await.unwrap();
    emu.pop().get_rtc_token(&carol.rtc_id, "carol-other-phone").await.unwrap();
    carol.expect("cs_quit").await.unwrap();
    alice.expect("peerLeftChannel").await.unwrap();
}

#[tokio::test]
async fn voip_to_pstn_magic_numbers() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();

    // 13800000001 answers after 1 s.
    alice.call_pstn("p-answer", "02160000001", "13800000001").await.unwrap();
    alice.expect("ringing").await.unwrap();
    emu.advance(1_000).await.unwrap();
    assert_eq!(media(&alice.expect("answered").await.unwrap()).unwrap()["data"]["callResult"], 1);
    alice.expect("peerJoinedChannel").await.unwrap();
    let phone = emu.admin_get("/admin/pstn/phones/13800000001").await.unwrap();
    assert_eq!((phone["state"].as_str(), phone["channelId"].as_str()), (Some("in_call"), Some("p-answer")));
    alice.leave("p-answer").await.unwrap();
    let phone = emu.admin_get("/admin/pstn/phones/13800000001").await.unwrap();
    assert_eq!(phone["state"], "idle");

    for (n, number, expect) in [
        (2, "13800000002", 2000109),
        (5, "13800000005", 3100000),
        (6, "13800000006", 3100020),
        (10, "13800000010", 3100000),
    ] {
        let ch = format!("p-{n}");
        alice.call_pstn(&ch, "02160000001", number).await.unwrap();
        assert_eq!(code(&alice.expect("cs_disconnect").await.unwrap()), expect, "{number}");
    }

    alice.call_pstn("p-reject", "02160000001", "13800000004").await.unwrap();
    alice.expect("ringing").await.unwrap();
    emu.advance(2_000).await.unwrap();
    assert_eq!(media(&alice.expect("answered").await.unwrap()).unwrap()["data"]["callResult"], 2);

    alice.call_pstn("p-noanswer", "02160000001", "13800000003").await.unwrap();
    emu.advance(30_000).await.unwrap();
    assert_eq!(code(&alice.expect("cs_disconnect").await.unwrap()), 2000108);

    alice.call_pstn("p-hangup", "02160000001", "13800000007").await.unwrap();
    emu.advance(1_000).await.unwrap();
    alice.expect("answered").await.unwrap();
    emu.advance(5_000).await.unwrap();
    alice.expect("peerLeftChannel").await.unwrap();

    alice.call_pstn("p-bad-display", "99999999", "13800000001").await.unwrap();
    assert_eq!(code(&alice.expect("cs_disconnect").await.unwrap()), 3100006);
    // Refused before dialling, the CDR still names who was called and the number asked for.
    let cdr = cdr_of(&emu, "p-bad-display").await;
    assert_eq!(cdr["callee"], "13800000001");
    assert_eq!(cdr["detail"]["displayNumber"], "99999999");
    assert_eq!(cdr["callOutInfo"][0]["callee"], "13800000001");
    assert_eq!(cdr["callOutInfo"][0]["caller"], "99999999");
    assert_eq!(cdr["callOutInfo"][0]["outcome"], "not_dialled");
}

#[tokio::test]
async fn dtmf_from_a_phone_arrives_in_order_with_timestamps() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();
    alice.call_pstn("p-dtmf", "02160000001", "13800000008").await.unwrap();
    emu.advance(1_000).await.unwrap();
    alice.expect("answered").await.unwrap();
    emu.advance(10_000).await.unwrap();
    let mut digits = String::new();
    let mut last = 0;
    for _ in 0.."1234#".len() {
        let d = alice.expect("cs_dtmf").await.unwrap();
        digits.push_str(d.body["dtmf"].as_str().unwrap());
        let ts = d.body["timestamp"].as_u64().unwrap();
        assert!(ts > last, "timestamps increase");
        last = ts;
        assert_eq!(d.body["uuid"], alice.session_uuid.as_str());
    }
    assert_eq!(digits, "1234#");
}

#[tokio::test]
async fn a_manual_phone_driven_over_http() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();
    let (s, _) = emu.admin_put("/admin/pstn/phones/13912345678", json!({"then": "manual"})).await.unwrap();
    assert_eq!(s, 200);
    alice.call_pstn("p-manual", "02160000001", "13912345678").await.unwrap();
    alice.expect("ringing").await.unwrap();
    let phone = emu.admin_get("/admin/pstn/phones/13912345678").await.unwrap();
    assert_eq!(phone["state"], "ringing");
    let (s, _) = emu.admin_post_status("/admin/pstn/phones/13912345678/answer", json!({})).await.unwrap();
    assert_eq!(s, 200);
    alice.expect("answered").await.unwrap();
    let (s, _) = emu.admin_post_status("/admin/pstn/phones/13912345678/dtmf", json!({"digits": "9*"})).await.unwrap();
    assert_eq!(s, 200);
    assert_eq!(alice.expect("cs_dtmf").await.unwrap().body["dtmf"], "9");
    assert_eq!(alice.expect("cs_dtmf").await.unwrap().body["dtmf"], "*");
    emu.admin_post_status("/admin/pstn/phones/13912345678/hangup", json!({})).await.unwrap();
    alice.expect("peerLeftChannel").await.unwrap();
}

#[tokio::test]
async fn pstn_admin_rejects_bad_input_and_changes_nothing() {
    let emu = emu().await;
    let cases = [
        ("PUT", "/admin/pstn/phones/12ab", json!({"then": "answer"}), 400),
        ("PUT", "/admin/pstn/phones/13911112222", json!({"then": "explode"}), 400),
        ("PUT", "/admin/pstn/phones/13911112222", json!({"ring_ms": "soon"}), 400),
        ("POST", "/admin/pstn/phones/13911112222/dtmf", json!({"digits": "12x"}), 400),
        ("POST", "/admin/pstn/phones/13911112222/answer", json!({}), 404),
        ("POST", "/admin/pstn/calls", json!({"from": "13911112222", "to": "99999"}), 404),
        ("POST", "/admin/pstn/calls", json!({"from": "abc", "to": "02160000001"}), 400),
    ];
    for (method, path, body, status) in cases {
        let (s, b) = if method == "PUT" {
            emu.admin_put(path, body).await.unwrap()
        } else {
            emu.admin_post_status(path, body).await.unwrap()
        };
        assert_eq!(s, status, "{method} {path}: {b}");
        assert!(b["error"].is_string(), "{b}");
    }
    let phones = emu.admin_get("/admin/pstn/phones").await.unwrap();
    assert!(!phones.to_string().contains("13911112222"), "nothing changed: {phones}");
}

async fn with_callbacks(emu: &Emulator, outbound: Option<&str>, inbound: Option<&str>) {
    let (s, b) = emu.admin_put("/admin/callbacks", json!({"outbound": outbound, "inbound": inbound})).await.unwrap();
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn outbound_callback_allows_refuses_limits_and_fails() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();

    let server = CallbackServer::start(|req| match req["extend"].as_str() {
        _ if req["calleeInfos"][0]["phoneNumber"] == "13800000002" => {
            Reply::Json(json!({"success": false, "message": "blocked number"}))
        }
        _ => Reply::Json(json!({"success": true, "model": {"timeLimit": 60, "needRecord": true}})),
    })
    .await
    .unwrap();
    with_callbacks(&emu, Some(&server.url), None).await;

    alice.call_voip("cb-ok", &[&bob.rtc_id]).await.unwrap();
    let req = server.next_request().await.unwrap();
    assert_eq!(req["communicationType"], "voip2voip");
    assert_eq!(req["callerInfo"]["voipId"], alice.rtc_id.as_str());
    assert_eq!(req["calleeInfos"][0]["voipId"], bob.rtc_id.as_str());
    assert_eq!(req["channelId"], "cb-ok");
    let called = bob.expect("called").await.unwrap();
    bob.answer(&called, true).await.unwrap();
    alice.expect("answered").await.unwrap();
    emu.advance(60_000).await.unwrap();
    assert_eq!(code(&alice.expect("cs_disconnect").await.unwrap()), 3100010);
    assert_eq!(code(&bob.expect("cs_disconnect").await.unwrap()), 3100010);
    let call = emu.admin_get("/admin/calls/cb-ok").await.unwrap();
    assert_eq!(call["needRecord"], true);

    alice.call_pstn("cb-refused", "02160000001", "13800000002").await.unwrap();
    let d = alice.expect("cs_disconnect").await.unwrap();
    assert_eq!((code(&d), d.body["cause"].as_str()), (3100007, Some("blocked number")));

    // A 2 MB answer is refused without being read whole.
    let huge = Reply::Json(json!({"success": true, "padding": "x".repeat(2 << 20)}));
    for (name, reply) in [("500", Reply::Status(500)), ("garbage", Reply::Garbage), ("huge", huge)] {
        let failing = CallbackServer::start(move |_| reply.clone()).await.unwrap();
        with_callbacks(&emu, Some(&failing.url), None).await;
        alice.call_voip(&format!("cb-{name}"), &[&bob.rtc_id]).await.unwrap();
        let d = alice.expect("cs_disconnect").await.unwrap();
        assert_eq!(code(&d), 3999999, "{name}");
        assert!(d.body["cause"].as_str().unwrap().starts_with("outbound callback failed"), "{name}: {:?}", d.body);
        if name == "huge" {
            assert!(d.body["cause"].as_str().unwrap().contains("larger than 1048576 bytes"), "{:?}", d.body);
        }
    }

    // Nothing listens on this port: connection refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/cb", dead.local_addr().unwrap());
    drop(dead);
    with_callbacks(&emu, Some(&url), None).await;
    alice.call_voip("cb-refused-conn", &[&bob.rtc_id]).await.unwrap();
    assert_eq!(code(&alice.expect("cs_disconnect").await.unwrap()), 3999999);

    // A slow server: the emulator's callback timeout (3 s, emulator clock) ends the wait.
    let slow =
        CallbackServer::start(|_| Reply::Delayed(Duration::from_secs(20), json!({"success": true}))).await.unwrap();
    with_callbacks(&emu, Some(&slow.url), None).await;
    alice.call_voip("cb-slow", &[&bob.rtc_id]).await.unwrap();
    slow.next_request().await.unwrap();
    emu.advance(3_000).await.unwrap();
    let d = alice.expect("cs_disconnect").await.unwrap();
    assert_eq!(d.body["cause"], "outbound callback failed: timed out");
}

#[tokio::test]
async fn pstn_to_voip_through_the_inbound_callback() {
    let emu = emu().await;
    let mut bob = emu.registered("bob").await.unwrap();
    let bob_id = bob.rtc_id.clone();
    let server = CallbackServer::start(move |_| {
        Reply::Json(json!({"success": true, "model": {"mixedCalleeInfos": [{"type": "voip", "rtcId": bob_id}]}}))
    })
    .await
    .unwrap();
    with_callbacks(&emu, None, Some(&server.url)).await;
    let (s, call) =
        emu.admin_post_status("/admin/pstn/calls", json!({"from": "13911110000", "to": "02160000001"})).await.unwrap();
    assert_eq!(s, 201, "{call}");
    let channel = call["channelId"].as_str().unwrap().to_string();
    let req = server.next_request().await.unwrap();
    assert_eq!(req, json!({"phoneNumber": "13911110000", "platformNumber": "02160000001", "channelId": channel}));
    let called = bob.expect("called").await.unwrap();
    assert_eq!(called.body["alicomRtcType"], "pstn2voip");
    assert_eq!(called.body["callerInfo"]["isPstn"], true);
    assert_eq!(called.body["callerInfo"]["phoneNumber"], "13911110000");
    bob.answer(&called, true).await.unwrap();
    emu.admin_post_status("/admin/pstn/phones/13911110000/dtmf", json!({"digits": "7"})).await.unwrap();
    assert_eq!(bob.expect("cs_dtmf").await.unwrap().body["dtmf"], "7");
    emu.advance(30_000).await.unwrap();
    emu.admin_post_status("/admin/pstn/phones/13911110000/hangup", json!({})).await.unwrap();
    bob.expect("peerLeftChannel").await.unwrap();
    let cdr = cdr_of(&emu, &channel).await;
    assert_eq!((cdr["alicomRtcType"].as_str(), cdr["duration"].as_str()), (Some("pstn2voip"), Some("30")));
}

#[tokio::test]
async fn a_number_can_have_its_own_announcements() {
    let extra = r#"
[[tenants]]
name = "default"
uid = "1234567890123456"
numbers = [{ number = "02160000009", announcements = { not_connected = "after-hours.wav" } }]
[[tenants.access_keys]]
id = "testAK"
secret = "testSecret"
"#;
    let emu = Emulator::start(&format!("{MANUAL}{extra}")).await.unwrap();
    emu.admin_post_status("/admin/pstn/calls", json!({"from": "13911110005", "to": "02160000009"})).await.unwrap();
    let phone = emu.admin_get("/admin/pstn/phones/13911110005").await.unwrap();
    assert_eq!(phone["announcements"], json!(["after-hours.wav"]));
}

#[tokio::test]
async fn inbound_without_callback_hears_the_default_announcement() {
    let emu = emu().await;
    let (_, call) =
        emu.admin_post_status("/admin/pstn/calls", json!({"from": "13911110001", "to": "02160000002"})).await.unwrap();
    let channel = call["channelId"].as_str().unwrap();
    let phone = emu.admin_get("/admin/pstn/phones/13911110001").await.unwrap();
    assert_eq!(phone["announcements"], json!(["not_connected"]));
    assert_eq!(phone["state"], "idle");
    assert_eq!(cdr_of(&emu, channel).await["duration"], "0");
}

#[tokio::test]
async fn transfer_plans_sequential_and_simultaneous() {
    let emu = emu().await;
    // Three sequences of phones that never answer, 30 s each.
    let plan = json!({"success": true, "model": {"mixedCalleeInfos": [
        {"type": "pstn", "phoneNumber": "13800000003", "platformNumber": "02160000001", "sequence": 1},
        {"type": "pstn", "phoneNumber": "13700000003", "platformNumber": "02160000001", "sequence": 2},
        {"type": "pstn", "phoneNumber": "13600000003", "platformNumber": "02160000001", "sequence": 3},
    ]}});
    for n in ["13700000003", "13600000003"] {
        emu.admin_put(&format!("/admin/pstn/phones/{n}"), json!({"then": "no_answer"})).await.unwrap();
    }
    let server = CallbackServer::start(move |_| Reply::Json(plan.clone())).await.unwrap();
    with_callbacks(&emu, None, Some(&server.url)).await;
    let (_, call) =
        emu.admin_post_status("/admin/pstn/calls", json!({"from": "13911110002", "to": "02160000001"})).await.unwrap();
    let channel = call["channelId"].as_str().unwrap().to_string();
    server.next_request().await.unwrap();
    let started = std::time::Instant::now();
    emu.advance(95_000).await.unwrap();
    let wall = started.elapsed();
    let cdr = cdr_of(&emu, &channel).await;
    let legs = cdr["callOutInfo"].as_array().unwrap();
    assert_eq!(
        legs.iter().map(|l| l["callee"].as_str().unwrap()).collect::<Vec<_>>(),
        vec!["13800000003", "13700000003", "13600000003"]
    );
    assert!(legs.iter().all(|l| l["outcome"] == "no_answer" && l.get("startTime").is_none()));
    assert!(wall < Duration::from_millis(50), "the whole 90 s plan took {wall:?} of wall time");
    let caller = emu.admin_get("/admin/pstn/phones/13911110002").await.unwrap();
    assert_eq!(caller["announcements"], json!(["no_answer"]));

    // Simultaneous: one busy, one rejecting after 2 s, one answering after 1 s (the winner).
    let plan = json!({"success": true, "model": {"mixedCalleeInfos": [
        {"type": "pstn", "phoneNumber": "13800000002", "platformNumber": "02160000001", "sequence": 1},
        {"type": "pstn", "phoneNumber": "13800000004", "platformNumber": "02160000001", "sequence": 1},
        {"type": "pstn", "phoneNumber": "13800000001", "platformNumber": "02160000001", "sequence": 1},
    ]}});
    let server = CallbackServer::start(move |_| Reply::Json(plan.clone())).await.unwrap();
    with_callbacks(&emu, None, Some(&server.url)).await;
    let (_, call) =
        emu.admin_post_status("/admin/pstn/calls", json!({"from": "13911110003", "to": "02160000001"})).await.unwrap();
    let channel = call["channelId"].as_str().unwrap().to_string();
    server.next_request().await.unwrap();
    emu.advance(1_000).await.unwrap();
    let winner = emu.admin_get("/admin/pstn/phones/13800000001").await.unwrap();
    assert_eq!(winner["state"], "in_call");
    let call = emu.admin_get(&format!("/admin/calls/{channel}")).await.unwrap();
    assert_eq!(call["alicomRtcType"], "pstn2pstn");
    let outcomes: Vec<&str> =
        call["legs"].as_array().unwrap().iter().map(|l| l["outcome"].as_str().unwrap_or("-")).collect();
    assert_eq!(outcomes, vec!["busy", "answered_elsewhere", "-"]);
    emu.admin_post_status("/admin/pstn/phones/13911110003/hangup", json!({})).await.unwrap();
    assert_eq!(emu.admin_get("/admin/pstn/phones/13800000001").await.unwrap()["state"], "idle");
}

#[tokio::test]
async fn a_transfer_rings_the_phone_from_the_plans_platform_number() {
    let emu = emu().await;
    let plan = json!({"success": true, "model": {"mixedCalleeInfos": [
        {"type": "pstn", "phoneNumber": "13700000021", "platformNumber": "02160000002"},
    ]}});
    let server = CallbackServer::start(move |_| Reply::Json(plan.clone())).await.unwrap();
    with_callbacks(&emu, None, Some(&server.url)).await;
    let (_, call) =
        emu.admin_post_status("/admin/pstn/calls", json!({"from": "13911110021", "to": "02160000001"})).await.unwrap();
    let channel = call["channelId"].as_str().unwrap().to_string();
    server.next_request().await.unwrap();
    emu.advance(2_000).await.unwrap(); // any other number answers after 2 s
    let q = emu.admin_get("/admin/pstn/phones/13700000021").await.unwrap();
    assert_eq!((q["state"].as_str(), q["peer"].as_str()), (Some("in_call"), Some("02160000002")), "{q}");
    let call = emu.admin_get(&format!("/admin/calls/{channel}")).await.unwrap();
    assert_eq!(call["legs"][0]["target"]["display"], "02160000002");
    emu.admin_post_status("/admin/pstn/phones/13911110021/hangup", json!({})).await.unwrap();
    let cdr = cdr_of(&emu, &channel).await;
    assert_eq!(cdr["callOutInfo"][0]["caller"], "02160000002");
}

#[tokio::test]
async fn plans_report_declared_sequences_and_drop_values_above_10() {
    let emu = emu().await;
    let plan = json!({"success": true, "model": {"mixedCalleeInfos": [
        {"type": "pstn", "phoneNumber": "13700000031", "platformNumber": "02160000001", "sequence": 1},
        {"type": "pstn", "phoneNumber": "13700000032", "platformNumber": "02160000001", "sequence": 2},
        {"type": "pstn", "phoneNumber": "13700000033", "platformNumber": "02160000001", "sequence": 2},
        {"type": "pstn", "phoneNumber": "13700000034", "platformNumber": "02160000001", "sequence": 3},
        {"type": "pstn", "phoneNumber": "13700000035", "platformNumber": "02160000001", "sequence": 5},
        {"type": "pstn", "phoneNumber": "13700000036", "platformNumber": "02160000001", "sequence": 11},
    ]}});
    for n in 31..=36 {
        emu.admin_put(&format!("/admin/pstn/phones/137000000{n}"), json!({"then": "no_answer"})).await.unwrap();
    }
    let server = CallbackServer::start(move |_| Reply::Json(plan.clone())).await.unwrap();
    with_callbacks(&emu, None, Some(&server.url)).await;
    let (_, call) =
        emu.admin_post_status("/admin/pstn/calls", json!({"from": "13911110031", "to": "02160000001"})).await.unwrap();
    let channel = call["channelId"].as_str().unwrap().to_string();
    server.next_request().await.unwrap();
    emu.advance(200_000).await.unwrap();
    let call = emu.admin_get(&format!("/admin/calls/{channel}")).await.unwrap();
    let legs: Vec<(&str, i64, i64)> = call["legs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (l["target"]["number"].as_str().unwrap(), l["sequence"].as_i64().unwrap(), l["position"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(
        legs,
        vec![
            ("13700000031", 1, 1),
            ("13700000032", 2, 2),
            ("13700000033", 2, 2),
            ("13700000034", 3, 3),
            ("13700000035", 5, 4),
        ],
        "the callee declared 11 never rings"
    );
    assert!(call["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("sequence 11")));
    let ringing: Vec<i64> = call["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "call.state" && e["detail"]["state"] == "ringing")
        .map(|e| e["detail"]["detail"]["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(ringing, vec![1, 2, 3, 5]);
}

#[tokio::test]
async fn inbound_callback_failures_leave_the_call_not_connected() {
    let emu = emu().await;
    for reply in [Reply::Status(503), Reply::Garbage, Reply::Json(json!({"success": false}))] {
        let server = CallbackServer::start(move |_| reply.clone()).await.unwrap();
        with_callbacks(&emu, None, Some(&server.url)).await;
        let (_, call) = emu
            .admin_post_status("/admin/pstn/calls", json!({"from": "13911110009", "to": "02160000001"}))
            .await
            .unwrap();
        server.next_request().await.unwrap();
        let channel = call["channelId"].as_str().unwrap().to_string();
        // The answer is processed asynchronously: await the call's end on the event log.
        emu.event_where("call.state", &channel, Duration::from_secs(5), |e| e.detail.field("state") == "ended")
            .await
            .unwrap();
        let phone = emu.admin_get("/admin/pstn/phones/13911110009").await.unwrap();
        assert_eq!(phone["announcements"], json!(["not_connected"]));
    }
}
