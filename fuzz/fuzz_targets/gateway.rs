//! A device's MQTT connection to the gateway (crates/emu-gateway/src/connection.rs and hub/):
//! any bytes after CONNECT and a valid token, through the real packet handling, hub included.
//! Everything written back is a well-formed MQTT packet; a closed connection stays closed.
#![no_main]

use alicom_emu_fuzz::gateway;
use alicom_emu_fuzz::{Rng, chunks};
use emu_gateway::fuzzing::Session;
use libfuzzer_sys::fuzz_target;
use rumqttc::mqttbytes::v4::Packet;

fn check_written(written: &[bytes::Bytes]) {
    for p in written {
        let mut b = bytes::BytesMut::from(&p[..]);
        match Packet::read(&mut b, usize::MAX) {
            Ok(_) => assert!(b.is_empty(), "bytes after a written packet"),
            Err(e) => panic!("the gateway wrote a malformed packet ({e}): {p:02x?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let g = gateway::get();
    let Some((&flags, rest)) = data.split_first() else { return };
    // Odd first byte: logged in first (CONNECT, then the token, as the SDK does).
    let mut s = if flags & 1 == 1 { g.logged_in() } else { Session::new(g.hub.clone()) };
    let mut rng = Rng::new(data);
    for read in chunks(rest, &mut rng, 64) {
        let was_closed = s.closed().is_some();
        let written = s.feed(read);
        check_written(&written);
        assert!(!was_closed || written.is_empty(), "a closed connection wrote");
    }
    drop(s);
    g.hub.reset();
});
