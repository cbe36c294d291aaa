//! The MQTT 3.1.1 framer (crates/emu-gateway/src/mqtt.rs): any bytes, cut anywhere, give the same
//! packets as when they come in one read; a PUBLISH re-encoded decodes to itself; the packet
//! size limit holds.
#![no_main]

use alicom_emu_fuzz::{Rng, chunks};
use emu_gateway::mqtt::{self, Framer, Incoming};
use libfuzzer_sys::fuzz_target;

const MAX_PACKET: usize = 1 << 16;

/// Every packet until the first error or the end of the bytes; `Err` last if there was one.
fn packets(reads: &[&[u8]], max: usize) -> (Vec<Incoming>, bool) {
    let mut f = Framer::new(max);
    let mut out = Vec::new();
    for r in reads {
        f.feed(r);
        loop {
            match f.next_packet() {
                Ok(Some(p)) => out.push(p),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let whole = packets(&[data], MAX_PACKET);
    let mut rng = Rng::new(data);
    let cut = packets(&chunks(data, &mut rng, 16), MAX_PACKET);
    assert_eq!(whole, cut, "the same bytes cut differently framed differently");

    for p in &whole.0 {
        if let Incoming::Publish { topic, payload, .. } = p {
            assert!(payload.len() <= MAX_PACKET, "a payload over the packet limit");
            // Our QoS 0 PUBLISH of the same topic and payload, read by a connected framer.
            let mut f = Framer::new(usize::MAX);
            f.feed(&[0x10, 0x0d, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x1e, 0x00, 0x01, b'c']);
            assert!(matches!(f.next_packet(), Ok(Some(Incoming::Connect { .. }))));
            f.feed(&mqtt::publish(topic, payload.clone()));
            match f.next_packet() {
                Ok(Some(Incoming::Publish { topic: t, payload: b, .. })) => {
                    assert_eq!((&t, &b), (topic, payload), "PUBLISH round trip");
                }
                other => panic!("our own PUBLISH did not decode: {other:?}"),
            }
        }
    }
    // A smaller limit frames a prefix of the same packets.
    let small = packets(&[data], 64);
    assert!(small.0.len() <= whole.0.len(), "a smaller packet limit framed more packets");
    assert_eq!(small.0[..], whole.0[..small.0.len()], "a smaller packet limit framed other packets");
});
