//! POP request signatures: RPC v1 (HMAC-SHA1) and ACS3-HMAC-SHA256, as the vendor's SDKs compute
//! them (docs/pop-api.md#signatures). Pure functions; the verifier in `auth.rs` uses them, and so do the
//! tests and the benchmark's load generator.

pub mod acs3;
pub mod rpc_v1;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Every byte but `A-Z a-z 0-9 - _ . ~` is escaped, with upper-case hex.
const POP_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The percent-encoding every POP signer uses (`pct()` in docs/pop-api.md#signatures).
pub fn pct(s: &str) -> String {
    utf8_percent_encode(s, POP_ENCODE_SET).to_string()
}

/// `k=v` pairs, percent-encoded and sorted by key (byte order), joined with `&`.
/// `params` must not contain `Signature`.
pub fn canonical_query<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut encoded: Vec<(String, String)> = params.into_iter().map(|(k, v)| (pct(k), pct(v))).collect();
    encoded.sort();
    let mut out = String::with_capacity(encoded.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    for (i, (k, v)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pct_follows_the_pop_rules() {
        assert_eq!(pct("a b*c~d+e/f=g&h"), "a%20b%2Ac~d%2Be%2Ff%3Dg%26h");
        assert_eq!(pct("x!'()"), "x%21%27%28%29");
        assert_eq!(pct("中文 é"), "%E4%B8%AD%E6%96%87%20%C3%A9");
        assert_eq!(pct("2024-01-01T00:00:00Z"), "2024-01-01T00%3A00%3A00Z");
    }

    #[test]
    fn canonical_query_sorts_by_encoded_key() {
        assert_eq!(canonical_query([("b", "2"), ("a", ""), ("A", "x y")]), "A=x%20y&a=&b=2");
    }
}
