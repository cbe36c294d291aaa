//! Custom messages between accounts (docs/protocol.md#custom-messages) with testkit devices:
//! delivery and receipts, invalid content (2000120), undeliverable messages (2000122: unknown,
//! offline, another tenant, never ACKed, a custom-account sender), duplicates, order, timestamps
//! on the manual clock, a virtual target, during a call, and `POST /admin/messages`.

use std::time::Duration;

use emu_testkit::{Device, Emulator, Envelope, Inbound, PopClient};
use serde_json::{Value, json};

const CONFIG: &str = r#"
[clock]
mode = "manual"

[gateway]
retransmit_interval_ms = 100
retransmit_attempts = 2
sweep_interval_ms = 20

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
"#;

async fn emu() -> Emulator {
    Emulator::start(CONFIG).await.expect("emulator")
}

/// The receipt the sender gets next.
async fn receipt(d: &mut Device) -> Value {
    d.expect("cs_custom_message_receipt").await.expect("a receipt").body
}

/// Pushes among what arrived (without waiting).
fn pushes(d: &mut Device) -> Vec<Envelope> {
    d.drain()
        .into_iter()
        .filter_map(|i| match i {
            Inbound::Envelope(e) if e.message_type == "cs_custom_message_push" => Some(*e),
            _ => None,
        })
        .collect()
}

/// Waits (on the event log, not by polling) until an event of `kind` has been recorded.
async fn logged(emu: &Emulator, kind: &str) {
    let events = &emu.running.shared.events;
    let mut live = events.subscribe();
    let filter = emu_core::events::EventFilter { kind_prefix: Some(kind.to_string()), ..Default::default() };
    if !events.query(&filter).is_empty() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(e) = live.recv().await {
            if e.kind == kind {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} event within 5 s"));
}

fn kinds(events: &Value, prefix: &str) -> Vec<String> {
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .filter(|k| k.starts_with(prefix))
        .collect()
}

#[tokio::test]
async fn a_message_is_pushed_to_the_target_and_the_sender_gets_a_receipt() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();
    let now = emu.admin_get("/admin/clock").await.unwrap()["nowMs"].as_u64().unwrap();

    let ack = alice.send_custom_message(&bob.rtc_id, "hello 你好 👋", json!(1)).await.unwrap();
    assert_eq!(ack.response_code, 200);
    let push = bob.expect("cs_custom_message_push").await.unwrap();
    assert_eq!(
        push.body,
        json!({"sourceRtcId": alice.rtc_id, "content": "hello 你好 👋", "sequence": 1, "timestamp": now})
    );
    let r = receipt(&mut alice).await;
    assert_eq!(
        r,
        json!({"sequence": 1, "targetRtcId": bob.rtc_id, "success": true, "errorCode": 0, "errorMessage": "", "timestamp": now})
    );

    // Timestamps are the emulator clock's; a string sequence is echoed as it was sent.
    emu.advance(1_500).await.unwrap();
    alice.send_custom_message(&bob.rtc_id, "again", json!("s-2")).await.unwrap();
    let push = bob.expect("cs_custom_message_push").await.unwrap();
    assert_eq!((push.body["sequence"].clone(), push.body["timestamp"].as_u64()), (json!("s-2"), Some(now + 1_500)));
    assert_eq!(receipt(&mut alice).await["timestamp"].as_u64(), Some(now + 1_500));

    let events = emu.admin_get("/admin/events?kind=message.").await.unwrap();
    assert_eq!(
        kinds(&events, "message."),
        [
            "message.sent",
            "message.delivered",
            "message.receipt",
            "message.sent",
            "message.delivered",
            "message.receipt"
        ]
    );
    // The envelopes themselves are logged with their bodies.
    let out = emu.admin_get(&format!("/admin/events?kind=envelope.out&rtcId={}", bob.rtc_id)).await.unwrap();
    let push_event =
        out["events"].as_array().unwrap().iter().find(|e| e["detail"]["messageType"] == "cs_custom_message_push");
    assert_eq!(push_event.unwrap()["detail"]["body"]["content"], "hello 你好 👋");
}

