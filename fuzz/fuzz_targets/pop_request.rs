//! A POP request's parameters and signature (crates/emu-pop: params.rs, signature/, auth.rs):
//! the query and form body decoded as the gateway does, then authenticated against the default
//! tenant with the timestamp window and nonce check on. Whatever comes in, nothing panics; and
//! the same parameters signed the way the SDKs sign them (RPC v1 over the query and form, ACS3
//! over the query and headers) authenticate.
//!
//! Input: a plain HTTP/1.1 request (`METHOD /?query HTTP/1.1`, headers, a blank line, the body),
//! as captured from an SDK.
#![no_main]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use alicom_emu_fuzz::once;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use emu_core::Shared;
use emu_pop::auth::{self, NonceCache, Request, Scheme};
use emu_pop::params::{Params, Source};
use emu_pop::signature::{acs3, canonical_query, pct, rpc_v1};
use libfuzzer_sys::fuzz_target;

static SHARED: OnceLock<(Shared, NonceCache)> = OnceLock::new();
static NONCE: AtomicU64 = AtomicU64::new(0);

const KEY: &str = "testAK";
const SECRET: &str = "testSecret";

struct Parsed {
    method: Method,
    path: String,
    query: Vec<u8>,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A lenient reading of the request text: what the HTTP layer would hand the POP handler.
fn parse(data: &[u8]) -> Parsed {
    let (head, body) = match data.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&data[..i], &data[i + 4..]),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|b| *b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(|b| *b == b' ');
    let method = Method::from_bytes(parts.next().unwrap_or_default()).unwrap_or(Method::POST);
    let target = parts.next().unwrap_or(b"/");
    let (path, query) = match target.iter().position(|b| *b == b'?') {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, &[][..]),
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(i) = line.iter().position(|b| *b == b':') else { continue };
        let value = line[i + 1..].trim_ascii();
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(&line[..i]), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    let path = String::from_utf8_lossy(path).into_owned();
    Parsed { method, path, query: query.to_vec(), headers, body: body.to_vec() }
}

/// The parameters as lib.rs reads them: the query, then a form body.
fn params(p: &Parsed) -> Option<Params> {
    let mut params = Params::default();
    params.extend_from(&p.query, Source::Query).ok()?;
    let form = p
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if form && !p.body.is_empty() {
        params.extend_from(&p.body, Source::Body).ok()?;
    }
    Some(params)
}

fn now_iso(shared: &Shared) -> String {
    auth::iso8601(shared.clock.now_ms())
}

fn encode(pairs: &[(String, String)]) -> Vec<u8> {
    pairs.iter().map(|(k, v)| format!("{}={}", pct(k), pct(v))).collect::<Vec<_>>().join("&").into_bytes()
}

