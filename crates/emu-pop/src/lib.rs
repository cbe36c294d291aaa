//! The POP API (docs/pop-api.md): one HTTP endpoint at the origin root serving Dyvmsapi and Dybaseapi
//! to the vendor's unmodified server SDKs, with real signature checking.

pub mod actions;
pub mod auth;
pub mod params;
pub mod reply;
pub mod request_log;
pub mod signature;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use emu_core::Shared;
use http_body_util::{BodyExt, Limited};

use crate::actions::{Ctx, VERSION};
use crate::auth::{NonceCache, Request, Scheme};
use crate::params::{ParamError, Params, Source};
use crate::reply::{Format, PopError};
use crate::request_log::{LoggedRequest, RequestLog};

/// Creates a tenant's queue when QueryTokenForMnsQueue hands out credentials for it (the MNS
/// service installs it; the POP API knows nothing else of MNS).
pub type QueueHook = Arc<dyn Fn(emu_core::TenantId, &str) + Send + Sync>;

pub struct Pop {
    pub shared: Shared,
    pub requests: RequestLog,
    nonces: NonceCache,
    queue_hook: std::sync::OnceLock<QueueHook>,
}

impl Pop {
    pub fn new(shared: Shared) -> Arc<Self> {
        let requests = RequestLog::new(shared.config.pop.request_log_size, shared.config.pop.request_log_max_bytes);
        Arc::new(Pop { shared, requests, nonces: NonceCache::default(), queue_hook: std::sync::OnceLock::new() })
    }

    pub fn set_queue_hook(&self, hook: QueueHook) {
        let _ = self.queue_hook.set(hook);
    }

    /// Forgets the request log and nonces (`POST /admin/reset`).
    pub fn reset(&self) {
        self.requests.clear();
        self.nonces.clear();
    }
}

/// The POP router: every path, every method, one handler (the SDKs only use `/`).
pub fn router(pop: Arc<Pop>) -> Router {
    Router::new().fallback(handle).with_state(pop)
}

async fn handle(State(pop): State<Arc<Pop>>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string().to_uppercase();
    let limit = pop.shared.config.pop.max_body_bytes;
    let query = uri.query().unwrap_or_default();
    if query.len() > limit {
        let err = PopError::new(
            StatusCode::URI_TOO_LONG,
            "InvalidParameter",
            format!("The query string is longer than {limit} bytes ({} bytes).", query.len()),
        );
        return finish(&pop, &request_id, &method, "", format_of(query), None, Scheme::None, Err(err));
    }
    let body = match Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let err = PopError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "InvalidParameter",
                format!("The request body is larger than {limit} bytes."),
            );
            return finish(&pop, &request_id, &method, "", Format::Json, None, Scheme::None, Err(err));
        }
    };
    serve(&pop, &request_id, &method, &uri, &headers, &body)
}

/// The answer to a request head the HTTP layer refused before the POP handler saw it: a URL over
/// its 64 KiB limit (414) or a head over the listener's buffer (431). In the vendor's format, XML
/// or JSON as the head's `Format` asks (looked for in its first bytes), and in the request log;
/// the whole HTTP/1.1 response (the listener writes it instead of its bare one).
pub fn refused_head(pop: &Pop, status: u16, head: &[u8]) -> Option<Vec<u8>> {
    let (status, message) = match status {
        414 => (
            StatusCode::URI_TOO_LONG,
            "The request URL is longer than 65534 bytes; send the parameters as a form body (POST) instead.",
        ),
        431 => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "The request line and headers are too large."),
        _ => return None,
    };
    let sample = String::from_utf8_lossy(head);
    let line = sample.lines().next().unwrap_or_default();
    let method = line.split(' ').next().unwrap_or_default().to_string();
    let query = line.split_once('?').map(|(_, q)| q.split(' ').next().unwrap_or(q)).unwrap_or_default();
    let format = format_of(query);
    let request_id = uuid::Uuid::new_v4().to_string().to_uppercase();
    let err = PopError::new(status, "InvalidParameter", message);
    tracing::warn!(request_id, code = %err.code, status = status.as_u16(), "POP request refused: {message}");
    let (content_type, body) = reply::error_document(format, "", &request_id, &err);
    let entry = LoggedRequest {
        time_ms: pop.shared.clock.now_ms(),
        request_id,
        method,
        action: String::new(),
        access_key_id: String::new(),
        tenant: String::new(),
        scheme: "none",
        status: status.as_u16(),
        code: err.code,
        message: err.message,
        mismatch: None,
    };
    pop.shared.metrics.pop_request(&entry.action, &entry.code);
    pop.requests.push(entry);
    let reason = status.canonical_reason().unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        body.len()
    );
    Some([head.into_bytes(), body.into_bytes()].concat())
}

/// The `Format` parameter of a query too long to parse whole.
fn format_of(query: &str) -> Format {
    let value = query.split('&').find_map(|p| p.strip_prefix("Format="));
    Format::from_param(value)
}

