//! RPC signature v1: `base64(HMAC-SHA1(secret + "&", METHOD&%2F&pct(canonical query)))`.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::{canonical_query, pct};

/// The string to sign for `method` over every parameter except `Signature`.
pub fn string_to_sign<'a>(method: &str, params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let canon = canonical_query(params.into_iter().filter(|(k, _)| *k != "Signature"));
    format!("{}&{}&{}", method.to_ascii_uppercase(), pct("/"), pct(&canon))
}

/// The signature of a string to sign with an AccessKey secret.
pub fn sign(secret: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes()).expect("HMAC takes any key");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Constant-time comparison of a received signature with the expected one.
pub fn verify(secret: &str, string_to_sign: &str, signature: &str) -> bool {
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes()).expect("HMAC takes any key");
    mac.update(string_to_sign.as_bytes());
    match base64::engine::general_purpose::STANDARD.decode(signature) {
        Ok(raw) => mac.verify_slice(&raw).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vendor vectors (tests/vectors/test_vectors*.json), computed by the SDKs' own signing code.
    fn vectors() -> Vec<serde_json::Value> {
        let mut all: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../tests/vectors/test_vectors.json")).unwrap();
        all.extend(
            serde_json::from_str::<Vec<serde_json::Value>>(include_str!("../../tests/vectors/test_vectors_node.json"))
                .unwrap(),
        );
        all
    }

    #[test]
    fn vendor_vectors() {
        let mut checked = 0;
        for v in vectors() {
            let scheme = v["scheme"].as_str().unwrap_or("");
            if !scheme.starts_with("RPC v1") {
                continue;
            }
            let params: Vec<(&str, &str)> =
                v["params"].as_object().unwrap().iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap())).collect();
            let secret = v["access_key_secret"].as_str().unwrap_or("testSecret");
            let sts = string_to_sign(v["method"].as_str().unwrap(), params.iter().copied());
            assert_eq!(sts, v["string_to_sign"].as_str().unwrap(), "{}", v["name"]);
            assert_eq!(sign(secret, &sts), v["signature"].as_str().unwrap(), "{}", v["name"]);
            assert!(verify(secret, &sts, v["signature"].as_str().unwrap()));
            assert!(!verify("wrong", &sts, v["signature"].as_str().unwrap()));
            checked += 1;
        }
        assert!(checked >= 4, "only {checked} RPC v1 vectors found");
    }

    #[test]
    fn spec_vector_v1_a() {
        let params = [
            ("Action", "AddRtcAccount"),
            ("DeviceId", "dev-0001"),
            ("Version", "2017-05-25"),
            ("Format", "JSON"),
            ("RegionId", "cn-hangzhou"),
            ("Timestamp", "2024-01-01T00:00:00Z"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureType", ""),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", "3e2b5f1a-0000-4000-8000-000000000001"),
            ("AccessKeyId", "testAK"),
        ];
        assert_eq!(sign("testSecret", &string_to_sign("POST", params)), "l1JbFYANsTfQIwQ2UqGCJPYWBWM=");
    }
}
