//! The admin listener's guard, applied once to every admin route ([`secure`]): the `Host` must
//! name this machine (DNS rebinding), a state-changing request from a browser must come from the
//! listener's own or a configured origin (cross-site requests), and, when `[admin] token` is set,
//! `/admin/*` needs the token. Every refusal is `{"error": "..."}`.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use emu_core::Config;

use crate::ApiError;

/// Set on a request that may see secrets (the token was given, or none is configured): the
/// admin `/health` then includes the default access key's secret.
#[derive(Debug, Clone, Copy)]
pub struct SeesSecrets;

/// What the guard accepts, from the configuration.
#[derive(Debug, Clone, Default)]
pub struct Security {
    token: Option<String>,
    any_origin: bool,
    origins: Vec<String>,
    any_host: bool,
    hosts: Vec<String>,
}

/// Wraps the merged admin router: the guard, then one JSON error shape for every 4xx/5xx.
pub fn secure(router: Router, config: &Config) -> Router {
    let security = Arc::new(Security::from_config(config));
    router.layer(middleware::from_fn_with_state(security, guard)).layer(middleware::from_fn(crate::errors::json_errors))
}

impl Security {
    pub fn from_config(config: &Config) -> Self {
        let a = &config.admin;
        let origins: Vec<String> =
            a.allowed_origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect();
        let mut hosts: Vec<String> = a.allowed_hosts.iter().map(|h| normalize_host(h)).collect();
        hosts.push(normalize_host(&config.server.public_host));
        let bind = normalize_host(&config.server.bind);
        if !bind.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
            hosts.push(bind);
        }
        hosts.retain(|h| !h.is_empty());
        Security {
            token: Some(a.token.clone()).filter(|t| !t.is_empty()),
            any_origin: origins.iter().any(|o| o == "*"),
            origins,
            any_host: hosts.iter().any(|h| h == "*"),
            hosts,
        }
    }

    /// Loopback names, the bind address, `public_host` and `[admin] allowed_hosts`; any port.
    pub fn host_allowed(&self, authority: &str) -> bool {
        if self.any_host {
            return true;
        }
        let Some((host, _)) = split_authority(authority) else { return false };
        is_loopback(&host) || self.hosts.contains(&host)
    }

    /// The listener's own origin (as reached: `http://` + `Host`, loopback names equivalent) or a
    /// configured one.
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.any_origin || self.origins.contains(&origin) {
            return true;
        }
        let (Some(rest), Some(host)) = (origin.strip_prefix("http://"), host) else { return false };
        match (split_authority(rest), split_authority(host)) {
            (Some((oh, op)), Some((hh, hp))) => op == hp && (oh == hh || (is_loopback(&oh) && is_loopback(&hh))),
            _ => false,
        }
    }

    /// No token configured, or `Authorization: Bearer <token>` / `X-Admin-Token: <token>`.
    pub fn token_given(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else { return true };
        let bearer = headers.get_all(header::AUTHORIZATION).iter().filter_map(|v| v.to_str().ok()).filter_map(|v| {
            let (scheme, value) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| value.trim())
        });
        let plain = headers.get_all("x-admin-token").iter().filter_map(|v| v.to_str().ok()).map(str::trim);
        bearer.chain(plain).any(|given| same_secret(given.as_bytes(), token.as_bytes()))
    }

    /// Why a state-changing request is refused, if it is: a foreign `Origin`, or (without one) a
    /// browser's `Sec-Fetch-Site` saying the request comes from another site.
    fn cross_site(&self, headers: &HeaderMap, host: Option<&str>) -> Option<String> {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = String::from_utf8_lossy(origin.as_bytes());
            return (!self.origin_allowed(&origin, host)).then(|| {
                format!("cross-origin request refused: Origin {origin:?} is not this admin listener's own; allow it in [admin] allowed_origins")
            });
        }
        let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).unwrap_or_default();
        matches!(site, "cross-site" | "same-site")
            .then(|| format!("cross-site request refused (Sec-Fetch-Site: {site})"))
    }
}

/// Compares without stopping at the first differing byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn normalize_host(h: &str) -> String {
    h.trim().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase()
}

/// `host[:port]` → (normalized host, port; 80 when absent).
fn split_authority(s: &str) -> Option<(String, u16)> {
    let a = Authority::from_str(s.trim()).ok()?;
    if a.as_str().contains('@') {
        return None;
    }
    Some((normalize_host(a.host()), a.port_u16().unwrap_or(80)))
}