fn serve(pop: &Pop, request_id: &str, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Response {
    let mut params = Params::default();
    let parsed = parse_params(&mut params, uri, headers, body);
    let format = Format::from_param(params.get("Format"));
    let action = params
        .non_empty("Action")
        .or_else(|| headers.get("x-acs-action").and_then(|v| v.to_str().ok()))
        .unwrap_or_default()
        .to_string();
    if let Err(e) = parsed {
        return finish(pop, request_id, method, &action, format, None, Scheme::None, Err(e));
    }
    if uri.path() != "/" {
        let e = PopError::new(
            StatusCode::NOT_FOUND,
            "InvalidAction.NotFound",
            format!(
                "Specified api is not found, please check your url and method. The POP API is served at /, not {}.",
                uri.path()
            ),
        );
        return finish(pop, request_id, method, &action, format, None, Scheme::None, Err(e));
    }
    if method != Method::GET && method != Method::POST {
        let e = PopError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UnsupportedHTTPMethod",
            format!("Specified HTTP method {method} is not supported; use GET or POST."),
        );
        return finish(pop, request_id, method, &action, format, None, Scheme::None, Err(e));
    }

    let req = Request { method, path: uri.path(), headers, params: &params, body };
    let auth = auth::authenticate(&pop.shared, &pop.nonces, &req);
    let caller = match auth.result {
        Ok(c) => c,
        Err(e) => {
            let logged = Logged { key: auth.access_key_id, tenant: auth.tenant, mismatch: auth.mismatch };
            return finish(pop, request_id, method, &action, format, Some(logged), auth.scheme, Err(e));
        }
    };
    let logged =
        Logged { key: Some(caller.access_key_id.clone()), tenant: Some(caller.key.tenant), mismatch: auth.mismatch };

    let result = check_action(&params, headers, &action).and_then(|()| {
        let ctx = Ctx {
            shared: &pop.shared,
            caller: &caller,
            params: &params,
            now: pop.shared.clock.now_ms(),
            queue_hook: pop.queue_hook.get(),
        };
        actions::dispatch(&action, &ctx)
    });
    finish(pop, request_id, method, &action, format, Some(logged), caller.scheme, result)
}

fn parse_params(params: &mut Params, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<(), PopError> {
    let bad = |e: ParamError| match e {
        ParamError::InvalidUtf8(name) => PopError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("The value of parameter {name:?} is not valid percent-encoded UTF-8."),
        ),
        ParamError::Duplicate(name) => PopError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("Parameter {name:?} is specified more than once."),
        ),
    };
    params.extend_from(uri.query().unwrap_or_default().as_bytes(), Source::Query).map_err(bad)?;
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if is_form && !body.is_empty() {
        params.extend_from(body, Source::Body).map_err(bad)?;
    }
    Ok(())
}

fn check_action(params: &Params, headers: &HeaderMap, action: &str) -> Result<(), PopError> {
    if action.is_empty() {
        return Err(PopError::new(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            "The input parameter \"Action\" that is mandatory for processing this request is not supplied.",
        ));
    }
    let version = params
        .non_empty("Version")
        .or_else(|| headers.get("x-acs-version").and_then(|v| v.to_str().ok()))
        .unwrap_or_default();
    if version.is_empty() {
        return Err(PopError::new(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            "The input parameter \"Version\" that is mandatory for processing this request is not supplied.",
        ));
    }
    if version != VERSION {
        return Err(PopError::new(
            StatusCode::BAD_REQUEST,
            "InvalidVersion",
            format!("Specified parameter Version {version:?} is not valid; this API is version {VERSION}."),
        ));
    }
    Ok(())
}

struct Logged {
    key: Option<String>,
    tenant: Option<emu_core::TenantId>,
    mismatch: Option<auth::Mismatch>,
}

#[allow(clippy::too_many_arguments)]
fn finish(
    pop: &Pop,
    request_id: &str,
    method: &Method,
    action: &str,
    format: Format,
    logged: Option<Logged>,
    scheme: Scheme,
    result: Result<actions::Fields, PopError>,
) -> Response {
    let (key, tenant, mismatch) = logged.map(|l| (l.key, l.tenant, l.mismatch)).unwrap_or_default();
    let key = key.unwrap_or_default();
    let tenant = tenant.map(|t| pop.shared.tenants.get(t).name.to_string()).unwrap_or_default();
    let (response, status, code, message) = match result {
        Ok(fields) => (reply::success(format, action, request_id, fields), 200, "OK".to_string(), "OK".to_string()),
        Err(e) => {
            if e.is_gateway() {
                tracing::warn!(request_id, action, access_key_id = %key, code = %e.code, status = e.status.as_u16(), "POP request refused: {}", e.message);
            } else {
                tracing::info!(request_id, action, access_key_id = %key, code = %e.code, "POP business error: {}", e.message);
            }
            (reply::error(format, action, request_id, &e), e.status.as_u16(), e.code, e.message)
        }
    };
    let entry = LoggedRequest {
        time_ms: pop.shared.clock.now_ms(),
        request_id: request_id.to_string(),
        method: method.to_string(),
        action: action.to_string(),
        access_key_id: key,
        tenant,
        scheme: match scheme {
            Scheme::RpcV1 => "rpc-v1",
            Scheme::Acs3 => "acs3",
            Scheme::None => "none",
        },
        status,
        code,
        message,
        mismatch,
    };
    pop.shared.metrics.pop_request(&entry.action, &entry.code);
    pop.requests.push(entry);
    response
}
