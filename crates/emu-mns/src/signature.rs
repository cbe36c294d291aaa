//! The MNS V2 request signature (docs/mns.md#authentication):
//!
//! ```text
//! StringToSign = VERB "\n" Content-MD5 "\n" Content-Type "\n" Date "\n"
//!                CanonicalizedMNSHeaders      (x-mns-* lower-cased, sorted, "name:value\n" each)
//!                CanonicalizedResource        (the raw request-target, exactly as sent)
//! Authorization = "MNS " AccessKeyId ":" base64(HMAC-SHA1(AccessKeySecret, StringToSign))
//! ```

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

fn header_value(headers: &HeaderMap, name: &str) -> String {
    headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default()
}

/// The string to sign of a request, from the headers as received (empty when absent) and the raw
/// request-target (`/queues/q/messages?waitseconds=3`: not decoded, re-encoded or reordered).
pub fn string_to_sign(method: &str, headers: &HeaderMap, resource: &str) -> String {
    let mut mns: Vec<(&str, String)> = headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| k.starts_with("x-mns-"))
        .map(|k| (k, header_value(headers, k)))
        .collect();
    mns.sort_by(|a, b| a.0.cmp(b.0));
    mns.dedup_by(|a, b| a.0 == b.0);
    let mut s = String::with_capacity(128 + resource.len());
    s.push_str(method);
    s.push('\n');
    s.push_str(&header_value(headers, "content-md5"));
    s.push('\n');
    s.push_str(&header_value(headers, "content-type"));
    s.push('\n');
    s.push_str(&header_value(headers, "date"));
    s.push('\n');
    for (k, v) in mns {
        s.push_str(k);
        s.push(':');
        s.push_str(&v);
        s.push('\n');
    }
    s.push_str(resource);
    s
}

/// `base64(HMAC-SHA1(secret, string_to_sign))`.
pub fn sign(secret: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// Constant-time check of a claimed signature.
pub fn verify(secret: &str, string_to_sign: &str, claimed: &str) -> bool {
    let Ok(claimed) = B64.decode(claimed.trim()) else { return false };
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&claimed).is_ok()
}

/// `MNS <AccessKeyId>:<Signature>` → (key id, signature).
pub fn parse_authorization(value: &str) -> Option<(&str, &str)> {
    let rest = value.trim().strip_prefix("MNS ")?.trim_start();
    let (key, sig) = rest.rsplit_once(':')?;
    if key.is_empty() || sig.is_empty() {
        return None;
    }
    Some((key, sig))
}

/// Content-MD5 in either form the SDKs use: base64 of the 32-char hex MD5 (Python, Node) or
/// base64 of the raw 16-byte digest (RFC 1864). Hex case does not matter.
pub fn content_md5_matches(header: &str, body: &[u8]) -> bool {
    let digest = Md5::digest(body);
    let Ok(decoded) = B64.decode(header.trim()) else { return false };
    if decoded.as_slice() == digest.as_slice() {
        return true;
    }
    decoded.len() == 32 && decoded.eq_ignore_ascii_case(hex::encode(digest).as_bytes())
}