/// The request's parameters, signed with RPC v1 the way the SDKs do it, authenticate.
fn signed_v1(shared: &Shared, nonces: &NonceCache, p: &Parsed, params: &Params) {
    let skip = ["Signature", "AccessKeyId", "Timestamp", "SignatureNonce", "SecurityToken"];
    let nonce = format!("fuzz-{}", NONCE.fetch_add(1, Ordering::Relaxed));
    let mut query: Vec<(String, String)> = params
        .from_source(Source::Query)
        .filter(|(k, _)| !skip.contains(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    query.extend([
        ("AccessKeyId".into(), KEY.into()),
        ("Timestamp".into(), now_iso(shared)),
        ("SignatureNonce".into(), nonce),
    ]);
    let body: Vec<(String, String)> = params
        .from_source(Source::Body)
        .filter(|(k, _)| !skip.contains(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let all = query.iter().chain(&body).map(|(k, v)| (k.as_str(), v.as_str()));
    let sts = rpc_v1::string_to_sign(p.method.as_str(), all);
    query.push(("Signature".into(), rpc_v1::sign(SECRET, &sts)));
    let (raw_query, raw_body) = (encode(&query), encode(&body));
    let mut again = Params::default();
    again.extend_from(&raw_query, Source::Query).expect("an encoded query decodes");
    again.extend_from(&raw_body, Source::Body).expect("an encoded form decodes");
    let headers = HeaderMap::new();
    let req = Request { method: &p.method, path: "/", headers: &headers, params: &again, body: &raw_body };
    let out = auth::authenticate(shared, nonces, &req);
    assert_eq!(out.scheme, Scheme::RpcV1);
    if let Err(e) = &out.result {
        panic!("an SDK-signed RPC v1 request was refused: {} {}\nstring to sign: {sts}", e.code, e.message);
    }
}

/// The request signed with ACS3 over its query and its own x-acs-* headers authenticates.
fn signed_acs3(shared: &Shared, nonces: &NonceCache, p: &Parsed, params: &Params) {
    let mut headers = HeaderMap::new();
    let mut signed: Vec<String> = Vec::new();
    for (name, value) in &p.headers {
        let n = name.as_str();
        if n.starts_with("x-acs-") && !["x-acs-date", "x-acs-signature-nonce", "x-acs-security-token"].contains(&n)
            || n == "host"
            || n == "content-type"
        {
            if !headers.contains_key(name) {
                signed.push(n.to_string());
            }
            headers.append(name.clone(), value.clone());
        }
    }
    let nonce = format!("fuzz-{}", NONCE.fetch_add(1, Ordering::Relaxed));
    for (n, v) in [("x-acs-date", now_iso(shared)), ("x-acs-signature-nonce", nonce)] {
        headers.insert(n, HeaderValue::from_str(&v).expect("a header value"));
        signed.push(n.into());
    }
    let mut body_hash = acs3::hex_sha256(&p.body);
    // The hashed payload is what the client puts in x-acs-content-sha256 (its hex in any case):
    // a request's own value when it is right, else the right one.
    match headers.get("x-acs-content-sha256").and_then(|c| c.to_str().ok()) {
        Some(claimed) if claimed.eq_ignore_ascii_case(&body_hash) => body_hash = claimed.to_string(),
        Some(_) => {
            headers.insert("x-acs-content-sha256", HeaderValue::from_str(&body_hash).expect("hex"));
        }
        None => {}
    }
    let query: Vec<(&str, &str)> = params.from_source(Source::Query).collect();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let canon = acs3::canonical_request(p.method.as_str(), "/", query.iter().copied(), header, &signed, &body_hash);
    let authz = acs3::Authorization {
        credential: KEY.into(),
        signed_headers: signed.clone(),
        signature: acs3::sign(SECRET, &acs3::string_to_sign(&canon)),
    };
    // Through the header's own text, as the server reads it.
    let value = HeaderValue::from_str(&authz.header_value()).expect("an Authorization value");
    headers.insert("authorization", value);
    let mut q = Params::default();
    q.extend_from(canonical_query(query.iter().copied()).as_bytes(), Source::Query).expect("a canonical query decodes");
    let req = Request { method: &p.method, path: "/", headers: &headers, params: &q, body: &p.body };
    let out = auth::authenticate(shared, nonces, &req);
    if let Err(e) = &out.result {
        panic!("an SDK-signed ACS3 request was refused: {} {}\ncanonical request:\n{canon}", e.code, e.message);
    }
    assert_eq!(out.scheme, Scheme::Acs3);
}

fuzz_target!(|data: &[u8]| {
    let (shared, nonces) = once(&SHARED, || {
        (alicom_emu_fuzz::shared("[pop]\ntimestamp_window_secs = 900\nnonce_check = true\n"), NonceCache::default())
    });
    let p = parse(data);
    let Some(params) = params(&p) else { return };
    // As sent: whatever the outcome, no panic; a refusal carries a vendor code.
    let req = Request { method: &p.method, path: &p.path, headers: &p.headers, params: &params, body: &p.body };
    let out = auth::authenticate(shared, nonces, &req);
    if let Err(e) = &out.result {
        assert!(!e.code.is_empty());
    }
    // Signed by the book.
    if p.method == Method::GET || p.method == Method::POST {
        signed_v1(shared, nonces, &p, &params);
        signed_acs3(shared, nonces, &p, &params);
    }
});
