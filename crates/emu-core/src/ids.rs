//! Random identifiers, from the thread-local generator (no system call per id): request ids,
//! message ids, ICE credentials, STS keys.

use rand::Rng;

/// Random `[A-Za-z0-9]` text: safe in URLs, headers and MQTT topics without escaping.
pub fn random_alnum(len: usize) -> String {
    let mut s = String::with_capacity(len);
    push_random_alnum(&mut s, len);
    s
}

/// [`random_alnum`] appended to `out` (an id with a prefix, in one allocation).
pub fn push_random_alnum(out: &mut String, len: usize) {
    out.extend(rand::rng().sample_iter(rand::distr::Alphanumeric).take(len).map(char::from));
}

/// Random upper-case hex digits (the vendor's request-id and message-id style), at most 32.
pub fn random_hex_upper(len: usize) -> String {
    let mut s = format!("{:032X}", rand::random::<u128>());
    s.truncate(len.min(32));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_their_length_and_alphabet() {
        let a = random_alnum(24);
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        let mut b = String::from("x:");
        push_random_alnum(&mut b, 12);
        assert!(b.len() == 14 && b.starts_with("x:") && b[2..].chars().all(|c| c.is_ascii_alphanumeric()));
        let h = random_hex_upper(24);
        assert_eq!(h.len(), 24);
        assert!(h.chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)));
        assert_ne!(random_hex_upper(32), random_hex_upper(32));
    }
}
