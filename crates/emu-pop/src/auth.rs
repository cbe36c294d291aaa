//! Who is calling: the AccessKey (and STS token) of a request and its signature, checked per
//! `pop.signature` (enforce / log / off), with the vendor's errors (docs/pop-api.md: signatures, errors).

use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use dashmap::DashMap;
use emu_core::config::SignatureMode;
use emu_core::tenants::{KeyError, ResolvedKey};
use emu_core::{Millis, Shared};

use crate::params::{Params, Source};
use crate::reply::PopError;
use crate::signature::{acs3, rpc_v1};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    RpcV1,
    Acs3,
    /// No signature at all (only accepted with `signature = "off"`).
    None,
}

/// A verified (or, in `log`/`off` mode, accepted) caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub access_key_id: String,
    pub key: ResolvedKey,
    pub scheme: Scheme,
}

/// What the request log keeps about a signature that did not verify.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Mismatch {
    // Not required in the schema: the request log flattens an optional mismatch into each entry.
    #[serde(rename = "serverStringToSign")]
    #[schema(required = false)]
    pub server_string_to_sign: String,
    #[serde(rename = "serverCanonicalRequest", skip_serializing_if = "Option::is_none")]
    pub server_canonical_request: Option<String>,
    /// The client's string to sign, when a known client mistake reproduces its signature.
    #[serde(rename = "clientStringToSign", skip_serializing_if = "Option::is_none")]
    pub client_string_to_sign: Option<String>,
    #[schema(required = false)]
    pub hint: String,
}

/// The outcome of authentication: a caller, or an error; a mismatch is reported either way.
pub struct AuthOutcome {
    pub result: Result<Caller, PopError>,
    pub access_key_id: Option<String>,
    /// The tenant of the key, once it resolved (also for a request refused afterwards).
    pub tenant: Option<emu_core::TenantId>,
    pub scheme: Scheme,
    pub mismatch: Option<Mismatch>,
}

/// Remembers nonces for 15 minutes (emulator time) when `pop.nonce_check` is on.
#[derive(Default)]
pub struct NonceCache {
    seen: DashMap<(String, String), Millis>,
}

const NONCE_TTL_MS: Millis = 15 * 60 * 1000;

impl NonceCache {
    /// True when the nonce is fresh (and remembers it).
    fn check_and_insert(&self, key_id: &str, nonce: &str, now: Millis) -> bool {
        if self.seen.len() > 100_000 {
            self.seen.retain(|_, t| now.saturating_sub(*t) < NONCE_TTL_MS);
        }
        let k = (key_id.to_string(), nonce.to_string());
        match self.seen.get(&k) {
            Some(t) if now.saturating_sub(*t) < NONCE_TTL_MS => false,
            _ => {
                self.seen.insert(k, now);
                true
            }
        }
    }

    pub fn clear(&self) {
        self.seen.clear();
    }
}

pub struct Request<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub params: &'a Params,
    pub body: &'a [u8],
}

use emu_http::header;

