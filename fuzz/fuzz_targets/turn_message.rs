//! TURN requests to the embedded relay (crates/emu-media/src/turn.rs): each datagram goes to the
//! `turn` crate's request handling, the way the relay's server loop hands it over, with the
//! relay's own credential check; then the same message re-signed with valid long-term
//! credentials (USERNAME, REALM, a known NONCE, MESSAGE-INTEGRITY), so allocations, permissions,
//! channel bindings and refreshes are reached too. Nothing panics.
//!
//! Input: datagrams separated by the 4 bytes `DGM|` (STUN/TURN messages or ChannelData).
#![no_main]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use alicom_emu_fuzz::once;
use libfuzzer_sys::fuzz_target;
use stun::attributes::{ATTR_FINGERPRINT, ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use stun::integrity::MessageIntegrity;
use stun::message::{Message, Setter};
use tokio::runtime::Runtime;
use turn::allocation::allocation_manager::{Manager, ManagerConfig};
use turn::auth::AuthHandler;
use turn::relay::relay_static::RelayAddressGeneratorStatic;
use turn::server::request::Request;
use webrtc_util::Conn;
use webrtc_util::vnet::net::Net;

const USER: &str = "1999999999:fuzz";
const REALM: &str = "alicom-emu";
const PASSWORD: &str = "fuzz-password";
const NONCE: &str = "fuzz-nonce";

struct Relay {
    rt: Runtime,
    conn: Arc<dyn Conn + Send + Sync>,
    auth: Arc<dyn AuthHandler + Send + Sync>,
}

static RELAY: OnceLock<Relay> = OnceLock::new();

fn relay() -> &'static Relay {
    once(&RELAY, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let socket = rt.block_on(tokio::net::UdpSocket::bind("127.0.0.1:0")).expect("a UDP socket");
        let auth = emu_media::fuzzing::turn_auth(USER, REALM, PASSWORD, Duration::from_secs(86_400));
        Relay { rt, conn: Arc::new(socket), auth }
    })
}

/// The message with its credentials replaced by valid ones; None if it is not a STUN message.
fn resigned(raw: &[u8]) -> Option<Vec<u8>> {
    let mut m = Message { raw: raw.to_vec(), ..Default::default() };
    m.decode().ok()?;
    let mut out = Message::new();
    out.set_type(m.typ);
    out.transaction_id = m.transaction_id;
    out.write_transaction_id();
    let replaced = [ATTR_MESSAGE_INTEGRITY, ATTR_FINGERPRINT, ATTR_USERNAME, ATTR_REALM, ATTR_NONCE];
    for a in m.attributes.0.iter().filter(|a| !replaced.contains(&a.typ)) {
        out.add(a.typ, &a.value);
    }
    out.add(ATTR_USERNAME, USER.as_bytes());
    out.add(ATTR_REALM, REALM.as_bytes());
    out.add(ATTR_NONCE, NONCE.as_bytes());
    MessageIntegrity::new_long_term_integrity(USER.into(), REALM.into(), PASSWORD.into()).add_to(&mut out).ok()?;
    Some(out.raw)
}

fuzz_target!(|data: &[u8]| {
    let r = relay();
    let src: SocketAddr = "127.0.0.1:9".parse().expect("an address");
    r.rt.block_on(async {
        // One relay per input, as the server has: allocations on real loopback sockets.
        let manager = Arc::new(Manager::new(ManagerConfig {
            relay_addr_generator: Box::new(RelayAddressGeneratorStatic {
                relay_address: [127, 0, 0, 1].into(),
                address: "127.0.0.1".into(),
                net: Arc::new(Net::new(None)),
            }),
            alloc_close_notify: None,
        }));
        let nonces =
            Arc::new(tokio::sync::Mutex::new(HashMap::from([(NONCE.to_string(), tokio::time::Instant::now())])));
        for d in alicom_emu_fuzz::datagrams(data) {
            for buff in [Some(d.to_vec()), resigned(d)].into_iter().flatten() {
                let mut req = Request::new(r.conn.clone(), src, manager.clone(), r.auth.clone());
                req.buff = buff;
                req.realm = REALM.into();
                req.nonces = nonces.clone();
                let _ = req.handle_request().await;
            }
        }
        let _ = manager.close().await;
    });
});