/// `localhost`, `*.localhost`, 127.0.0.0/8, `::1` (normalized: no brackets, lower case).
fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.ends_with(".localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The `Host` header, or the URI's authority (HTTP/2).
fn request_host(req: &Request) -> Option<String> {
    match req.headers().get(header::HOST) {
        Some(h) => Some(String::from_utf8_lossy(h.as_bytes()).into_owned()),
        None => req.uri().authority().map(|a| a.to_string()),
    }
}

fn refuse(status: StatusCode, message: String) -> Response {
    tracing::warn!(status = status.as_u16(), "admin request refused: {message}");
    ApiError(status, message).into_response()
}

async fn guard(State(security): State<Arc<Security>>, mut req: Request, next: Next) -> Response {
    let host = request_host(&req);
    if let Some(h) = host.as_deref().filter(|h| !security.host_allowed(h)) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("Host {h:?} is not served here: use a loopback name, or add it to [admin] allowed_hosts"),
        );
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && let Some(why) = security.cross_site(req.headers(), host.as_deref())
    {
        return refuse(StatusCode::FORBIDDEN, why);
    }
    let authorized = security.token_given(req.headers());
    let path = req.uri().path();
    if !authorized && (path == "/admin" || path.starts_with("/admin/")) {
        let mut res = refuse(
            StatusCode::UNAUTHORIZED,
            "the admin token is required: Authorization: Bearer <token> (or X-Admin-Token)".into(),
        );
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return res;
    }
    if authorized {
        req.extensions_mut().insert(SeesSecrets);
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security(toml_admin: &[(&str, Vec<&str>)], bind: &str, public_host: &str, token: &str) -> Security {
        let mut s = Security::default();
        for (k, v) in toml_admin {
            let v: Vec<String> = v.iter().map(|x| x.to_string()).collect();
            match *k {
                "hosts" => s.hosts = v,
                _ => s.origins = v,
            }
        }
        for h in [bind, public_host] {
            let h = normalize_host(h);
            if !h.is_empty() && !h.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
                s.hosts.push(h);
            }
        }
        s.any_host = s.hosts.iter().any(|h| h == "*");
        s.any_origin = s.origins.iter().any(|o| o == "*");
        s.token = Some(token.to_string()).filter(|t| !t.is_empty());
        s
    }

    #[test]
    fn hosts() {
        let s = security(&[("hosts", vec!["alicom-emu"])], "0.0.0.0", "emu.example", "");
        for ok in [
            "127.0.0.1:18090",
            "127.1.2.3",
            "localhost:1",
            "LOCALHOST.",
            "app.localhost:8",
            "[::1]:18090",
            "alicom-emu:18090",
            "emu.example",
        ] {
            assert!(s.host_allowed(ok), "{ok}");
        }
        for bad in ["evil.example:18090", "0.0.0.0:18090", "10.0.0.1", "localhost.evil.example", "a@127.0.0.1", ""] {
            assert!(!s.host_allowed(bad), "{bad}");
        }
        assert!(security(&[], "10.1.2.3", "", "").host_allowed("10.1.2.3:18090"));
        assert!(security(&[("hosts", vec!["*"])], "0.0.0.0", "", "").host_allowed("anything:1"));
    }

    #[test]
    fn origins() {
        let s = security(&[("origins", vec!["http://app.test:3000"])], "127.0.0.1", "", "");
        let host = Some("127.0.0.1:18090");
        assert!(s.origin_allowed("http://127.0.0.1:18090", host));
        assert!(s.origin_allowed("http://localhost:18090", host), "loopback names are one origin");
        assert!(s.origin_allowed("http://[::1]:18090/", host));
        assert!(s.origin_allowed("http://APP.test:3000", host));
        for bad in ["http://127.0.0.1:3000", "https://127.0.0.1:18090", "http://evil.example", "null", ""] {
            assert!(!s.origin_allowed(bad, host), "{bad}");
        }
        assert!(s.origin_allowed("http://emu:80", Some("emu")));
        assert!(!s.origin_allowed("http://127.0.0.1:18090", None));
    }

    #[test]
    fn tokens() {
        let h = |k: &'static str, v: &'static str| {
            let mut m = HeaderMap::new();
            m.insert(k, HeaderValue::from_static(v));
            m
        };
        assert!(security(&[], "", "", "").token_given(&HeaderMap::new()), "no token configured");
        let s = security(&[], "", "", "s3cret");
        assert!(s.token_given(&h("authorization", "Bearer s3cret")));
        assert!(s.token_given(&h("authorization", "bearer  s3cret")));
        assert!(s.token_given(&h("x-admin-token", "s3cret")));
        assert!(!s.token_given(&HeaderMap::new()));
        assert!(!s.token_given(&h("authorization", "Bearer s3cre")));
        assert!(!s.token_given(&h("authorization", "Basic s3cret")));
        assert!(!s.token_given(&h("x-admin-token", "s3cret2")));
    }
}
