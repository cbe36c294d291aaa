//! SRTP for the legs' audio without a trip through str0m: the per-packet fast path.
//!
//! Why: forwarding a packet through str0m (decrypt, an event, `write_rtp`, its send queue and
//! pacer, a timeout, encrypt, a transmit) cost ~2.9 µs of the server's 7.7 µs per forwarded
//! packet, most of it bookkeeping an audio relay does not need (docs/benchmarks.md, session 6).
//! Once a leg is connected, the server decrypts its audio and encrypts what it sends with the
//! same transforms (RFC 3711, RFC 7714), the same ciphers (str0m's crypto provider) and the same
//! IV and HMAC helpers str0m uses; str0m keeps ICE, DTLS, RTCP and every stream's first packets.
//!
//! The keys: str0m keeps its SRTP contexts private, so [`capturing`] wraps the provider's DTLS
//! so that each leg's handshake also hands its keying material to that leg's [`KeySlot`].
//! Everything here is sans-IO.

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use str0m::config::{CryptoProvider, DtlsCert};
use str0m::crypto::dtls::SrtpProfile;
use str0m::crypto::dtls::{DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion};
use str0m::crypto::{AeadAes128Gcm, AeadAes128GcmCipher, AeadAes256Gcm, AeadAes256GcmCipher};
use str0m::crypto::{Aes128CmSha1_80, Aes128CmSha1_80Cipher, CryptoError, Sha1HmacProvider, SrtpProvider};

/// The SRTP keying material of one DTLS handshake (RFC 5764 §4.2: client key, server key,
/// client salt, server salt), its profile, and whether this side was the DTLS client.
#[derive(Clone)]
pub struct Keys {
    pub profile: SrtpProfile,
    pub material: Vec<u8>,
    pub active: bool,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys").field("profile", &self.profile).field("active", &self.active).finish_non_exhaustive()
    }
}

/// Where a leg's DTLS instance puts its keys (set once, when the handshake completes).
pub type KeySlot = Arc<OnceLock<Keys>>;

thread_local! {
    /// The slot for the DTLS instance the next `Rtc` built on this thread creates.
    static NEXT_SLOT: RefCell<Option<KeySlot>> = const { RefCell::new(None) };
}

/// Runs `build`, which makes one `Rtc` with a provider from [`capturing`]: that `Rtc`'s DTLS
/// instance (str0m creates it while building) delivers its keys to `slot`.
pub fn with_key_slot<T>(slot: &KeySlot, build: impl FnOnce() -> T) -> T {
    NEXT_SLOT.with(|n| *n.borrow_mut() = Some(slot.clone()));
    let built = build();
    NEXT_SLOT.with(|n| n.borrow_mut().take());
    built
}

/// `provider` with its DTLS wrapped so that handshakes report their SRTP keys (see
/// [`with_key_slot`]). Everything else is the provider's own.
pub fn capturing(provider: CryptoProvider) -> CryptoProvider {
    // The provider holds `&'static` parts; one small wrapper per server start.
    let dtls: &'static CapturingDtls = Box::leak(Box::new(CapturingDtls { inner: provider.dtls_provider }));
    CryptoProvider { dtls_provider: dtls, ..provider }
}

#[derive(Debug)]
struct CapturingDtls {
    inner: &'static dyn DtlsProvider,
}

impl DtlsProvider for CapturingDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        self.inner.generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let inner = self.inner.new_dtls(cert, now, dtls_version, mtu)?;
        Ok(match NEXT_SLOT.with(|n| n.borrow_mut().take()) {
            Some(slot) => Box::new(CapturingInstance { inner, slot }),
            None => inner,
        })
    }

    fn is_test(&self) -> bool {
        self.inner.is_test()
    }
}

#[derive(Debug)]
struct CapturingInstance {
    inner: Box<dyn DtlsInstance>,
    slot: KeySlot,
}

