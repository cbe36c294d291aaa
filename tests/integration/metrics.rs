//! `GET /metrics` (docs/metrics.md): after a call, a refused POP request and a custom message, the
//! Prometheus text shows them, and the sizes of things (devices, queues, logs) as they are.

use emu_testkit::{Emulator, PopClient};
use serde_json::json;

/// The value of the sample `name` (with its labels, exactly as exposed), if present.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

#[tokio::test]
async fn metrics_count_calls_requests_and_messages() {
    let emu = Emulator::start("[clock]\nmode = \"manual\"\n[voip]\ndevices = []\n").await.unwrap();
    let mut alice = emu.registered("alice").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();

    alice.call_voip("m-1", &[&bob.rtc_id]).await.unwrap();
    let called = bob.expect("called").await.unwrap();
    emu.advance(3_000).await.unwrap();
    bob.answer(&called, true).await.unwrap();
    alice.expect("answered").await.unwrap();
    alice.leave("m-1").await.unwrap();
    bob.expect("peerLeftChannel").await.unwrap();
    emu.event("cdr", "m-1", std::time::Duration::from_secs(5)).await.unwrap();

    let wrong = PopClient::new(&emu.endpoints.pop, &emu.endpoints.access_key_id, "not-the-secret");
    let (status, _) =
        wrong.call("GetRtcToken", &[("UserId", "u"), ("DeviceId", "d"), ("IsCustomAccount", "false")]).await.unwrap();
    assert_eq!(status, 400);
    alice.send_custom_message(&bob.rtc_id, "hi", json!(1)).await.unwrap();
    alice.expect("cs_custom_message_receipt").await.unwrap();

    let resp = reqwest::get(format!("{}/metrics", emu.endpoints.admin)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = resp.text().await.unwrap();
    for (name, want) in [
        ("alicom_calls_started_total", 1.0),
        ("alicom_calls_answered_total", 1.0),
        ("alicom_calls_active", 0.0),
        ("alicom_calls_ended_total{rtc_type=\"voip2voip\",cause_code=\"2000099\"}", 1.0),
        ("alicom_call_ring_seconds_count", 1.0),
        ("alicom_call_ring_seconds_sum", 3.0),
        ("alicom_envelopes_in_total{message_type=\"call\"}", 1.0),
        ("alicom_envelopes_out_total{message_type=\"called\"}", 1.0),
        ("alicom_pop_auth_failures_total{code=\"SignatureDoesNotMatch\"}", 1.0),
        ("alicom_custom_messages_total{outcome=\"delivered\"}", 1.0),
        ("alicom_devices{state=\"online\"}", 2.0),
        ("alicom_mqtt_connections", 2.0),
        ("alicom_receipts_total{message_type=\"ArtcCdrReport\"}", 1.0),
        (
            "alicom_mns_queue_messages{tenant=\"default\",queue=\"Alicom-Queue-1234567890123456-ArtcCdrReport\",state=\"active\"}",
            1.0,
        ),
        ("alicom_pop_request_log_entries", 5.0),
    ] {
        assert_eq!(sample(&text, name), Some(want), "{name} in:\n{text}");
    }
    // Successful POP requests (the two AddRtcAccount and GetRtcToken pairs) are counted by action.
    assert_eq!(sample(&text, "alicom_pop_requests_total{action=\"AddRtcAccount\",code=\"OK\"}"), Some(2.0), "{text}");
    assert!(sample(&text, "alicom_ack_latency_seconds_count").unwrap() >= 5.0, "{text}");
    assert!(sample(&text, "alicom_event_log_events").unwrap() > 20.0, "{text}");
    assert!(text.contains("# HELP alicom_calls_ended Calls ended"), "every metric has its help text");
}
