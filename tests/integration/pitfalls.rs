//! One test per protocol pitfall of docs/protocol.md#sdk-quirks: each fails if the emulator regresses on it.

use std::time::{Duration, Instant};

use emu_testkit::media::{ClientOptions, MediaClient, TurnCreds};
use emu_testkit::{Emulator, media};
use serde_json::json;

/// ACKs: every client request is ACKed (same requestId) well within the SDK's 2 s window.
#[tokio::test]
async fn every_request_is_acked_within_two_seconds() {
    let emu = Emulator::start("").await.unwrap();
    let mut alice = emu.registered("alice").await.unwrap();
    for message_type in ["cs_register", "cs_get_sls_sts", "reportStatus", "stat", "candidate", "cs_custom_message_push"]
    {
        let env = alice.build_request(message_type, json!({"channelId": "nowhere"}), None);
        let sent = Instant::now();
        alice.publish(&env).await.unwrap();
        let ack = alice.expect_ack(&env.request_id).await.unwrap();
        assert!(sent.elapsed() < Duration::from_secs(2), "{message_type} ACKed after {:?}", sent.elapsed());
        assert_eq!((ack.message_type.as_str(), ack.response_code), (message_type, 200));
        assert_ne!(ack.message_id, env.message_id, "a fresh messageId");
    }
}

/// Quirk 1: a retransmission (byte-identical envelope) is processed once; the ACK is repeated.
#[tokio::test]
async fn retransmissions_are_deduplicated() {
    let emu = Emulator::start("").await.unwrap();
    let mut alice = emu.registered("alice").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();
    alice.join_as_caller("dup", "voip2voip", json!({"isPstn": false, "rtcId": bob.rtc_id, "uuid": "x"})).await.unwrap();
    let ms = json!({"api": "call", "data": {"channelId": "dup", "calleeDeviceInfo": {"deviceList": [{"deviceId": bob.rtc_id}]}}});
    let call = alice.build_request("call", json!({"channelId": "dup"}), Some(&ms));
    alice.publish(&call).await.unwrap();
    alice.publish(&call).await.unwrap(); // the SDK's retransmission: same requestId, same bytes
    let a1 = alice.expect_ack(&call.request_id).await.unwrap();
    let a2 = alice.expect_ack(&call.request_id).await.unwrap();
    assert_eq!(a1.message_id, a2.message_id, "the cached ACK is re-sent");
    bob.expect("called").await.unwrap();
    bob.register().await.unwrap(); // a round trip after both copies were handled
    assert!(
        !bob.drain().iter().any(|i| matches!(i, emu_testkit::Inbound::Envelope(e) if e.message_type == "called")),
        "the retransmitted `call` rang bob a second time"
    );
    let timeline = emu.admin_get("/admin/events?channelId=dup&kind=envelope.out").await.unwrap();
    let called =
        timeline["events"].as_array().unwrap().iter().filter(|e| e["detail"]["messageType"] == "called").count();
    assert_eq!(called, 1);
}

/// Quirks 2, 3 and 5: the joinChannel result has TURN servers (sigv 1) and a
/// `dynamicConfig` object; the answer SDP has no candidates, which come only in `candidateList`
/// with the offer's mid.
#[tokio::test]
async fn turn_dynamic_config_and_candidates_only_in_the_candidate_list() {
    let emu = Emulator::start("").await.unwrap();
    let mut alice = emu.registered("alice").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();
    let join = alice.call_voip("pit", &[&bob.rtc_id]).await.unwrap();
    let ms = media(&join).unwrap();
    assert!(ms["data"]["dynamicConfig"].is_object(), "dynamicConfig must be an object: {ms}");
    let turn = &ms["data"]["turnServers"][0];
    assert!(turn["address"].as_str().unwrap().starts_with("turn:"), "{ms}");
    assert!(turn["username"].is_string() && turn["password"].is_string());
    let creds = TurnCreds::from_join_result(&ms).unwrap();
    let client = MediaClient::new(ClientOptions::relay(creds)).await.unwrap();
    let signal = client.sdp_candidate_signal("pit");
    let offer = signal["data"]["sdpInfo"]["sdp"].as_str().unwrap().to_string();
    let mid = offer.lines().find_map(|l| l.strip_prefix("a=mid:")).unwrap().trim().to_string();
    alice.request("sdpCandidate", json!({"channelId": "pit"}), Some(&signal)).await.unwrap();
    let result = media(&alice.expect("sdpCandidate").await.unwrap()).unwrap();
    let sdp = result["data"]["sdpInfo"]["sdp"].as_str().unwrap();
    assert!(!sdp.contains("a=candidate"), "no candidates in the answer SDP");
    assert!(!sdp.contains("a=end-of-candidates"));
    assert!(sdp.contains(&format!("a=mid:{mid}")) && sdp.contains("a=rtcp-mux"), "the offer's mid: {sdp}");
    let list = result["data"]["candidateList"].as_array().unwrap();
    assert!(!list.is_empty());
    assert_eq!((list[0]["id"].as_str(), list[0]["label"].as_i64()), (Some(mid.as_str()), Some(0)));
    // The callee's joinChannel result has them too.
    let called = bob.expect("called").await.unwrap();
    let joined = bob.answer(&called, true).await.unwrap().unwrap();
    assert!(media(&joined).unwrap()["data"]["dynamicConfig"].is_object());
}

/// Quirk 4: `called`, `canceledCall` and the end of an unanswered callee carry no
/// `body.uuid`; what goes to the caller carries the caller's own uuid; fresh ids every time.
#[tokio::test]
async fn body_uuid_rules() {
    let emu = Emulator::start("").await.unwrap();
    let mut alice = emu.registered("alice").await.unwrap();
    let mut b1 = emu.registered("b1").await.unwrap();
    let mut b2 = emu.registered("b2").await.unwrap();
    alice.call_voip("uu", &[&b1.rtc_id, &b2.rtc_id]).await.unwrap();
    let c1 = b1.expect("called").await.unwrap();
    let c2 = b2.expect("called").await.unwrap();
    assert!(c1.body.get("uuid").is_none() && c2.body.get("uuid").is_none());
    assert_ne!(c1.request_id, c2.request_id);
    let ringing = alice.expect("ringing").await.unwrap();
    assert_eq!(ringing.body["uuid"], alice.session_uuid.as_str());
    b1.answer(&c1, true).await.unwrap();
    let elsewhere = b2.expect("cs_disconnect").await.unwrap();
    assert!(elsewhere.body.get("uuid").is_none(), "b2 never answered: no uuid");
    let answered = alice.expect("answered").await.unwrap();
    assert_eq!(answered.body["uuid"], alice.session_uuid.as_str());
    alice.leave("uu").await.unwrap();
    let left = b1.expect("peerLeftChannel").await.unwrap();
    assert_eq!(left.body["uuid"], b1.session_uuid.as_str(), "b1 answered: its own uuid");

    alice.call_voip("uu2", &[&b2.rtc_id]).await.unwrap();
    b2.expect("called").await.unwrap();
    alice.cancel("uu2").await.unwrap();
    let cancelled = b2.expect("canceledCall").await.unwrap();
    assert!(cancelled.body.get("uuid").is_none());
}
