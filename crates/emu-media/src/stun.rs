//! Just enough STUN to demultiplex: which leg a binding request is for (its USERNAME is
//! `<server ufrag>:<client ufrag>`, RFC 8445 §7.2.2), without a scan over the legs.

/// What a datagram on the media port is (RFC 7983 first-byte rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stun,
    Dtls,
    Rtp,
    Other,
}

pub fn classify(buf: &[u8]) -> Kind {
    match buf.first() {
        Some(0..=3) if buf.len() >= 20 && buf[4..8] == [0x21, 0x12, 0xA4, 0x42] => Kind::Stun,
        Some(20..=63) => Kind::Dtls,
        Some(128..=191) => Kind::Rtp,
        _ => Kind::Other,
    }
}

/// RTP and not RTCP: RTCP's packet types (200–204, …) put 192–223 in the second byte where
/// RTP has its marker bit and payload type (RFC 5761 §4).
pub fn is_rtp(buf: &[u8]) -> bool {
    classify(buf) == Kind::Rtp && !buf.get(1).is_some_and(|b| (192..=223).contains(b))
}

/// The local (server) ufrag of a STUN message's USERNAME attribute.
pub fn local_ufrag(buf: &[u8]) -> Option<&str> {
    if classify(buf) != Kind::Stun {
        return None;
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let end = (20 + len).min(buf.len());
    let mut pos = 20;
    while pos + 4 <= end {
        let typ = u16::from_be_bytes([buf[pos], buf[pos + 1]]);
        let alen = u16::from_be_bytes([buf[pos + 2], buf[pos + 3]]) as usize;
        let value = buf.get(pos + 4..pos + 4 + alen)?;
        if typ == 0x0006 {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next().filter(|u| !u.is_empty());
        }
        pos += 4 + alen.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(username: &[u8]) -> Vec<u8> {
        let mut attr = vec![0x00, 0x06];
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username);
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        // PRIORITY after it, to check the walk.
        attr.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn tells_rtp_from_rtcp() {
        assert!(is_rtp(&[0x80, 0x00, 0, 1]), "PCMU");
        assert!(is_rtp(&[0x80, 0xE0, 0, 1]), "marker + PT 96");
        assert!(!is_rtp(&[0x80, 200, 0, 6]), "sender report");
        assert!(!is_rtp(&[0x81, 201, 0, 7]), "receiver report");
        assert!(!is_rtp(&binding(b"a:b")));
        assert!(!is_rtp(&[22, 254, 253]), "DTLS");
    }

    #[test]
    fn reads_the_local_ufrag() {
        assert_eq!(local_ufrag(&binding(b"srv1:cli2")), Some("srv1"));
        assert_eq!(local_ufrag(&binding(b"abc")), Some("abc"));
        assert_eq!(local_ufrag(&binding(b":x")), None);
        assert_eq!(classify(&binding(b"a:b")), Kind::Stun);
        let mut cut = binding(b"srv1:cli2");
        cut.truncate(26);
        assert_eq!(local_ufrag(&cut), None);
        assert_eq!(classify(&[22, 254, 253]), Kind::Dtls);
        assert_eq!(classify(&[0x80, 111]), Kind::Rtp);
        assert_eq!(classify(&[0xFF]), Kind::Other);
        assert_eq!(classify(&[]), Kind::Other);
    }
}
