//! Bounded retention (docs/admin-api.md#what-is-retained-and-how-much): with small caps in the
//! configuration, traffic past each cap leaves every collection at its cap, and `/metrics`
//! shows each collection's size and caps.

use std::time::Duration;

use emu_testkit::Emulator;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

const CAPS: &str = r#"
[server]
event_log_size = 40
[pop]
request_log_size = 3
[calls]
recent_calls = 2
[retention]
cdrs = 3
problems = 2
sls_uploads = 2
finished_channels = 2
dedupe_window = 4
"#;

/// `alicom_<name>{collection="<c>"} <value>` from a scrape.
fn gauge(metrics: &str, name: &str, collection: &str) -> i64 {
    let prefix = format!("alicom_{name}{{collection=\"{collection}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn every_collection_stays_at_its_cap_and_metrics_show_it() {
    let emu = Emulator::start(CAPS).await.unwrap();
    let mut alice = emu.registered("alice").await.unwrap();
    // Six calls to an account that is not online: each ends at once with a CDR, and its media
    // channel (the caller's joined leg) is released.
    for i in 0..6 {
        let channel = format!("r-{i}");
        alice.call_voip(&channel, &["nobody-online"]).await.unwrap();
        alice.expect("cs_disconnect").await.unwrap();
        emu.event_where("call.state", &channel, WAIT, |e| e.detail.field("state") == "ended").await.unwrap();
    }
    // Problem reports, POP requests and SLS uploads past their caps.
    let pop = emu.pop();
    for i in 0..5 {
        let voip = alice.rtc_id.clone();
        let (status, _) = pop
            .call("ReportVoipProblems", &[("VoipId", &voip), ("Title", &format!("t{i}")), ("Desc", "d")])
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    let ack = alice.request("cs_get_sls_sts", json!({}), None).await.unwrap();
    let sink = format!("http://{}/logstores/x/shards/lb", ack.body["endpoint"].as_str().unwrap());
    let http = reqwest::Client::new();
    for _ in 0..5 {
        assert_eq!(http.post(&sink).body(vec![1u8; 10]).send().await.unwrap().status(), 200);
    }

    let cdrs = emu.admin_get("/admin/cdrs").await.unwrap();
    let cdrs = cdrs["cdrs"].as_array().unwrap();
    assert_eq!(cdrs.len(), 3, "the newest 3 CDRs");
    assert_eq!(cdrs.last().unwrap()["report"]["channelId"], "r-5");
    let problems = emu.admin_get("/admin/problems").await.unwrap();
    assert_eq!(problems["problems"].as_array().unwrap().len(), 2, "{problems}");
    let sls = emu.admin_get("/admin/sls").await.unwrap();
    assert_eq!(sls["uploads"].as_array().unwrap().len(), 2);
    let requests = emu.admin_get("/admin/requests").await.unwrap();
    assert_eq!(requests["requests"].as_array().unwrap().len(), 3, "{requests}");
    let (old, new) = (emu.admin_get("/admin/media/r-0").await, emu.admin_get("/admin/media/r-5").await.unwrap());
    assert!(old.is_err() || old.as_ref().unwrap().get("error").is_some(), "r-0's media statistics are gone: {old:?}");
    assert_eq!(new["released"], true, "r-5's are kept: {new}");

    let metrics = reqwest::get(format!("{}/metrics", emu.endpoints.admin)).await.unwrap().text().await.unwrap();
    for (collection, cap) in [
        ("cdrs", 3),
        ("recent_calls", 2),
        ("problems", 2),
        ("sls_uploads", 2),
        ("finished_channels", 2),
        ("pop_requests", 3),
        ("event_log", 40),
    ] {
        assert_eq!(gauge(&metrics, "retention_limit_items", collection), cap, "{collection}");
        assert_eq!(gauge(&metrics, "retained_items", collection), cap, "{collection} is at its cap");
        assert!(gauge(&metrics, "retained_bytes", collection) > 0, "{collection} weighs something");
        assert!(gauge(&metrics, "retention_limit_bytes", collection) > 0);
    }
    // One client's duplicate suppression: 6 × (joinChannel + call) + cs_get_sls_sts requests,
    // the newest 4 remembered.
    assert_eq!(gauge(&metrics, "retained_items", "dedupe"), 4);
    assert_eq!(gauge(&metrics, "retention_limit_items", "dedupe"), 4);
    let calls = emu.admin_get("/admin/calls").await.unwrap();
    let ended = calls["calls"].as_array().unwrap().iter().filter(|c| c["state"] == "ended").count();
    assert_eq!(ended, 2, "the newest 2 ended calls");
}

/// A requestId's ACK is remembered for the disconnect grace period plus a minute, not until 256
/// newer requests push it out: a device that only heartbeats (one request per 30 s) used to keep
/// 256 ACKs, two hours' worth, per client (the soak of issue 20 saw RSS creep up with them).
#[tokio::test]
async fn duplicate_suppression_forgets_requests_older_than_any_retransmission() {
    let emu = Emulator::start("").await.unwrap();
    let mut alice = emu.registered("alice").await.unwrap();
    for _ in 0..3 {
        alice.register().await.unwrap(); // heartbeats
    }
    let hub = &emu.running.gateway;
    assert_eq!(hub.dedupe_retained().items, 4);
    let ttl = hub.dedupe_ttl();
    assert_eq!(ttl, Duration::from_secs(25 + 60), "the default grace period plus a minute");

    // A retransmission within the window is still answered from the cache, not processed again.
    let env = alice.build_request("cs_register", json!({}), None);
    alice.publish(&env).await.unwrap();
    alice.expect_ack(&env.request_id).await.unwrap();
    let now = std::time::Instant::now();
    hub.expire_dedupe(now + ttl - Duration::from_secs(1));
    assert_eq!(hub.dedupe_retained().items, 5, "nothing is that old yet");
    alice.publish(&env).await.unwrap();
    alice.expect_ack(&env.request_id).await.unwrap();
    let metrics = reqwest::get(format!("{}/metrics", emu.endpoints.admin)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("alicom_dedupe_hits_total 1"), "the retransmission was a dedupe hit");

    hub.expire_dedupe(now + ttl + Duration::from_secs(1));
    let gone = hub.dedupe_retained();
    assert_eq!((gone.items, gone.bytes), (0, 0), "every entry was older than the TTL");
    alice.register().await.unwrap();
    assert_eq!(hub.dedupe_retained().items, 1, "new requests are remembered again");
}
