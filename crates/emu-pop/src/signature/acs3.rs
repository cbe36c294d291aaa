//! ACS3-HMAC-SHA256: the header signature of the Tea 5.x SDKs (docs/pop-api.md#signatures).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::canonical_query;

pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// A parsed `Authorization: ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub credential: String,
    /// Lower-case header names, in the order given.
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl Authorization {
    /// None when the header is not an ACS3 header or lacks one of its three parts.
    pub fn parse(header: &str) -> Option<Self> {
        let rest = header.trim().strip_prefix(ALGORITHM)?.trim_start();
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (k, v) = part.trim().split_once('=')?;
            match k {
                "Credential" => credential = Some(v.to_string()),
                "SignedHeaders" => {
                    // Trimmed before the empty ones are dropped: `host; ;x-acs-date` signs two headers.
                    signed =
                        Some(v.split(';').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect())
                }
                "Signature" => signature = Some(v.to_string()),
                _ => {}
            }
        }
        Some(Authorization { credential: credential?, signed_headers: signed?, signature: signature? })
    }

    pub fn header_value(&self) -> String {
        format!(
            "{ALGORITHM} Credential={},SignedHeaders={},Signature={}",
            self.credential,
            self.signed_headers.join(";"),
            self.signature
        )
    }
}

/// The canonical request. `header` returns a request header's value by lower-case name; the
/// headers signed are exactly `signed_headers`, sorted.
pub fn canonical_request<'a>(
    method: &str,
    path: &str,
    query: impl IntoIterator<Item = (&'a str, &'a str)>,
    header: impl Fn(&str) -> Option<String>,
    signed_headers: &[String],
    payload_hash: &str,
) -> String {
    let mut names: Vec<&str> = signed_headers.iter().map(String::as_str).collect();
    names.sort_unstable();
    let mut canonical_headers = String::new();
    for name in &names {
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(header(name).unwrap_or_default().trim());
        canonical_headers.push('\n');
    }
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        if path.is_empty() { "/" } else { path },
        canonical_query(query),
        canonical_headers,
        names.join(";"),
        payload_hash
    )
}

pub fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn string_to_sign(canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{}", hex_sha256(canonical_request.as_bytes()))
}

/// Hex HMAC-SHA256 keyed with the secret itself (no `&` suffix, unlike v1).
pub fn sign(secret: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Constant-time check of a hex signature.
pub fn verify(secret: &str, string_to_sign: &str, signature: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(string_to_sign.as_bytes());
    match hex::decode(signature) {
        Ok(raw) => mac.verify_slice(&raw).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_vector_a3() {
        let all: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../tests/vectors/test_vectors.json")).unwrap();
        let v = all.iter().find(|v| v["name"] == "acs3-AddRtcAccount").expect("A3 vector");
        let auth = Authorization::parse(v["authorization"].as_str().unwrap()).unwrap();
        assert_eq!(auth.credential, "testAK");
        let headers = v["headers"].as_object().unwrap();
        let query: Vec<(&str, &str)> =
            v["query"].as_object().unwrap().iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap())).collect();
        let canon = canonical_request(
            "POST",
            "/",
            query,
            |name| headers.get(name).and_then(|v| v.as_str()).map(str::to_string),
            &auth.signed_headers,
            &hex_sha256(b""),
        );
        assert_eq!(canon, v["canonical_request"].as_str().unwrap());
        let sts = string_to_sign(&canon);
        assert_eq!(sts, v["string_to_sign"].as_str().unwrap());
        assert_eq!(sign("testSecret", &sts), auth.signature);
        assert!(verify("testSecret", &sts, &auth.signature));
        assert!(!verify("testSecret2", &sts, &auth.signature));
        assert_eq!(auth.header_value(), v["authorization"].as_str().unwrap());
    }

    /// Found by fuzzing (fuzz/ acs3_header): a blank entry in SignedHeaders parsed as a header
    /// named "", which the header written back no longer had.
    #[test]
    fn blank_signed_headers_are_dropped() {
        let a = Authorization::parse(
            "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=Host; \u{b}\u{b};x-acs-date;,Signature=b",
        )
        .unwrap();
        assert_eq!(a.signed_headers, ["host", "x-acs-date"]);
        assert_eq!(Authorization::parse(&a.header_value()), Some(a));
    }

    #[test]
    fn parse_rejects_other_schemes() {
        assert!(Authorization::parse("Bearer x").is_none());
        assert!(Authorization::parse("ACS3-HMAC-SHA256 Credential=a,Signature=b").is_none());
    }
}
