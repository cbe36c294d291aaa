//! Calls with real media through the whole emulator: testkit devices signal over MQTT, str0m
//! clients connect through the embedded TURN relay, audio flows, phones' tones arrive, DTMF goes
//! both ways, and a recorded VoIP→PSTN call leaves a WAV and a VoiceRecordReport.

use std::time::Duration;

use emu_testkit::Emulator;
use emu_testkit::media::{ClientOptions, MediaClient};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn voip_to_voip_audio_both_ways_through_turn() {
    let emu = Emulator::start("").await.unwrap();
    let mut alice = emu.registered("alice").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();
    let join_a = alice.call_voip("m-voip", &[&bob.rtc_id]).await.unwrap();
    let ms = emu_testkit::media(&join_a).unwrap();
    assert!(ms["data"]["turnServers"][0]["address"].as_str().unwrap().starts_with("turn:"), "{ms}");
    let called = bob.expect("called").await.unwrap();
    let mut a =
        MediaClient::connect_device(&mut alice, "m-voip", &join_a, ClientOptions::default().tone(440.0)).await.unwrap();
    let join_b = bob.answer(&called, true).await.unwrap().unwrap();
    let mut b =
        MediaClient::connect_device(&mut bob, "m-voip", &join_b, ClientOptions::default().tone(880.0)).await.unwrap();
    a.wait_rtp(50, WAIT).await.unwrap();
    b.wait_rtp(50, WAIT).await.unwrap();
    let call = emu.admin_get("/admin/calls/m-voip").await.unwrap();
    let media = call["media"].to_string();
    assert!(media.contains("packets") || media.contains("rtp"), "media stats in the call view: {media}");
    alice.leave("m-voip").await.unwrap();
    bob.expect("peerLeftChannel").await.unwrap();
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn voip_to_pstn_tone_dtmf_and_recording() {
    let emu = Emulator::start("").await.unwrap();
    let mut alice = emu.registered("alice").await.unwrap();
    // 13800000008: answers after 1 s, presses 1234# from 1 s after answering.
    let join = alice.call_pstn("m-pstn", "02160000001", "13800000008").await.unwrap();
    let mut a = MediaClient::connect_device(&mut alice, "m-pstn", &join, ClientOptions::default()).await.unwrap();
    alice.expect("answered").await.unwrap();
    a.wait_rtp(25, WAIT).await.unwrap(); // the phone's tone
    a.wait_dtmf("1234#", WAIT).await.unwrap(); // RFC 4733 (or in-band) in the audio, as well as cs_dtmf
    a.send_dtmf('7');
    let e = emu.event("pstn.dtmf_in", "m-pstn", WAIT).await.unwrap();
    assert_eq!(e.detail.field("digits"), "7");
    let phone = emu.admin_get("/admin/pstn/phones/13800000008").await.unwrap();
    assert_eq!(phone["digitsReceived"], "7", "the phone heard the device's digit");
    alice.leave("m-pstn").await.unwrap();
    a.close().await;

    // The recording: reported, listed, downloadable, and its VoiceRecordReport queued in MNS.
    let done = emu.event("media.recording", "m-pstn", WAIT).await.unwrap();
    let url = done.detail.field("url").as_str().unwrap().to_string();
    let list = emu.admin_get("/admin/recordings").await.unwrap();
    assert!(list.to_string().contains(done.detail.field("file").as_str().unwrap()), "listed: {list}");
    let wav = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 2, "stereo");
    for message_type in ["ArtcCdrReport", "VoiceRecordReport"] {
        let queued = emu
            .event_where("receipt.queued", "m-pstn", WAIT, |e| e.detail.field("messageType") == message_type)
            .await
            .unwrap();
        assert_eq!(queued.detail.field("queue"), format!("Alicom-Queue-{}-{message_type}", emu.endpoints.uid));
    }
    let report: Value = emu
        .admin_get(&format!("/admin/mns/queues/Alicom-Queue-{}-VoiceRecordReport/messages", emu.endpoints.uid))
        .await
        .unwrap();
    assert!(report.to_string().contains("messages") || report.is_object(), "{report}");
}

/// The loudest sample of what a client heard.
fn peak(pcm: &[i16]) -> i32 {
    pcm.iter().map(|s| (*s as i32).abs()).max().unwrap_or(0)
}

#[tokio::test]
async fn an_sdk_device_hears_itself_from_the_echo_account() {
    let emu = Emulator::start("[clock]\nmode = \"manual\"\n").await.unwrap();
    let mut alice = emu.registered("alice").await.unwrap();
    let join = alice.call_voip("m-echo", &["9000000000000001"]).await.unwrap();
    let mut a =
        MediaClient::connect_device(&mut alice, "m-echo", &join, ClientOptions::default().tone(440.0)).await.unwrap();
    emu.advance(1000).await.unwrap(); // the echo account answers after 1 s
    alice.expect("answered").await.unwrap();
    let stats = a.wait_rtp(50, WAIT).await.unwrap();
    assert!(stats.rtp_rx >= 50, "{stats:?}");
    assert!(peak(&a.received_pcm()) > 1000, "its own tone came back");
    let call = emu.admin_get("/admin/calls/m-echo").await.unwrap();
    assert_eq!(call["state"], "active", "{call}");
    alice.leave("m-echo").await.unwrap();
    a.close().await;
}

#[tokio::test]
async fn a_virtual_device_calls_an_sdk_device_which_hears_its_tone() {
    let emu = Emulator::start("[clock]\nmode = \"manual\"\n").await.unwrap();
    let mut bob = emu.registered("bob").await.unwrap();
    let (status, reply) = emu
        .admin_post_status("/admin/voip/calls", serde_json::json!({"from": "9000000000000004", "to": [bob.rtc_id]}))
        .await
        .unwrap();
    assert_eq!(status, 201, "{reply}");
    let channel = reply["channelId"].as_str().unwrap().to_string();
    let called = bob.expect("called").await.unwrap();
    assert_eq!(called.body["callerInfo"]["rtcId"], "9000000000000004");
    let join = bob.answer(&called, true).await.unwrap().unwrap();
    let mut b = MediaClient::connect_device(&mut bob, &channel, &join, ClientOptions::default()).await.unwrap();
    b.wait_rtp(50, WAIT).await.unwrap();
    assert!(peak(&b.received_pcm()) > 1000, "the virtual device's 440 Hz tone");
    let caller = emu.admin_get("/admin/voip/devices/9000000000000004").await.unwrap();
    assert_eq!(caller["state"], "in_call", "{caller}");
    b.close().await;
}