pub fn authenticate(shared: &Shared, nonces: &NonceCache, req: &Request<'_>) -> AuthOutcome {
    let mode = shared.config.pop.signature;
    let now = shared.clock.now_ms();
    let acs3_header = header(req.headers, "authorization").filter(|h| h.trim_start().starts_with(acs3::ALGORITHM));
    let (scheme, auth) = match acs3_header {
        Some(h) => match acs3::Authorization::parse(h) {
            Some(a) => (Scheme::Acs3, Some(a)),
            None => {
                return fail(
                    None,
                    Scheme::Acs3,
                    PopError::new(
                        StatusCode::BAD_REQUEST,
                        "IncompleteSignature",
                        "The Authorization header is malformed.",
                    ),
                );
            }
        },
        None if req.params.get("Signature").is_some() || req.params.get("AccessKeyId").is_some() => {
            (Scheme::RpcV1, None)
        }
        None => (Scheme::None, None),
    };
    let key_id = match (&auth, scheme) {
        (Some(a), _) => Some(a.credential.clone()),
        _ => req.params.non_empty("AccessKeyId").map(str::to_string),
    };

    // With signatures off, an unsigned request acts as the first tenant's default key.
    let key_id = match key_id {
        Some(k) => k,
        None if mode == SignatureMode::Off => match shared.config.default_access_key() {
            Some(k) => k.id.clone(),
            None => return fail(None, scheme, missing_key()),
        },
        None => return fail(None, scheme, missing_key()),
    };

    let security_token = match scheme {
        Scheme::Acs3 => header(req.headers, "x-acs-security-token"),
        _ => req.params.non_empty("SecurityToken"),
    };
    let key = match shared.tenants.resolve(&key_id, security_token, now) {
        Ok(k) => k,
        Err(KeyError::Unknown) => {
            return fail(
                Some(key_id),
                scheme,
                PopError::new(
                    StatusCode::NOT_FOUND,
                    "InvalidAccessKeyId.NotFound",
                    "Specified access key is not found.",
                ),
            );
        }
        Err(KeyError::BadSecurityToken) => {
            return fail(
                Some(key_id),
                scheme,
                PopError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidSecurityToken.Mismatch",
                    "Specified SecurityToken is missing or does not match the AccessKeyId.",
                ),
            );
        }
        Err(KeyError::Expired) => {
            return fail(
                Some(key_id),
                scheme,
                PopError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidSecurityToken.Expired",
                    "Specified SecurityToken is expired.",
                ),
            );
        }
    };

    let mut mismatch = None;
    if mode != SignatureMode::Off {
        let checked = match (scheme, &auth) {
            (Scheme::Acs3, Some(a)) => verify_acs3(req, a, &key.secret),
            (Scheme::RpcV1, _) => verify_v1(req, &key.secret),
            _ => Err(Err(PopError::new(
                StatusCode::BAD_REQUEST,
                "IncompleteSignature",
                "The request signature is missing.",
            ))),
        };
        match checked {
            Ok(()) => {}
            Err(Err(e)) if mode == SignatureMode::Enforce => {
                return AuthOutcome { tenant: Some(key.tenant), ..fail(Some(key_id), scheme, e) };
            }
            Err(Err(e)) => {
                tracing::warn!(access_key_id = %key_id, code = %e.code, "signature problem accepted (signature = log)")
            }
            Err(Ok(m)) => {
                if mode == SignatureMode::Enforce {
                    let err = PopError::new(
                        StatusCode::BAD_REQUEST,
                        "SignatureDoesNotMatch",
                        format!(
                            "Specified signature is not matched with our calculation. server string to sign is:{}",
                            m.server_string_to_sign
                        ),
                    );
                    return AuthOutcome {
                        result: Err(err),
                        access_key_id: Some(key_id),
                        tenant: Some(key.tenant),
                        scheme,
                        mismatch: Some(m),
                    };
                }
                tracing::warn!(access_key_id = %key_id, hint = %m.hint, "signature mismatch accepted (signature = log)");
                mismatch = Some(m);
            }
        }
        if let Err(e) = check_freshness(shared, nonces, req, scheme, &key_id, now) {
            return AuthOutcome { tenant: Some(key.tenant), ..fail(Some(key_id), scheme, e) };
        }
    }
    AuthOutcome {
        tenant: Some(key.tenant),
        result: Ok(Caller { access_key_id: key_id.clone(), key, scheme }),
        access_key_id: Some(key_id),
        scheme,
        mismatch,
    }
}

fn fail(key_id: Option<String>, scheme: Scheme, e: PopError) -> AuthOutcome {
    AuthOutcome { result: Err(e), access_key_id: key_id, tenant: None, scheme, mismatch: None }
}

fn missing_key() -> PopError {
    PopError::new(StatusCode::BAD_REQUEST, "MissingAccessKeyId", "AccessKeyId is mandatory for this action.")
}

/// `Err(Ok(mismatch))` for a wrong signature, `Err(Err(e))` for a request that cannot be verified.
type Verified = Result<(), Result<Mismatch, PopError>>;

