//! The ACS3-HMAC-SHA256 `Authorization` header and canonical request (crates/emu-pop/src/signature/
//! acs3.rs): a header that parses writes back to a header that parses to the same; the canonical
//! request lists exactly the signed headers, sorted; a signature verifies, a changed one does not.
//!
//! Input: the header value on the first line, then `name: value` request headers, then (after a
//! blank line) the query string.
#![no_main]

use emu_pop::params::{Params, Source};
use emu_pop::signature::acs3;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (head, query) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let value = lines.next().unwrap_or_default();
    let headers: Vec<(String, &str)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim())).collect();
    let Some(auth) = acs3::Authorization::parse(value) else { return };
    let again = acs3::Authorization::parse(&auth.header_value()).expect("our own header parses");
    assert_eq!(again, auth, "Authorization round trip");
    assert!(auth.signed_headers.iter().all(|h| !h.is_empty() && h.trim() == h && h.to_ascii_lowercase() == *h));

    let mut params = Params::default();
    if params.extend_from(query.as_bytes(), Source::Query).is_err() {
        return;
    }
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.to_string());
    let hash = acs3::hex_sha256(b"");
    let canon = acs3::canonical_request("POST", "/", params.iter(), header, &auth.signed_headers, &hash);
    let mut sorted: Vec<&str> = auth.signed_headers.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let lines: Vec<&str> = canon.split('\n').collect();
    assert_eq!(lines.last(), Some(&hash.as_str()));
    assert_eq!(lines[lines.len() - 2], sorted.join(";"), "the signed-headers line");
    let sts = acs3::string_to_sign(&canon);
    let signature = acs3::sign(&auth.credential, &sts);
    assert!(acs3::verify(&auth.credential, &sts, &signature));
    assert!(!acs3::verify(&auth.credential, &sts, &auth.signature) || auth.signature.eq_ignore_ascii_case(&signature));
});
