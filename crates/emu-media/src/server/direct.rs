//! A connected leg's SRTP done by this server rather than by str0m (the per-packet fast path;
//! the crypto itself is in `crate::srtp`).

use std::net::SocketAddr;
use std::sync::Arc;

use str0m::config::CryptoProvider;
use str0m::media::Pt;

use crate::srtp::{KeySlot, RtpHeader, RxStream, Srtp};
use crate::stun::{self, Kind};
use crate::udp::SendQueue;

/// A leg's audio encrypted and decrypted by this server (`crate::srtp`), not str0m: per packet,
/// str0m's receive path, send queue, pacer and timeout cost more than the crypto itself. str0m
/// keeps ICE, DTLS, RTCP and the first packet of every received stream, which gives the
/// stream's SRTP index; a leg sends through str0m until str0m has sent one RTP packet, whose
/// header (SSRC, the mid extension) and destination (the nominated path) the leg then reuses.
pub(super) struct Direct {
    /// Filled by the leg's DTLS handshake (`srtp::with_key_slot`).
    pub(super) keys: KeySlot,
    pub(super) provider: Arc<CryptoProvider>,
    pub(super) srtp: Option<Srtp>,
    /// Received streams this server decrypts, by SSRC (a handful at most: the newest kept).
    rx: Vec<RxStream>,
    /// The header of str0m's last RTP packet on this leg.
    tx_header: Option<([u8; MAX_TEMPLATE], usize)>,
    /// Where str0m sends this leg's RTP and RTCP.
    dest: Option<SocketAddr>,
}

/// The longest RTP header kept as a template (12 bytes, the mid extension, room to spare).
const MAX_TEMPLATE: usize = 64;
const MAX_RX_STREAMS: usize = 4;

impl Direct {
    pub(super) fn new(keys: KeySlot, provider: Arc<CryptoProvider>) -> Direct {
        Direct { keys, provider, srtp: None, rx: Vec::new(), tx_header: None, dest: None }
    }

    /// The transforms, made when the handshake's keys are first needed.
    pub(super) fn srtp(&mut self) -> Option<&mut Srtp> {
        if self.srtp.is_none() {
            self.srtp = Srtp::new(&self.provider, self.keys.get()?);
        }
        self.srtp.as_mut()
    }

    /// str0m decrypted packet `index` of stream `ssrc`: this server decrypts the stream's next
    /// packets itself.
    pub(super) fn seed(&mut self, ssrc: u32, index: u64) {
        if self.srtp().is_none() {
            return;
        }
        if let Some(rx) = self.rx.iter_mut().find(|r| r.ssrc == ssrc) {
            rx.accept(index);
            return;
        }
        if self.rx.len() == MAX_RX_STREAMS {
            self.rx.remove(0);
        }
        self.rx.push(RxStream::new(ssrc, index));
    }

    /// Watches a datagram str0m sends on this leg.
    pub(super) fn observe(&mut self, datagram: &[u8], dest: SocketAddr) {
        if stun::classify(datagram) != Kind::Rtp {
            return;
        }
        self.dest = Some(dest);
        if let Some(h) = RtpHeader::parse(datagram)
            && h.len <= MAX_TEMPLATE
        {
            let mut t = [0u8; MAX_TEMPLATE];
            t[..h.len].copy_from_slice(&datagram[..h.len]);
            self.tx_header = Some((t, h.len));
        }
    }

    /// Decrypts RTP of a stream this server took over (`seed`) into `out`.
    pub(super) fn receive(&mut self, buf: &[u8], h: &RtpHeader, out: &mut Vec<u8>) -> Received {
        let Some(rx) = self.rx.iter_mut().find(|r| r.ssrc == h.ssrc) else { return Received::NotOurs };
        let index = rx.index_of(h.seq);
        if rx.is_replay(index) {
            return Received::Replay;
        }
        let Some(srtp) = self.srtp.as_mut() else { return Received::NotOurs };
        if !srtp.unprotect(buf, h, index, out) {
            return Received::NotOurs;
        }
        rx.accept(index);
        Received::Decrypted
    }

    /// Encrypts one RTP packet (packet index = extended sequence number) and queues it; the
    /// datagram's size, or None when the leg is not ready for it.
    pub(super) fn send(
        &mut self,
        out: &mut SendQueue,
        pt: Pt,
        time: u32,
        marker: bool,
        index: u64,
        payload: &[u8],
    ) -> Option<usize> {
        let (dest, (mut header, len)) = (self.dest?, self.tx_header?);
        header[1] = (u8::from(marker) << 7) | *pt;
        header[2..4].copy_from_slice(&(index as u16).to_be_bytes());
        header[4..8].copy_from_slice(&time.to_be_bytes());
        let srtp = self.srtp()?;
        let mut datagram = out.buffer();
        if !srtp.protect(&header[..len], payload, index, &mut datagram) {
            return None;
        }
        let size = datagram.len();
        out.push(dest, datagram);
        Some(size)
    }
}

/// What `Direct::receive` made of a datagram.
pub(super) enum Received {
    /// Not a stream this server decrypts, or not authentic: str0m's to handle.
    NotOurs,
    Replay,
    Decrypted,
}