#[tokio::test]
async fn pushes_keep_the_senders_order_and_duplicates_are_delivered_once() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();
    // Five sends published back to back, without waiting for their ACKs.
    for i in 1..=5 {
        let env = alice.build_request(
            "cs_custom_message_send",
            json!({"targetRtcId": bob.rtc_id, "content": format!("m{i}"), "sequence": i}),
            None,
        );
        alice.publish(&env).await.unwrap();
    }
    for i in 1..=5 {
        assert_eq!(receipt(&mut alice).await["sequence"], i);
    }
    let got: Vec<Value> = pushes(&mut bob).iter().map(|p| p.body["content"].clone()).collect();
    assert_eq!(got, ["m1", "m2", "m3", "m4", "m5"]);

    // The same request published twice (an SDK retransmitting): ACKed twice, delivered once.
    let env = alice.build_request(
        "cs_custom_message_send",
        json!({"targetRtcId": bob.rtc_id, "content": "once", "sequence": 6}),
        None,
    );
    alice.publish(&env).await.unwrap();
    alice.publish(&env).await.unwrap();
    alice.expect_ack(&env.request_id).await.unwrap();
    alice.expect_ack(&env.request_id).await.unwrap();
    assert_eq!(receipt(&mut alice).await["sequence"], 6);
    bob.expect("cs_custom_message_push").await.unwrap();
    // A second receipt would mean a second delivery.
    assert!(alice.expect_within("cs_custom_message_receipt", Duration::from_millis(500)).await.is_err());
    assert!(pushes(&mut bob).is_empty());
}

#[tokio::test]
async fn empty_or_too_long_content_fails_with_2000120() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();
    // 1024 UTF-16 units pass: 1024 ASCII characters, or 512 emoji outside the BMP.
    for (content, ok) in [
        (String::new(), false),
        ("a".repeat(1024), true),
        ("a".repeat(1025), false),
        ("😀".repeat(512), true),
        ("😀".repeat(513), false),
    ] {
        let ack = alice.send_custom_message(&bob.rtc_id, &content, json!(content.len())).await.unwrap();
        assert_eq!(ack.response_code, 200, "the send itself is ACKed");
        let r = receipt(&mut alice).await;
        assert_eq!(r["success"], ok, "{} chars: {r}", content.chars().count());
        assert_eq!(r["errorCode"], if ok { 0 } else { 2_000_120 }, "{r}");
        if ok {
            assert_eq!(bob.expect("cs_custom_message_push").await.unwrap().body["content"], content.as_str());
        }
    }
    assert!(pushes(&mut bob).is_empty(), "invalid content is never pushed");
}

#[tokio::test]
async fn undeliverable_messages_fail_with_2000122() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();
    // An account that exists but never connected, one that does not exist, and no target at all.
    let carol = emu.pop().add_rtc_account("carol-phone").await.unwrap();
    for (target, reason) in
        [(carol.as_str(), "offline"), ("2999999999999999", "not an account"), ("", "no targetRtcId")]
    {
        alice.send_custom_message(target, "hi", json!(target)).await.unwrap();
        let r = receipt(&mut alice).await;
        assert_eq!((r["success"].as_bool(), r["errorCode"].as_i64()), (Some(false), Some(2_000_122)), "{r}");
        assert!(r["errorMessage"].as_str().unwrap().contains(reason), "{r}");
    }
    let failed = emu.admin_get("/admin/events?kind=message.failed").await.unwrap();
    assert_eq!(failed["events"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn messages_never_cross_tenants() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();
    let other = PopClient::new(&emu.endpoints.pop, "otherAK", "otherSecret");
    let zed_id = other.add_rtc_account("zed-phone").await.unwrap();
    let token = other.get_rtc_token(&zed_id, "zed-phone").await.unwrap();
    let mut zed = Device::connect(&emu.endpoints.mqtt_tcp, &zed_id, token).await.unwrap();
    zed.register().await.unwrap();

    zed.send_custom_message(&alice.rtc_id, "across", json!(1)).await.unwrap();
    let r = receipt(&mut zed).await;
    assert_eq!(r["errorCode"], 2_000_122, "{r}");
    alice.send_custom_message(&zed_id, "across", json!(2)).await.unwrap();
    assert_eq!(receipt(&mut alice).await["errorCode"], 2_000_122);
    assert!(pushes(&mut alice).is_empty() && pushes(&mut zed).is_empty());
}

#[tokio::test]
async fn a_target_that_never_acks_fails_after_the_retransmissions() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();
    bob.set_auto_ack(false);
    alice.send_custom_message(&bob.rtc_id, "are you there", json!(7)).await.unwrap();
    // The push, then its two retransmissions (100 ms apart), then the failure receipt.
    let r = alice.expect_within("cs_custom_message_receipt", Duration::from_secs(5)).await.unwrap().body;
    assert_eq!(
        (r["sequence"].clone(), r["success"].clone(), r["errorCode"].clone()),
        (json!(7), json!(false), json!(2_000_122))
    );
    assert!(r["errorMessage"].as_str().unwrap().contains("never ACKed"), "{r}");
    let got = pushes(&mut bob);
    assert_eq!(got.len(), 3, "the push and two retransmissions");
    assert!(got.iter().all(|p| p.request_id == got[0].request_id));
}

