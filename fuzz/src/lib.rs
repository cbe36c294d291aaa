//! What the fuzz targets share: the emulator's state built once per process, and small helpers
//! for slicing an input. Each target is in `fuzz_targets/`; docs/fuzzing.md says what it covers.

use std::sync::OnceLock;

use emu_core::Shared;

/// The embedded default configuration with `overrides` merged over it (the loader's own path).
pub fn config(overrides: &str) -> emu_core::Config {
    emu_server::config::for_tests(overrides).expect("the fuzz configuration loads")
}

/// A `Shared` on the default configuration with `overrides`, as the server builds it.
pub fn shared(overrides: &str) -> Shared {
    shared_from(config(overrides))
}

/// The emulator's shared state built from `config`, as the server does at start (MQTT on its
/// default ports).
pub fn shared_from(config: emu_core::Config) -> Shared {
    let host = config.public_host();
    let token_settings = emu_server::app::token_settings(&config, &host, 18083, 11883);
    Shared::new(config, token_settings)
}

/// A small deterministic generator (xorshift), seeded from the input: the same input always
/// makes the same choices, so a crash reproduces.
pub struct Rng(u64);

impl Rng {
    pub fn new(data: &[u8]) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in data.iter().take(64) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `1..=max`.
    pub fn size(&mut self, max: usize) -> usize {
        (self.next_u64() % max as u64) as usize + 1
    }
}

/// The datagrams of an input: its pieces between `DGM|` separators (the seeds' format).
pub fn datagrams(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(4).position(|w| w == b"DGM|") {
        out.push(&rest[..i]);
        rest = &rest[i + 4..];
    }
    out.push(rest);
    out
}

/// `data` cut into pieces of random sizes (as a transport's reads might cut it).
pub fn chunks<'a>(data: &'a [u8], rng: &mut Rng, max: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = rng.size(max).min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

/// Whether a JSON value holds a floating-point number anywhere: serde_json's default parser may
/// read such a number back one unit in the last place off, so round trips compare only values
/// without them.
pub fn has_float(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) => n.is_f64(),
        serde_json::Value::Array(a) => a.iter().any(has_float),
        serde_json::Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}

/// A value made once per process (the fuzzer runs every input in one process).
pub fn once<T>(cell: &'static OnceLock<T>, make: impl FnOnce() -> T) -> &'static T {
    cell.get_or_init(make)
}

/// A gateway hub with one account, and a logged-in session on it.
pub mod gateway {
    use std::sync::{Arc, OnceLock};

    use emu_gateway::Hub;
    use emu_gateway::fuzzing::Session;
    use emu_gateway::mqtt;

    pub struct Gateway {
        pub hub: Arc<Hub>,
        pub client_id: String,
        pub token: String,
    }

    static GATEWAY: OnceLock<Gateway> = OnceLock::new();

    /// The hub (a small event log: it fills up quickly under a fuzzer), made once.
    pub fn get() -> &'static Gateway {
        super::once(&GATEWAY, || {
            let shared = super::shared("[server]\nevent_log_size = 500\n");
            let tenant = emu_core::TenantId(0);
            let account = shared.directory.add_account(tenant, "fuzz-device", 10, 0).expect("an account");
            let now = shared.clock.now_ms();
            let (rec, _) = shared
                .directory
                .issue_token(tenant, &account.rtc_id, "fuzz-device", false, &shared.token_settings, now)
                .expect("a token");
            let hub = Hub::new(shared, "127.0.0.1:18083".into());
            Gateway { hub, client_id: rec.client_id, token: rec.token_data }
        })
    }

    /// CONNECT with `client_id` (keepalive 30 s, clean session).
    pub fn connect(client_id: &str) -> Vec<u8> {
        let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x1e];
        body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
        body.extend_from_slice(client_id.as_bytes());
        let mut out = vec![0x10];
        let mut len = body.len();
        loop {
            let mut b = (len % 128) as u8;
            len /= 128;
            if len > 0 {
                b |= 0x80;
            }
            out.push(b);
            if len == 0 {
                break;
            }
        }
        out.extend_from_slice(&body);
        out
    }

    impl Gateway {
        /// A new connection, logged in as the SDK does: CONNECT, then the token.
        pub fn logged_in(&self) -> Session {
            let mut s = Session::new(self.hub.clone());
            s.feed(&connect(&self.client_id));
            s.feed(&mqtt::publish("$SYS/uploadToken", format!("{{\"token\":\"{}\"}}", self.token).into_bytes()));
            assert!(s.is_bound(), "a valid token did not bind the connection");
            s
        }
    }
}

/// libFuzzer's panic hook aborts on every panic, also one the product catches. The media
/// server catches a panic of the WebRTC stack's DTLS library on a peer's datagram and resets only
/// that leg (emu-media `State::receive`): panics raised there unwind to that catch, so what
/// the media targets check is the containment; any other panic still aborts.
pub fn let_contained_media_panics_unwind() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.location().is_some_and(|l| l.file().contains("/dimpl-")) {
                return;
            }
            fuzzer_hook(info);
        }));
    });
}