impl DtlsInstance for CapturingInstance {
    fn set_active(&mut self, active: bool) {
        self.inner.set_active(active)
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.inner.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let out = self.inner.poll_output(buf);
        if let DtlsOutput::KeyingMaterial(material, profile) = &out {
            let keys = Keys { profile: *profile, material: material.to_vec(), active: self.inner.is_active() };
            let _ = self.slot.set(keys);
        }
        out
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.inner.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<(), DtlsImplError> {
        self.inner.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.inner.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.inner.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.inner.close()
    }
}

// ---------------------------------------------------------------------------------------------
// RTP headers

/// The fields of an RTP header the fast path reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub pt: u8,
    pub seq: u16,
    pub time: u32,
    pub ssrc: u32,
    /// Bytes up to the payload: 12, the CSRCs and the extension block (RFC 3550 §5.1, §5.3.1).
    pub len: usize,
}

impl RtpHeader {
    /// The header of an RTP packet (version 2, not RTCP, no padding), or None.
    pub fn parse(buf: &[u8]) -> Option<RtpHeader> {
        if buf.len() < 12 || !crate::stun::is_rtp(buf) || buf[0] & 0x20 != 0 {
            return None;
        }
        let mut len = 12 + 4 * (buf[0] & 0x0f) as usize;
        if buf[0] & 0x10 != 0 {
            let words = buf.get(len + 2..len + 4)?;
            len += 4 + 4 * u16::from_be_bytes([words[0], words[1]]) as usize;
        }
        if len > buf.len() {
            return None;
        }
        Some(RtpHeader {
            marker: buf[1] & 0x80 != 0,
            pt: buf[1] & 0x7f,
            seq: u16::from_be_bytes([buf[2], buf[3]]),
            time: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            len,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// received streams

/// A received stream's SRTP packet index (RFC 3711 §3.3.1) and replay window (§3.3.2).
#[derive(Debug, Clone, Copy)]
pub struct RxStream {
    pub ssrc: u32,
    /// The highest index accepted.
    highest: u64,
    /// Bit i: index `highest − i` was accepted.
    window: u64,
}

impl RxStream {
    /// A stream whose last packet (decrypted by str0m) had this index.
    pub fn new(ssrc: u32, index: u64) -> RxStream {
        RxStream { ssrc, highest: index, window: 1 }
    }

    /// The index of sequence number `seq`: of the three rollover counts around the highest
    /// index, the one that puts it closest.
    pub fn index_of(&self, seq: u16) -> u64 {
        let base = (self.highest & !0xffff) | seq as u64;
        let mut best = base;
        for c in [base.checked_sub(1 << 16), base.checked_add(1 << 16)].into_iter().flatten() {
            if c.abs_diff(self.highest) < best.abs_diff(self.highest) {
                best = c;
            }
        }
        best
    }

    /// Already accepted, or too old to tell (more than 64 behind the highest).
    pub fn is_replay(&self, index: u64) -> bool {
        index <= self.highest && (self.highest - index >= 64 || self.window & (1 << (self.highest - index)) != 0)
    }

    pub fn accept(&mut self, index: u64) {
        if index > self.highest {
            let shift = index - self.highest;
            self.window = if shift >= 64 { 0 } else { self.window << shift };
            self.window |= 1;
            self.highest = index;
        } else if self.highest - index < 64 {
            self.window |= 1 << (self.highest - index);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// transforms

const LABEL_RTP_ENCRYPTION: u8 = 0;
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTP_SALT: u8 = 2;

/// One direction's SRTP transform for RTP (SRTCP stays with str0m).
enum Transform {
    CmSha1 {
        auth: [u8; 20],
        salt: [u8; 14],
        cipher: Box<dyn Aes128CmSha1_80Cipher>,
    },
    /// AEAD_AES_128_GCM or AEAD_AES_256_GCM: RFC 7714 frames both alike.
    Gcm {
        salt: [u8; 12],
        cipher: Box<dyn Gcm>,
    },
}

/// str0m's two AES-GCM ciphers behind one face.
trait Gcm: Send + Sync {
    fn seal(&mut self, iv: &[u8; 12], aad: &[u8], input: &[u8], out: &mut [u8]) -> bool;
    fn open(&mut self, iv: &[u8; 12], aad: &[u8], input: &[u8], out: &mut [u8]) -> bool;
}

impl Gcm for Box<dyn AeadAes128GcmCipher> {
    fn seal(&mut self, iv: &[u8; 12], aad: &[u8], input: &[u8], out: &mut [u8]) -> bool {
        self.encrypt(iv, aad, input, out).is_ok()
    }

    fn open(&mut self, iv: &[u8; 12], aad: &[u8], input: &[u8], out: &mut [u8]) -> bool {
        self.decrypt(iv, &[aad], input, out).is_ok()
    }
}

impl Gcm for Box<dyn AeadAes256GcmCipher> {
    fn seal(&mut self, iv: &[u8; 12], aad: &[u8], input: &[u8], out: &mut [u8]) -> bool {
        self.encrypt(iv, aad, input, out).is_ok()
    }

    fn open(&mut self, iv: &[u8; 12], aad: &[u8], input: &[u8], out: &mut [u8]) -> bool {
        self.decrypt(iv, &[aad], input, out).is_ok()
    }
}

/// A master key and salt (RFC 3711 §4.3), from one side of the keying material.
struct Master<'a> {
    key: &'a [u8],
    salt: &'a [u8],
}

impl Master<'_> {
    /// `material` is [client key, server key, client salt, server salt]; the client's half
    /// protects what the client sends.
    fn of(material: &[u8], key_len: usize, salt_len: usize, client: bool) -> Option<Master<'_>> {
        if material.len() != 2 * (key_len + salt_len) {
            return None;
        }
        let (k, s) = if client { (0, 2 * key_len) } else { (key_len, 2 * key_len + salt_len) };
        Some(Master { key: &material[k..k + key_len], salt: &material[s..s + salt_len] })
    }

    /// The AES-CM key derivation (RFC 3711 §4.3.3; AES-256 for the 256-bit profile, RFC 7714
    /// §11), key derivation rate 0.
    fn derive(&self, p: &dyn SrtpProvider, label: u8, out: &mut [u8]) {
        let mut x = [0u8; 16];
        x[..self.salt.len()].copy_from_slice(self.salt);
        x[7] ^= label;
        let mut block = [0u8; 32];
        for (round, chunk) in out.chunks_mut(16).enumerate() {
            x[14..].copy_from_slice(&(round as u16).to_be_bytes());
            if self.key.len() == 32 {
                p.srtp_aes_256_ecb_round(self.key, &x, &mut block);
            } else {
                p.srtp_aes_128_ecb_round(self.key, &x, &mut block);
            }
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}

impl Transform {
    fn new(provider: &CryptoProvider, keys: &Keys, client: bool, encrypt: bool) -> Option<Transform> {
        let p = provider.srtp_provider;
        let material = &keys.material;
        Some(match keys.profile {
            SrtpProfile::AES128_CM_SHA1_80 => {
                let m = Master::of(material, Aes128CmSha1_80::KEY_LEN, Aes128CmSha1_80::SALT_LEN, client)?;
                let (mut key, mut auth, mut salt) = ([0u8; 16], [0u8; 20], [0u8; 14]);
                m.derive(p, LABEL_RTP_ENCRYPTION, &mut key);
                m.derive(p, LABEL_RTP_AUTH, &mut auth);
                m.derive(p, LABEL_RTP_SALT, &mut salt);
                Transform::CmSha1 { auth, salt, cipher: p.aes_128_cm_sha1_80().create_cipher(key, encrypt) }
            }
            SrtpProfile::AEAD_AES_128_GCM | SrtpProfile::AEAD_AES_256_GCM => {
                let wide = keys.profile == SrtpProfile::AEAD_AES_256_GCM;
                let key_len = if wide { AeadAes256Gcm::KEY_LEN } else { AeadAes128Gcm::KEY_LEN };
                let m = Master::of(material, key_len, AeadAes128Gcm::SALT_LEN, client)?;
                let (mut key, mut salt) = ([0u8; 32], [0u8; 12]);
                m.derive(p, LABEL_RTP_ENCRYPTION, &mut key[..key_len]);
                m.derive(p, LABEL_RTP_SALT, &mut salt);
                let cipher: Box<dyn Gcm> = if wide {
                    Box::new(p.aead_aes_256_gcm().create_cipher(key, encrypt))
                } else {
                    let short: [u8; 16] = key[..16].try_into().expect("16 of 32 bytes");
                    Box::new(p.aead_aes_128_gcm().create_cipher(short, encrypt))
                };
                Transform::Gcm { salt, cipher }
            }
            // A profile str0m may add later: that leg stays on str0m's SRTP.
            _ => return None,
        })
    }
}

/// A leg's RTP transforms: `rx` for what the peer sends, `tx` for what this side sends.
pub struct Srtp {
    rx: Transform,
    tx: Transform,
    hmac: &'static dyn Sha1HmacProvider,
}

impl fmt::Debug for Srtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Srtp")
    }
}

/// SRTP adds at most this much to a packet (the GCM tag; HMAC-SHA1-80 adds 10).
pub const MAX_OVERHEAD: usize = 16;
/// The CTR ciphers may write up to a block beyond the input.
const CTR_SLACK: usize = 15;

impl Srtp {
    pub fn new(provider: &CryptoProvider, keys: &Keys) -> Option<Srtp> {
        Some(Srtp {
            tx: Transform::new(provider, keys, keys.active, true)?,
            rx: Transform::new(provider, keys, !keys.active, false)?,
            hmac: provider.sha1_hmac_provider,
        })
    }

    /// Authenticates and decrypts the SRTP packet `buf` (header `h`, packet index `index`),
    /// leaving the payload in `out`. False when it is not authentic (or too short).
    pub fn unprotect(&mut self, buf: &[u8], h: &RtpHeader, index: u64, out: &mut Vec<u8>) -> bool {
        out.clear();
        match &mut self.rx {
            Transform::CmSha1 { auth, salt, cipher } => {
                let Some(end) = buf.len().checked_sub(Aes128CmSha1_80::HMAC_TAG_LEN).filter(|e| *e >= h.len) else {
                    return false;
                };
                let hmac = |k: &[u8], p: &[&[u8]]| self.hmac.sha1_hmac(k, p);
                if !Aes128CmSha1_80::rtp_verify(hmac, auth, &buf[..end], index, &buf[end..]) {
                    return false;
                }
                let iv = Aes128CmSha1_80::rtp_iv(*salt, h.ssrc, index);
                let input = &buf[h.len..end];
                out.resize(input.len() + CTR_SLACK, 0);
                let ok = cipher.decrypt(&iv, input, out).is_ok();
                out.truncate(input.len());
                ok
            }
            Transform::Gcm { salt, cipher } => {
                let Some(n) = buf.len().checked_sub(h.len + AeadAes128Gcm::TAG_LEN) else { return false };
                let iv = AeadAes128Gcm::rtp_iv(*salt, h.ssrc, (index >> 16) as u32, h.seq);
                out.resize(n, 0);
                cipher.open(&iv, &buf[..h.len], &buf[h.len..], out)
            }
        }
    }

    /// The SRTP packet of `header` (whose SSRC and sequence number it reads) and `payload`
    /// with packet index `index`, into `out`.
    pub fn protect(&mut self, header: &[u8], payload: &[u8], index: u64, out: &mut Vec<u8>) -> bool {
        let Some(h) = RtpHeader::parse(header) else { return false };
        out.clear();
        out.extend_from_slice(header);
        let hlen = header.len();
        match &mut self.tx {
            Transform::CmSha1 { auth, salt, cipher } => {
                let iv = Aes128CmSha1_80::rtp_iv(*salt, h.ssrc, index);
                out.resize(hlen + payload.len() + CTR_SLACK, 0);
                if cipher.encrypt(&iv, payload, &mut out[hlen..]).is_err() {
                    return false;
                }
                let end = hlen + payload.len();
                out.truncate(end + Aes128CmSha1_80::HMAC_TAG_LEN);
                out.resize(end + Aes128CmSha1_80::HMAC_TAG_LEN, 0);
                let hmac = |k: &[u8], p: &[&[u8]]| self.hmac.sha1_hmac(k, p);
                Aes128CmSha1_80::rtp_hmac(hmac, auth, out, index, end);
                true
            }
            Transform::Gcm { salt, cipher } => {
                let iv = AeadAes128Gcm::rtp_iv(*salt, h.ssrc, (index >> 16) as u32, h.seq);
                out.resize(hlen + payload.len() + AeadAes128Gcm::TAG_LEN, 0);
                let (aad, body) = out.split_at_mut(hlen);
                cipher.seal(&iv, aad, payload, body)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> CryptoProvider {
        str0m::crypto::from_feature_flags()
    }

    fn keys(profile: SrtpProfile, len: usize, active: bool) -> Keys {
        Keys { profile, material: (0..len as u8).map(|b| b.wrapping_mul(37).wrapping_add(11)).collect(), active }
    }

    fn header(seq: u16, ssrc: u32, ext: bool) -> Vec<u8> {
        let mut h = vec![0x80, 0x6f];
        h.extend_from_slice(&seq.to_be_bytes());
        h.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        h.extend_from_slice(&ssrc.to_be_bytes());
        if ext {
            h[0] |= 0x10;
            h.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x40, b'0', 0, 0]);
        }
        h
    }

    /// Each side decrypts what the other encrypts, for every profile (the client's tx is the
    /// server's rx); a flipped bit or a wrong index is refused.
    #[test]
    fn both_sides_of_a_handshake_understand_each_other_in_every_profile() {
        let p = provider();
        for (profile, len) in [
            (SrtpProfile::AES128_CM_SHA1_80, 60),
            (SrtpProfile::AEAD_AES_128_GCM, 56),
            (SrtpProfile::AEAD_AES_256_GCM, 88),
        ] {
            let mut client = Srtp::new(&p, &keys(profile, len, true)).expect("client");
            let mut server = Srtp::new(&p, &keys(profile, len, false)).expect("server");
            for ext in [false, true] {
                let hdr = header(65535, 0xdead_beef, ext);
                let payload: Vec<u8> = (0..93u8).collect();
                let index = (3u64 << 16) | 65535;
                let mut wire = Vec::new();
                assert!(client.protect(&hdr, &payload, index, &mut wire), "{profile:?}");
                assert_eq!(&wire[..hdr.len()], &hdr[..], "the header stays in the clear");
                assert_ne!(&wire[hdr.len()..hdr.len() + payload.len()], &payload[..], "{profile:?} encrypts");
                let h = RtpHeader::parse(&wire).expect("header");
                assert_eq!(h.len, hdr.len());
                let mut plain = Vec::new();
                assert!(server.unprotect(&wire, &h, index, &mut plain), "{profile:?}");
                assert_eq!(plain, payload);
                assert!(!server.unprotect(&wire, &h, index + (1 << 16), &mut plain), "{profile:?}: wrong ROC");
                let mut bad = wire.clone();
                *bad.last_mut().unwrap() ^= 1;
                assert!(!server.unprotect(&bad, &h, index, &mut plain), "{profile:?}: flipped bit");
                // And the other way.
                assert!(server.protect(&hdr, &payload, index, &mut wire));
                assert!(client.unprotect(&wire, &h, index, &mut plain));
                assert_eq!(plain, payload);
            }
        }
    }

    /// Byte for byte what an independent implementation (webrtc-rs's `webrtc-srtp`) makes of the
    /// same master key, salt and packet, in every profile; and each side reads the other's.
    #[test]
    fn packets_match_an_independent_srtp_implementation() {
        use webrtc_srtp::context::Context;
        use webrtc_srtp::protection_profile::ProtectionProfile as P;
        let p = provider();
        for (profile, theirs, key_len, salt_len) in [
            (SrtpProfile::AES128_CM_SHA1_80, P::Aes128CmHmacSha1_80, 16, 14),
            (SrtpProfile::AEAD_AES_128_GCM, P::AeadAes128Gcm, 16, 12),
            (SrtpProfile::AEAD_AES_256_GCM, P::AeadAes256Gcm, 32, 12),
        ] {
            // The client's half of the material protects what the client sends.
            let client = keys(profile, 2 * (key_len + salt_len), true);
            let (key, salt) = (&client.material[..key_len], &client.material[2 * key_len..2 * key_len + salt_len]);
            let mut ours = Srtp::new(&p, &client).expect("ours");
            let mut server = Srtp::new(&p, &Keys { active: false, ..client.clone() }).expect("server");
            let mut enc = Context::new(key, salt, theirs, None, None).expect("theirs");
            let mut dec = Context::new(key, salt, theirs, None, None).expect("theirs");
            for (seq, ext) in [(1000u16, false), (1001, true)] {
                let hdr = header(seq, 0x0102_0304, ext);
                let payload: Vec<u8> = (0..160u8).map(|b| b.wrapping_mul(7)).collect();
                let mut mine = Vec::new();
                assert!(ours.protect(&hdr, &payload, seq as u64, &mut mine));
                let plain = [hdr.clone(), payload.clone()].concat();
                let wire = enc.encrypt_rtp(&plain).expect("their encrypt");
                assert_eq!(&mine[..], &wire[..], "{profile:?}, seq {seq}: the same bytes");
                let back = dec.decrypt_rtp(&mine).expect("they read ours");
                assert_eq!(&back[..], &plain[..]);
                let h = RtpHeader::parse(&wire).unwrap();
                let mut got = Vec::new();
                assert!(server.unprotect(&wire, &h, seq as u64, &mut got), "{profile:?}: we read theirs");
                assert_eq!(got, payload);
            }
        }
    }

    /// The RFC 3711 appendix B.3 key derivation test vector.
    #[test]
    fn key_derivation_matches_rfc3711_b3() {
        let p = provider();
        let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        let m = Master { key: &key, salt: &salt };
        let mut enc = [0u8; 16];
        m.derive(p.srtp_provider, LABEL_RTP_ENCRYPTION, &mut enc);
        assert_eq!(enc.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut s = [0u8; 14];
        m.derive(p.srtp_provider, LABEL_RTP_SALT, &mut s);
        assert_eq!(s.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut auth = [0u8; 20];
        m.derive(p.srtp_provider, LABEL_RTP_AUTH, &mut auth);
        assert_eq!(auth.to_vec(), hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn the_index_follows_rollovers_and_reordering() {
        let mut rx = RxStream::new(1, 65534);
        assert_eq!(rx.index_of(65535), 65535);
        assert_eq!(rx.index_of(1), 65537, "wrapped: next rollover count");
        rx.accept(65537);
        assert_eq!(rx.index_of(65535), 65535, "late packet from before the wrap");
        assert_eq!(rx.index_of(2), 65538);
        assert!(!rx.is_replay(65535));
        rx.accept(65535);
        assert!(rx.is_replay(65535), "a duplicate");
        assert!(rx.is_replay(65537));
        assert!(!rx.is_replay(65536));
        rx.accept(65537 + 100);
        assert!(rx.is_replay(65537 + 100 - 64), "too old to tell");
        assert!(!rx.is_replay(65537 + 101));
        let start = RxStream::new(1, 3);
        assert_eq!(start.index_of(65533), 65533, "never below zero");
    }

    #[test]
    fn headers_parse_with_csrcs_and_extensions_and_refuse_rtcp_and_short_packets() {
        let h = header(7, 9, true);
        let p = RtpHeader::parse(&h).unwrap();
        assert_eq!((p.seq, p.ssrc, p.pt, p.marker, p.len), (7, 9, 0x6f, false, 20));
        let mut csrc = header(7, 9, false);
        csrc[0] |= 1;
        csrc.extend_from_slice(&[0; 4]);
        assert_eq!(RtpHeader::parse(&csrc).unwrap().len, 16);
        assert!(RtpHeader::parse(&h[..18]).is_none(), "extension cut short");
        let mut rtcp = header(7, 9, false);
        rtcp[1] = 200;
        assert!(RtpHeader::parse(&rtcp).is_none());
        assert!(RtpHeader::parse(&[0x80; 11]).is_none());
    }
}
