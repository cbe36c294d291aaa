//! Who is calling (docs/mns.md#authentication): the AccessKey of the `Authorization: MNS <ak>:<sig>` header, its
//! STS `security-token`, the V2 signature (checked per `pop.signature`: enforce / log / off,
//! like the POP endpoint), Content-MD5, the account of a `<id>.mns.…` Host header, and the
//! queues an STS credential was issued for.

use axum::http::{HeaderMap, StatusCode};
use emu_core::TenantId;
use emu_core::config::SignatureMode;
use emu_core::tenants::KeyError;

use crate::Mns;
use crate::error::MnsError;
use crate::signature;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub access_key_id: String,
    /// The queues a temporary credential may use (None: every queue of the tenant).
    pub scope: Option<Vec<String>>,
}

impl Caller {
    pub fn may_use(&self, queue: &str) -> bool {
        self.scope.as_ref().is_none_or(|s| s.iter().any(|q| q == queue))
    }

    /// `AccessDenied` for a temporary credential used outside the queues it was issued for.
    pub fn check_queue(&self, queue: &str) -> Result<(), MnsError> {
        if self.may_use(queue) {
            return Ok(());
        }
        Err(MnsError::access_denied(format!(
            "The AccessKey {} is not allowed to access queue {queue}: it was issued for {}.",
            self.access_key_id,
            self.scope.as_deref().unwrap_or_default().join(", ")
        )))
    }
}

use emu_http::header;

/// The account id of a `<digits>.mns.<region>…` host name.
pub fn host_account(host: &str) -> Option<&str> {
    let (id, rest) = host.split_once('.')?;
    (rest.starts_with("mns.") && !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

pub fn authenticate(
    mns: &Mns,
    method: &str,
    headers: &HeaderMap,
    target: &str,
    body: &[u8],
) -> Result<Caller, MnsError> {
    let shared = &mns.shared;
    let mode = shared.config.pop.signature;
    let now = shared.clock.now_ms();

    let auth = header(headers, "authorization");
    let parsed = match auth {
        Some(a) => Some(signature::parse_authorization(a).ok_or_else(|| {
            let msg = if a.trim_start().starts_with("MNS4") {
                "MNS V4 signatures are not supported by the emulator; use the V2 signature (the SDKs' default)."
            } else {
                "The Authorization header is not of the form \"MNS <AccessKeyId>:<Signature>\"."
            };
            MnsError::new(StatusCode::BAD_REQUEST, "InvalidAuthorizationHeader", msg)
        })?),
        None => None,
    };
    let (key_id, claimed) = match parsed {
        Some((k, s)) => (k.to_string(), Some(s)),
        None if mode == SignatureMode::Off => match shared.config.default_access_key() {
            Some(k) => (k.id.clone(), None),
            None => return Err(missing_authorization()),
        },
        None => return Err(missing_authorization()),
    };

    let token = header(headers, "security-token").filter(|t| !t.is_empty());
    let key = shared.tenants.resolve(&key_id, token, now).map_err(|e| match e {
        KeyError::Unknown => MnsError::invalid_access_key_id(),
        KeyError::BadSecurityToken => MnsError::access_denied(if token.is_some() {
            "The security token you provided is invalid."
        } else {
            "A temporary AccessKey needs its security token (header security-token)."
        }),
        KeyError::Expired => MnsError::access_denied("The security token you provided has expired."),
    })?;

    if mode != SignatureMode::Off {
        let string_to_sign = signature::string_to_sign(method, headers, target);
        let ok = claimed.is_some_and(|sig| signature::verify(&key.secret, &string_to_sign, sig));
        if !ok {
            if mode == SignatureMode::Enforce {
                tracing::warn!(access_key_id = %key_id, %string_to_sign, "MNS request refused: signature does not match");
                return Err(MnsError::signature_does_not_match(&string_to_sign));
            }
            tracing::warn!(access_key_id = %key_id, %string_to_sign, "MNS signature mismatch accepted (signature = log)");
        }
        if let Some(md5) = header(headers, "content-md5")
            && !signature::content_md5_matches(md5, body)
        {
            if mode == SignatureMode::Enforce {
                return Err(MnsError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidDegist",
                    "The Content-MD5 you specified is invalid.",
                ));
            }
            tracing::warn!(access_key_id = %key_id, "MNS Content-MD5 mismatch accepted (signature = log)");
        }
    }

    if mns.config().date_skew_secs > 0 {
        let Some(date) = header(headers, "date") else {
            return Err(MnsError::new(StatusCode::BAD_REQUEST, "MissingDateHeader", "The Date header is mandatory."));
        };
        let parsed = chrono::DateTime::parse_from_rfc2822(date).map_err(|_| {
            MnsError::new(
                StatusCode::BAD_REQUEST,
                "InvalidDateHeader",
                format!("The Date header {date:?} is not an RFC 1123 date."),
            )
        })?;
        let skew = (parsed.timestamp_millis() - now as i64).unsigned_abs();
        if skew > mns.config().date_skew_secs * 1000 {
            return Err(MnsError::new(
                StatusCode::REQUEST_TIMEOUT,
                "TimeExpired",
                format!("The Date header is {} s away from the server's time.", skew / 1000),
            ));
        }
    }

    let tenant = shared.tenants.get(key.tenant);
    if let Some(account) = header(headers, "host").and_then(host_account)
        && account != tenant.uid
        && account != mns.config().alicom_account_id
    {
        return Err(MnsError::access_denied(format!(
            "The AccessKey {key_id} does not belong to account {account} (the Host header's)."
        )));
    }

    Ok(Caller { tenant: key.tenant, access_key_id: key_id, scope: key.sts.map(|c| c.scope).filter(|s| !s.is_empty()) })
}

fn missing_authorization() -> MnsError {
    MnsError::new(StatusCode::BAD_REQUEST, "MissingAuthorizationHeader", "The Authorization header is mandatory.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_accounts() {
        assert_eq!(host_account("1943695596114318.mns.cn-hangzhou.aliyuncs.com"), Some("1943695596114318"));
        assert_eq!(
            host_account("1943695596114318.mns.cn-hangzhou-internal-vpc.aliyuncs.com:80"),
            Some("1943695596114318")
        );
        assert_eq!(host_account("127.0.0.1:18081"), None);
        assert_eq!(host_account("abc.mns.x"), None);
        assert_eq!(host_account("localhost"), None);
    }
}