/// Upper-case hex MD5 (the `MessageBodyMD5` of a message).
pub fn md5_upper_hex(data: &[u8]) -> String {
    hex::encode_upper(Md5::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const DATE: &str = "Mon, 01 Jan 2024 00:00:00 GMT";
    const Q: &str = "/queues/Alicom-Queue-1234567890-ArtcCdrReport/messages";

    /// The vendor vectors of crates/emu-pop/tests/vectors/test_vectors.json (`mns-*`) and test_vectors_node.json.
    #[test]
    fn vendor_vector_python_receive_longpoll() {
        let h = headers(&[
            ("x-mns-version", "2015-06-06"),
            ("host", "127.0.0.1:18081"),
            ("date", DATE),
            ("security-token", "STS-TOKEN"),
        ]);
        let resource = format!("{Q}?waitseconds=3");
        let sts = string_to_sign("GET", &h, &resource);
        assert_eq!(sts, format!("GET\n\n\n{DATE}\nx-mns-version:2015-06-06\n{resource}"));
        assert_eq!(sign("testSecret", &sts), "uClS+TcX2LYPs5FGtlZ+Q4ms1a0=");
        assert!(verify("testSecret", &sts, "uClS+TcX2LYPs5FGtlZ+Q4ms1a0="));
        assert!(!verify("wrongSecret", &sts, "uClS+TcX2LYPs5FGtlZ+Q4ms1a0="));
    }

    #[test]
    fn vendor_vector_python_delete() {
        let h = headers(&[("x-mns-version", "2015-06-06"), ("host", "127.0.0.1:18081"), ("date", DATE)]);
        let resource = format!("{Q}?ReceiptHandle=1-ODU4OTkzNDU5My0xNDMyNzI3ODI3LTItOA==");
        let sts = string_to_sign("DELETE", &h, &resource);
        assert_eq!(sign("testSecret", &sts), "KplWRTq4IFdOJjdT0iKLQufCkoo=");
    }

    #[test]
    fn vendor_vector_python_send_with_hex_content_md5() {
        let body = r#"<?xml version="1.0" encoding="utf-8"?><Message xmlns="http://mns.aliyuncs.com/doc/v1/"><MessageBody>eyJhIjoxfQ==</MessageBody></Message>"#;
        let md5 = "OGUyYjFkYmVmZDFhMTExZGUyNGNjZTIzOWM5Y2E2ZjA=";
        let h = headers(&[
            ("x-mns-version", "2015-06-06"),
            ("host", "127.0.0.1:18081"),
            ("date", DATE),
            ("content-md5", md5),
            ("content-type", "text/xml;charset=UTF-8"),
        ]);
        let sts = string_to_sign("POST", &h, Q);
        assert_eq!(sts, format!("POST\n{md5}\ntext/xml;charset=UTF-8\n{DATE}\nx-mns-version:2015-06-06\n{Q}"));
        assert_eq!(sign("testSecret", &sts), "EO7Z0VNEnYudeZGlaUMKdovLxqA=");
        assert!(content_md5_matches(md5, body.as_bytes()));
    }

    #[test]
    fn vendor_vector_node_receive_with_x_mns_date() {
        let h = headers(&[
            ("date", DATE),
            ("host", "127.0.0.1:18081"),
            ("x-mns-date", DATE),
            ("x-mns-version", "2015-06-06"),
        ]);
        let resource = format!("{Q}?waitseconds=3");
        let sts = string_to_sign("GET", &h, &resource);
        assert_eq!(sts, format!("GET\n\n\n{DATE}\nx-mns-date:{DATE}\nx-mns-version:2015-06-06\n{resource}"));
        assert_eq!(sign("testSecret", &sts), "xnO4pun6cA48BtFQBQWYgOyCjRc=");
    }

    /// A request captured from the real Python SDK with temporary credentials
    /// (a recorded run of the alicom receipt flow): the stub's STS secret signed it.
    #[test]
    fn captured_sts_request_verifies() {
        let h = headers(&[
            ("x-mns-version", "2015-06-06"),
            ("host", "127.0.0.1:18081"),
            ("date", "Thu, 26 Nov 2026 04:23:14 GMT"),
        ]);
        let sts = string_to_sign("GET", &h, &format!("{Q}?waitseconds=0"));
        assert_eq!(sts, format!("GET\n\n\nThu, 26 Nov 2026 04:23:14 GMT\nx-mns-version:2015-06-06\n{Q}?waitseconds=0"));
        // The secret the capture stub issued with QueryTokenForMnsQueue.
        let auth = "MNS STS.stubb8c985202644:mFISxQoSaHPNIKzPtKjCSnl5WJk=";
        let (key, sig) = parse_authorization(auth).unwrap();
        assert_eq!(key, "STS.stubb8c985202644");
        assert!(verify("e0a6cd25b4d14f939e90e502556fdb6b", &sts, sig));
    }

    #[test]
    fn content_md5_both_forms_and_empty_body() {
        // Node sends the MD5 of an empty body on DELETE/PUT without a body.
        assert!(content_md5_matches("ZDQxZDhjZDk4ZjAwYjIwNGU5ODAwOTk4ZWNmODQyN2U=", b""));
        // RFC 1864 form: base64 of the raw digest of "".
        assert!(content_md5_matches("1B2M2Y8AsgTpgAmY7PhCfg==", b""));
        assert!(!content_md5_matches("1B2M2Y8AsgTpgAmY7PhCfg==", b"x"));
        assert!(!content_md5_matches("not base64!", b""));
    }

    #[test]
    fn authorization_header_parses() {
        assert_eq!(parse_authorization("MNS testAK:abc="), Some(("testAK", "abc=")));
        assert_eq!(parse_authorization("MNS STS.x:y"), Some(("STS.x", "y")));
        assert_eq!(parse_authorization("MNS4-HMAC-SHA256 Credential=x"), None);
        assert_eq!(parse_authorization("MNS :sig"), None);
        assert_eq!(parse_authorization("Bearer x"), None);
    }

    #[test]
    fn body_md5_is_upper_hex() {
        assert_eq!(md5_upper_hex(b""), "D41D8CD98F00B204E9800998ECF8427E");
    }
}