fn verify_v1(req: &Request<'_>, secret: &str) -> Verified {
    let Some(signature) = req.params.non_empty("Signature") else {
        return Err(Err(PopError::new(
            StatusCode::BAD_REQUEST,
            "IncompleteSignature",
            "The request signature is missing.",
        )));
    };
    let server = rpc_v1::string_to_sign(req.method.as_str(), req.params.iter());
    if rpc_v1::verify(secret, &server, signature) {
        return Ok(());
    }
    // Known client mistakes, tried with the right secret: if one reproduces the signature, the
    // caller learns what it did wrong; if none does, the secret is most likely wrong.
    let other_method = if req.method == Method::GET { "POST" } else { "GET" };
    let mut candidates = vec![(
        rpc_v1::string_to_sign(other_method, req.params.iter()),
        format!("the client signed for HTTP {other_method} but sent {}", req.method),
    )];
    if req.params.has_body_params() {
        candidates.push((
            rpc_v1::string_to_sign(req.method.as_str(), req.params.from_source(Source::Query)),
            "the client signed only the query parameters, not the form body".to_string(),
        ));
    }
    let found = candidates.into_iter().find(|(sts, _)| rpc_v1::verify(secret, sts, signature));
    Err(Ok(Mismatch {
        server_string_to_sign: server,
        server_canonical_request: None,
        hint: found.as_ref().map(|f| f.1.clone()).unwrap_or_else(|| "the AccessKey secret is probably wrong".into()),
        client_string_to_sign: found.map(|f| f.0),
    }))
}

fn verify_acs3(req: &Request<'_>, auth: &acs3::Authorization, secret: &str) -> Verified {
    let body_hash = acs3::hex_sha256(req.body);
    let claimed = header(req.headers, "x-acs-content-sha256").unwrap_or_default();
    if !claimed.is_empty() && !claimed.eq_ignore_ascii_case(&body_hash) {
        return Err(Err(PopError::new(
            StatusCode::BAD_REQUEST,
            "SignatureDoesNotMatch",
            format!("x-acs-content-sha256 ({claimed}) is not the SHA-256 of the request body ({body_hash})."),
        )));
    }
    // ACS3 signs the query only; form-body parameters are covered by the payload hash.
    let canon = acs3::canonical_request(
        req.method.as_str(),
        req.path,
        req.params.from_source(Source::Query),
        |name| header(req.headers, name).map(str::to_string),
        &auth.signed_headers,
        if claimed.is_empty() { &body_hash } else { claimed },
    );
    let server = acs3::string_to_sign(&canon);
    if acs3::verify(secret, &server, &auth.signature) {
        return Ok(());
    }
    let missing: Vec<&str> =
        auth.signed_headers.iter().map(String::as_str).filter(|h| req.headers.get(*h).is_none()).collect();
    let hint = if missing.is_empty() {
        "the AccessKey secret is probably wrong".to_string()
    } else {
        format!("signed headers missing from the request: {}", missing.join(", "))
    };
    Err(Ok(Mismatch {
        server_string_to_sign: server,
        server_canonical_request: Some(canon),
        client_string_to_sign: None,
        hint,
    }))
}

/// The optional timestamp window and nonce replay checks (off by default).
fn check_freshness(
    shared: &Shared,
    nonces: &NonceCache,
    req: &Request<'_>,
    scheme: Scheme,
    key_id: &str,
    now: Millis,
) -> Result<(), PopError> {
    let pop = &shared.config.pop;
    let (stamp, nonce) = match scheme {
        Scheme::Acs3 => (header(req.headers, "x-acs-date"), header(req.headers, "x-acs-signature-nonce")),
        _ => (req.params.non_empty("Timestamp"), req.params.non_empty("SignatureNonce")),
    };
    if pop.timestamp_window_secs > 0 {
        let Some(stamp) = stamp else {
            return Err(PopError::new(
                StatusCode::BAD_REQUEST,
                "MissingTimestamp",
                "Timestamp is mandatory for this action.",
            ));
        };
        let parsed = chrono::DateTime::parse_from_rfc3339(stamp).map_err(|_| {
            PopError::new(
                StatusCode::BAD_REQUEST,
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.",
            )
        })?;
        let skew = (parsed.timestamp_millis() - now as i64).unsigned_abs();
        if Duration::from_millis(skew) > Duration::from_secs(pop.timestamp_window_secs) {
            return Err(PopError::new(
                StatusCode::BAD_REQUEST,
                "InvalidTimeStamp.Expired",
                format!("Specified time stamp or date value is expired. server time: {}", iso8601(now)),
            ));
        }
    }
    if pop.nonce_check {
        let Some(nonce) = nonce else {
            return Err(PopError::new(
                StatusCode::BAD_REQUEST,
                "MissingSignatureNonce",
                "SignatureNonce is mandatory.",
            ));
        };
        if !nonces.check_and_insert(key_id, nonce, now) {
            return Err(PopError::new(
                StatusCode::BAD_REQUEST,
                "SignatureNonceUsed",
                "Specified signature nonce was used already.",
            ));
        }
    }
    Ok(())
}

pub fn iso8601(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}
