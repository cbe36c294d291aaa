//! Envelopes (crates/emu-gateway/src/envelope.rs) and their path through the hub (hub/session.rs):
//! the borrowed fast parse agrees with the full one, an ACK is a valid envelope echoing the
//! request, and a published payload from a logged-in device is ACKed or closes the connection,
//! never anything else. The mediaSignal inside is decoded under the configured cap.
#![no_main]

use alicom_emu_fuzz::{gateway, has_float};
use bytes::BytesMut;
use emu_core::media_signal::MediaSignal;
use emu_gateway::envelope::{Envelope, Inbound, empty_body, server_from_raw};
use emu_gateway::media_signal;
use emu_gateway::mqtt;
use libfuzzer_sys::fuzz_target;
use rumqttc::mqttbytes::v4::Packet;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // The two parsers agree on what they both read.
    let full = Envelope::parse(data);
    let fast = Inbound::parse(data);
    if let Ok(e) = &full {
        let f = fast.as_ref().expect("the full parse took what the fast one refused");
        assert_eq!((e.message_type.as_str(), e.request_id.as_str()), (&*f.message_type, &*f.request_id));
        assert_eq!(e.response, f.response);
        assert_eq!(f.body_value().ok().as_ref(), Some(&e.body), "body");
        // The envelope written back reads the same.
        if !has_float(&e.to) && !has_float(&e.from) && !has_float(&e.body) {
            assert_eq!(Envelope::parse(&e.to_bytes()).expect("our envelope parses"), *e, "round trip");
        }
    }
    if let Ok(f) = &fast {
        let ack = f.ack_bytes(200, &empty_body(), &server_from_raw("GID_VOIP@@@fuzz"), 1);
        let a = Envelope::parse(&ack).expect("our ACK parses");
        assert!(a.response);
        assert_eq!((a.message_type.as_str(), a.request_id.as_str()), (&*f.message_type, &*f.request_id));
    }
    // The event log's view decodes any mediaSignal; never panics.
    let _ = media_signal::readable_body(data);

    // Published by a logged-in device.
    let g = gateway::get();
    let mut s = g.logged_in();
    let written = s.feed(&mqtt::publish(&g.hub.server_topic, data.to_vec()));
    match &fast {
        Err(_) => assert_eq!(s.closed(), Some("malformed envelope"), "a malformed envelope was taken"),
        // An ACK of a request we never sent: dropped.
        Ok(f) if f.response => {}
        Ok(f) => {
            // Its ACK: same requestId, a response, our code; nothing else closes.
            let ack = written
                .iter()
                .filter_map(|p| match Packet::read(&mut BytesMut::from(&p[..]), usize::MAX) {
                    Ok(Packet::Publish(p)) => Envelope::parse(&p.payload).ok(),
                    _ => None,
                })
                .find(|e| e.response && e.request_id == *f.request_id);
            match (ack, s.closed()) {
                (Some(a), None) => {
                    assert!(a.response_code == 200 || a.response_code == 400, "ACK code {}", a.response_code);
                    if a.response_code == 400 {
                        // Only a mediaSignal that does not decode under the cap is refused.
                        let body = f.body_value().unwrap_or(Value::Null);
                        let m = body.get("mediaSignal").and_then(Value::as_str).expect("a 400 names a mediaSignal");
                        assert!(media_signal::decode::<MediaSignal>(m, g.hub.cfg.max_media_signal_bytes).is_err());
                    }
                }
                // A body that is not JSON behind a valid head closes the connection too.
                (None, Some("malformed envelope")) => assert!(f.body_value().is_err()),
                other => panic!("a request got neither an ACK nor a close: {other:?}"),
            }
        }
    }
    drop(s);
    g.hub.reset();
});
