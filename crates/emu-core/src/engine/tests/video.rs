//! Video calls in the engine (docs/calls.md#video-calls).

use super::*;
use crate::signalling::MediaMode;

/// `a` calls `b` asking for video; `b` answers and joins with (`b_video`) or without video.
fn video_call(e: &mut Engine, b_video: bool) -> Vec<Output> {
    online(e, "b");
    let video = json!({"data": {"channelConfig": {"allowVideo": 1}}});
    let out = e.handle(dev("a", "joinChannel", json!({"channelId": "c", "isCaller": true, "uuid": "ua"}), video), 0);
    assert!(matches!(out.last(), Some(Output::Media(MediaCommand::Join { video: true, .. }))), "{out:?}");
    let out = e.handle(
        dev(
            "a",
            "call",
            json!({"channelId": "c", "uuid": "ua"}),
            json!({"data": {"calleeDeviceInfo": {"deviceList": [{"deviceId": "b"}]}, "channelConfig": {"allowVideo": 1}}}),
        ),
        10,
    );
    let called = body_of(&out, "b", "called");
    assert_eq!(called["mediaSignal"]["data"]["channelConfig"]["allowVideo"], 1, "onReceivingVideoCall");
    e.handle(dev("b", "answer", json!({"channelId": "c", "uuid": "ub"}), json!({"data": {"callResult": 1}})), 1_000);
    e.handle(
        dev(
            "b",
            "joinChannel",
            json!({"channelId": "c", "isCaller": false, "uuid": "ub"}),
            json!({"data": {"channelConfig": {"allowVideo": u8::from(b_video)}}}),
        ),
        1_100,
    )
}

fn media_modes(out: &[Output]) -> Vec<(String, Value)> {
    out.iter()
        .filter_map(|o| match o {
            Output::ToDevice { rtc_id, message, .. } if message.message_type() == "cs_media_mode" => {
                Some((rtc_id.clone(), message.body()))
            }
            _ => None,
        })
        .collect()
}

fn cdr(out: &[Output]) -> Value {
    out.iter()
        .find_map(|o| match o {
            Output::Cdr { report, .. } => Some(serde_json::to_value(&**report).unwrap()),
            _ => None,
        })
        .expect("a CDR")
}

#[test]
fn video_both_ways_is_a_video2video_cdr() {
    let mut e = engine();
    let out = video_call(&mut e, true);
    assert!(matches!(out.last(), Some(Output::Media(MediaCommand::Join { video: true, .. }))), "{out:?}");
    for who in ["a", "b"] {
        let out = e.handle(Input::VideoNegotiated { channel_id: "c".into(), rtc_id: who.into(), video: true }, 1_200);
        assert!(media_modes(&out).is_empty());
        e.handle(Input::VideoFlowing { channel_id: "c".into(), rtc_id: who.into() }, 1_300);
    }
    assert_eq!(e.call("c").unwrap().video.mode, MediaMode::Video);
    let out = e.handle(dev("a", "leaveChannel", json!({"channelId": "c", "uuid": "ua"}), json!({})), 9_000);
    assert_eq!(cdr(&out)["alicomRtcType"], "video2video");
}

#[test]
fn video_one_way_only_is_voip2voip() {
    let mut e = engine();
    video_call(&mut e, true);
    e.handle(Input::VideoFlowing { channel_id: "c".into(), rtc_id: "a".into() }, 1_300);
    let out = e.handle(dev("a", "leaveChannel", json!({"channelId": "c", "uuid": "ua"}), json!({})), 9_000);
    assert_eq!(cdr(&out)["alicomRtcType"], "voip2voip");
}

#[test]
fn a_callee_joining_without_video_makes_the_call_audio_for_both() {
    let mut e = engine();
    let out = video_call(&mut e, false);
    let modes = media_modes(&out);
    assert_eq!(modes.len(), 2, "{modes:?}");
    for (to, body) in &modes {
        assert_eq!(body["mode"], 1);
        assert_eq!(body["rtcId"], "b");
        assert_eq!(body["reason"], "b answered audio-only");
        assert_eq!(body["uuid"], if to == "a" { "ua" } else { "ub" });
    }
    assert!(matches!(out.last(), Some(Output::Media(MediaCommand::Join { video: false, .. }))), "audio leg");
    assert_eq!(e.call("c").unwrap().video.mode, MediaMode::Audio);
}

#[test]
fn a_re_offer_without_video_is_told_once() {
    let mut e = engine();
    video_call(&mut e, true);
    for who in ["a", "b"] {
        e.handle(Input::VideoNegotiated { channel_id: "c".into(), rtc_id: who.into(), video: true }, 1_200);
    }
    let off = Input::VideoNegotiated { channel_id: "c".into(), rtc_id: "a".into(), video: false };
    let out = e.handle(off.clone(), 5_000);
    let modes = media_modes(&out);
    assert_eq!(modes.iter().map(|(to, _)| to.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(modes[0].1["reason"], "a turned video off");
    assert!(media_modes(&e.handle(off, 6_000)).is_empty(), "once per call");
}

#[test]
fn a_video_call_to_a_phone_or_without_asking_is_audio() {
    let mut e = engine();
    online(&mut e, "b");
    // The caller allows video in its join but its call does not ask for it.
    let video = json!({"data": {"channelConfig": {"allowVideo": 1}}});
    e.handle(dev("a", "joinChannel", json!({"channelId": "c", "isCaller": true, "uuid": "ua"}), video), 0);
    let out = e.handle(
        dev(
            "a",
            "call",
            json!({"channelId": "c", "uuid": "ua"}),
            json!({"data": {"calleeDeviceInfo": {"deviceList": [{"deviceId": "b"}]}}}),
        ),
        10,
    );
    assert_eq!(body_of(&out, "b", "called")["mediaSignal"]["data"]["channelConfig"]["allowVideo"], 0);
    // A phone caller's join (voip2pstn) never allows video.
    let mut e = engine();
    let video = json!({"data": {"channelConfig": {"allowVideo": 1}}});
    let body = json!({"channelId": "p", "isCaller": true, "uuid": "ua", "alicomRtcType": "voip2pstn"});
    let out = e.handle(dev("a", "joinChannel", body, video), 0);
    assert!(matches!(out.last(), Some(Output::Media(MediaCommand::Join { video: false, .. }))), "{out:?}");
}
