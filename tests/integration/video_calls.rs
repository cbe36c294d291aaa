//! Video calls through the whole emulator (docs/calls.md#video-calls): testkit devices signal a
//! video call over MQTT, str0m clients send synthetic VP8 frames through the TURN relay, the
//! media server forwards each party's frames to the other; an audio-only callee turns the call
//! into audio for both (`cs_media_mode`); a video offer to a phone is answered audio-only.

use std::time::Duration;

use emu_testkit::Emulator;
use emu_testkit::media::{ClientOptions, MediaClient, VideoLine};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

async fn metrics(emu: &Emulator) -> String {
    reqwest::get(format!("{}/metrics", emu.endpoints.admin)).await.unwrap().text().await.unwrap()
}

fn camera() -> ClientOptions {
    ClientOptions::default().video(VideoLine::AfterAudio)
}

/// `called`'s channelConfig.allowVideo (the SDK's onReceivingVideoCall when 1).
fn allow_video(called: &emu_testkit::Envelope) -> Value {
    emu_testkit::media(called).unwrap()["data"]["channelConfig"]["allowVideo"].clone()
}

#[tokio::test]
async fn a_video_call_carries_each_partys_video_to_the_other_and_its_cdr_says_video2video() {
    let emu = Emulator::start("").await.unwrap();
    let mut alice = emu.registered("alice").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();
    let join_a = alice.call_video("v-call", &[&bob.rtc_id]).await.unwrap();
    let called = bob.expect("called").await.unwrap();
    assert_eq!(allow_video(&called), 1, "the callee is told it is a video call");
    let mut a = MediaClient::connect_device(&mut alice, "v-call", &join_a, camera()).await.unwrap();
    let join_b = bob.answer_video(&called).await.unwrap();
    let mut b = MediaClient::connect_device(&mut bob, "v-call", &join_b, camera()).await.unwrap();
    let got_b = b.wait_video_frames(30, WAIT).await.unwrap();
    let got_a = a.wait_video_frames(30, WAIT).await.unwrap();
    assert_eq!(
        got_b.video_bytes_rx,
        got_b.video_frames_rx * emu_testkit::media::VIDEO_FRAME_BYTES as u64,
        "whole frames"
    );
    assert!(got_a.keyframe_requests_rx >= 1, "the server asked for a keyframe when video started: {got_a:?}");
    a.wait_rtp(25, WAIT).await.unwrap();
    b.wait_rtp(25, WAIT).await.unwrap();

    let call = emu.admin_get("/admin/calls/v-call").await.unwrap();
    assert_eq!(call["video"]["mode"], "video", "{}", call["video"]);
    let legs = call["media"]["legs"].as_array().expect("media legs").clone();
    assert_eq!(legs.len(), 2);
    for leg in &legs {
        let v = &leg["video"];
        assert_eq!(v["codec"], "VP8", "{v}");
        assert!(v["packetsIn"].as_u64().unwrap() > 60 && v["packetsOut"].as_u64().unwrap() > 60, "{v}");
        assert!(v["framesIn"].as_u64().unwrap() >= 30, "{v}");
        assert!(v["bitrateInBps"].as_u64().unwrap() > 100_000, "{v}");
    }
    emu.event("media.video_flowing", "v-call", WAIT).await.unwrap();
    let metrics = metrics(&emu).await;
    assert!(metrics.contains("alicom_video_streams_total 2"), "both parties' video counted:\n{metrics}");

    alice.leave("v-call").await.unwrap();
    bob.expect("peerLeftChannel").await.unwrap();
    let cdr =
        emu.event_where("receipt.queued", "v-call", WAIT, |e| e.detail.field("messageType") == "ArtcCdrReport").await;
    cdr.unwrap();
    let call = emu.admin_get("/admin/calls/v-call").await.unwrap();
    assert_eq!(call["cdr"]["alicomRtcType"], "video2video", "{}", call["cdr"]);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn an_audio_only_callee_turns_the_call_into_audio_for_both() {
    let emu = Emulator::start("").await.unwrap();
    let mut alice = emu.registered("alice").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();
    let join_a = alice.call_video("v-audio", &[&bob.rtc_id]).await.unwrap();
    let called = bob.expect("called").await.unwrap();
    let mut a = MediaClient::connect_device(&mut alice, "v-audio", &join_a, camera()).await.unwrap();
    // An audio edition: it answers with allowVideo 0 and no video in its offer.
    let join_b = bob.answer(&called, true).await.unwrap().unwrap();
    let mut b = MediaClient::connect_device(&mut bob, "v-audio", &join_b, ClientOptions::default()).await.unwrap();
    let bob_id = bob.rtc_id.clone();
    for (who, device) in [("alice", &mut alice), ("bob", &mut bob)] {
        let m = device.expect("cs_media_mode").await.unwrap();
        assert_eq!(m.body["mode"], 1, "{who}: audio");
        assert_eq!(m.body["rtcId"], bob_id, "{who}: {}", m.body);
        assert_eq!(m.body["channelId"], "v-audio");
        assert!(m.body["uuid"].as_str().is_some_and(|u| !u.is_empty()), "{who}: {}", m.body);
    }
    // Audio flows both ways; no video reaches anyone.
    a.wait_rtp(50, WAIT).await.unwrap();
    b.wait_rtp(50, WAIT).await.unwrap();
    assert_eq!(b.stats().video_frames_rx, 0);
    assert_eq!(a.stats().video_frames_rx, 0);
    let call = emu.admin_get("/admin/calls/v-audio").await.unwrap();
    assert_eq!(call["video"]["mode"], "audio");
    assert_eq!(call["video"]["reason"], format!("{bob_id} answered audio-only"));
    assert!(metrics(&emu).await.contains("alicom_video_calls_to_audio_total 1"));
    alice.leave("v-audio").await.unwrap();
    emu.event_where("receipt.queued", "v-audio", WAIT, |e| e.detail.field("messageType") == "ArtcCdrReport")
        .await
        .unwrap();
    let call = emu.admin_get("/admin/calls/v-audio").await.unwrap();
    assert_eq!(call["cdr"]["alicomRtcType"], "voip2voip", "no video both ways");
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_video_offer_in_a_call_to_a_phone_is_answered_audio_only() {
    let emu = Emulator::start("").await.unwrap();
    let mut alice = emu.registered("alice").await.unwrap();
    // 13800000008 answers after 1 s. The client offers video (allowVideo 0 in a PSTN call).
    let join = alice.call_pstn("v-pstn", "02160000001", "13800000008").await.unwrap();
    let mut a = MediaClient::connect_device(&mut alice, "v-pstn", &join, camera()).await.unwrap();
    alice.expect("answered").await.unwrap();
    a.wait_rtp(25, WAIT).await.unwrap();
    let call = emu.admin_get("/admin/calls/v-pstn").await.unwrap();
    assert!(call["media"]["legs"][0]["video"].is_null(), "no video line answered: {}", call["media"]);
    assert_eq!(a.stats().video_frames_rx, 0);
    alice.leave("v-pstn").await.unwrap();
    a.close().await;
}