#[tokio::test]
async fn a_custom_account_sender_is_refused() {
    let emu = emu().await;
    let bob = emu.registered("bob").await.unwrap();
    let pop = emu.pop();
    let (_, token) = pop
        .call("GetRtcToken", &[("UserId", "my-own-user-7"), ("DeviceId", "dev-7"), ("IsCustomAccount", "true")])
        .await
        .unwrap();
    let token: Value = serde_json::from_str(token["Module"].as_str().unwrap()).unwrap();
    let mut custom = Device::connect(&emu.endpoints.mqtt_tcp, "my-own-user-7", token).await.unwrap();
    custom.register().await.unwrap();
    custom.send_custom_message(&bob.rtc_id, "hi", json!(1)).await.unwrap();
    let r = receipt(&mut custom).await;
    assert_eq!(r["errorCode"], 2_000_122, "{r}");
    assert!(r["errorMessage"].as_str().unwrap().contains("custom-account"), "{r}");
}

#[tokio::test]
async fn messages_reach_virtual_devices_and_flow_during_calls() {
    let emu = emu().await;
    let mut alice = emu.registered("alice").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();
    // The ready-made echo account takes every custom message.
    alice.send_custom_message("9000000000000001", "hi echo", json!(1)).await.unwrap();
    assert_eq!(receipt(&mut alice).await["success"], true);

    // During a call between alice and bob.
    alice.call_voip("c-msg", &[&bob.rtc_id]).await.unwrap();
    let called = bob.expect("called").await.unwrap();
    bob.answer(&called, true).await.unwrap();
    alice.expect("answered").await.unwrap();
    bob.send_custom_message(&alice.rtc_id, "in call", json!(2)).await.unwrap();
    assert_eq!(alice.expect("cs_custom_message_push").await.unwrap().body["content"], "in call");
    assert_eq!(receipt(&mut bob).await["success"], true);
    let call = emu.admin_get("/admin/calls/c-msg").await.unwrap();
    assert_eq!(call["state"], "active", "a message does not disturb the call");
}

#[tokio::test]
async fn the_admin_api_sends_as_an_account() {
    let emu = emu().await;
    let mut bob = emu.registered("bob").await.unwrap();
    let (s, v) = emu
        .admin_post_status(
            "/admin/messages",
            json!({"from": "2000000009999999", "to": bob.rtc_id, "content": "from ops", "sequence": 42}),
        )
        .await
        .unwrap();
    assert_eq!(s, 202, "{v}");
    let push = bob.expect("cs_custom_message_push").await.unwrap();
    assert_eq!(
        (push.body["sourceRtcId"].clone(), push.body["sequence"].clone()),
        (json!("2000000009999999"), json!(42))
    );
    assert_eq!(push.request_id, v["requestId"].as_str().unwrap());
    logged(&emu, "message.delivered").await;
    let events = emu.admin_get("/admin/events?kind=message.").await.unwrap();
    assert_eq!(kinds(&events, "message."), ["message.sent", "message.delivered"]);

    let carol = emu.pop().add_rtc_account("carol").await.unwrap();
    for (body, status) in [
        (json!({"from": "x", "to": bob.rtc_id, "content": ""}), 400),
        (json!({"from": "x", "to": "2999999999999999", "content": "hi"}), 404),
        (json!({"from": "x", "to": carol, "content": "hi"}), 409),
        (json!({"from": "x", "to": bob.rtc_id}), 400),
    ] {
        let (s, v) = emu.admin_post_status("/admin/messages", body.clone()).await.unwrap();
        assert_eq!(s, status, "{body}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
}
