//! The admin listener's security and error shape (docs/admin-api.md, "Security"): no secrets on
//! the public listeners' /health, the optional admin token, cross-site requests, DNS rebinding
//! (`Host`), and `{"error": …}` for every admin error.

use reqwest::Method;
use serde_json::Value;

use crate::common::{self, Emu};

const CUSTOM: &str = r#"
[tls]
enabled = true

[[tenants]]
name = "default"
uid = "1234567890123456"

[[tenants.access_keys]]
id = "customAK"
secret = "custom-Secret-4711"
"#;

/// Status, `content-type` and body of a request to the admin listener with extra headers.
async fn admin(emu: &Emu, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
    let mut req = emu.http.request(method, format!("{}{path}", emu.admin)).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("admin request");
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (resp.status().as_u16(), ct, resp.text().await.unwrap())
}

/// The body is `{"error": "<non-empty>"}` served as JSON.
fn assert_json_error(what: &str, ct: &str, body: &str) {
    assert!(ct.starts_with("application/json"), "{what}: content-type {ct:?}, body {body:?}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body:?}"));
    assert!(v["error"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {v}");
}

/// `GET /health` over TLS (the pop_tls listener), trusting the generated CA.
async fn tls_health(url: &str, ca: &str) -> String {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = url.strip_prefix("https://").unwrap().trim_end_matches('/').to_string();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let host = authority.rsplit_once(':').unwrap().0.to_string();
    let tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(host).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.unwrap();
    let request = format!("GET /health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

#[tokio::test]
async fn public_listeners_serve_health_without_secrets() {
    for (overrides, secret) in [("", common::SK), (CUSTOM, "custom-Secret-4711")] {
        let emu = common::start(overrides).await;
        let e = &emu.running.endpoints;
        assert_eq!(e.access_key_secret, secret);
        let mqtt_ws = e.mqtt_ws.replace("ws://", "http://").replace("/mqtt", "");
        for (listener, base) in [("pop", e.pop.clone()), ("mqtt_ws", mqtt_ws)] {
            let resp = emu.http.get(format!("{base}/health")).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{listener}");
            let body = resp.text().await.unwrap();
            assert!(!body.contains(secret) && !body.contains(common::SK), "{listener} /health leaks: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["status"], "ok", "{listener}: {v}");
            assert!(v["endpoints"]["pop"].is_string() && v["endpoints"].get("access_key_secret").is_none(), "{v}");
        }
        let tls = e.pop_tls.as_ref().zip(e.tls_ca_cert.as_ref());
        assert_eq!(tls.is_some(), overrides == CUSTOM, "pop_tls is on with the custom configuration");
        if let Some((pop_tls, ca)) = tls {
            let out = tls_health(pop_tls, ca).await;
            assert!(out.contains("\"status\":\"ok\"") && !out.contains(secret), "pop_tls /health leaks: {out}");
        }
        // The admin listener (no token configured) still tells.
        let health = emu.admin_get("/health").await;
        assert_eq!(health["endpoints"]["access_key_secret"], secret, "{health}");
        emu.running.shutdown().await;
    }
}

#[tokio::test]
async fn admin_token_is_required_when_configured() {
    let emu = common::start("[admin]\ntoken = \"t0k3n-xyz\"\n").await;
    for (method, path) in
        [(Method::GET, "/admin/accounts"), (Method::GET, "/admin/config"), (Method::POST, "/admin/reset")]
    {
        for headers in [&[][..], &[("authorization", "Bearer wrong")], &[("x-admin-token", "t0k3n-xy")]] {
            let (status, ct, body) = admin(&emu, method.clone(), path, headers, "").await;
            assert_eq!(status, 401, "{method} {path} {headers:?}: {body}");
            assert_json_error("401", &ct, &body);
        }
        for headers in [[("authorization", "Bearer t0k3n-xyz")], [("x-admin-token", "t0k3n-xyz")]] {
            let (status, _, body) = admin(&emu, method.clone(), path, &headers, "").await;
            assert_eq!(status, 200, "{method} {path} {headers:?}: {body}");
            assert!(!body.contains("t0k3n-xyz"), "the token is never shown: {body}");
        }
    }
    // Readiness needs no token (container healthchecks, `alicom-emu health`), the secrets do.
    let (status, _, body) = admin(&emu, Method::GET, "/health", &[], "").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ok");
    assert!(v["endpoints"]["admin"].is_string() && !body.contains(common::SK), "{body}");
    let (_, _, body) = admin(&emu, Method::GET, "/health", &[("authorization", "Bearer t0k3n-xyz")], "").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["endpoints"]["access_key_secret"], common::SK, "{v}");
    emu.running.shutdown().await;
}

#[tokio::test]
async fn cross_site_state_changes_are_refused() {
    let emu = common::start("[admin]\nallowed_origins = [\"http://app.test:3000\"]\n").await;
    let rtc_id = emu.new_account().await;
    let accounts =
        |v: Value| v["accounts"].as_array().unwrap().iter().filter(|a| a["rtcId"] == rtc_id.as_str()).count();
    for headers in [
        &[("origin", "http://evil.example"), ("content-type", "text/plain")][..],
        &[("origin", "null")],
        &[("origin", "http://127.0.0.1:1")],
        &[("sec-fetch-site", "cross-site")],
    ] {
        let (status, ct, body) = admin(&emu, Method::POST, "/admin/reset", headers, "{}").await;
        assert_eq!(status, 403, "{headers:?}: {body}");
        assert_json_error("403", &ct, &body);
        assert_eq!(accounts(emu.admin_get("/admin/accounts").await), 1, "nothing was reset ({headers:?})");
    }
    // Reading with a foreign Origin is not a state change (and the browser cannot read the answer).
    let (status, _, _) = admin(&emu, Method::GET, "/admin/accounts", &[("origin", "http://evil.example")], "").await;
    assert_eq!(status, 200);
    // The configured origin, then the listener's own (as 127.0.0.1 and as localhost) may.
    let own = emu.admin.clone();
    let own_localhost = own.replace("127.0.0.1", "localhost");
    for origin in ["http://app.test:3000", own.as_str(), own_localhost.as_str()] {
        emu.new_account().await;
        let (status, _, body) =
            admin(&emu, Method::POST, "/admin/reset", &[("origin", origin), ("sec-fetch-site", "same-origin")], "")
                .await;
        assert_eq!(status, 200, "{origin}: {body}");
        assert_eq!(emu.admin_get("/admin/accounts").await["accounts"].as_array().unwrap().len(), 0, "{origin}");
    }
    emu.running.shutdown().await;
}

#[tokio::test]
async fn foreign_host_names_are_refused() {
    let emu = common::start("[admin]\nallowed_hosts = [\"alicom-emu\"]\n").await;
    let port = emu.admin.rsplit_once(':').unwrap().1.to_string();
    for host in ["evil.example", "attacker.test:80", "10.0.0.1"] {
        let host = if host.contains(':') { host.to_string() } else { format!("{host}:{port}") };
        for path in ["/health", "/admin/tenants"] {
            let (status, ct, body) = admin(&emu, Method::GET, path, &[("host", &host)], "").await;
            assert_eq!(status, 403, "{host} {path}: {body}");
            assert_json_error("403", &ct, &body);
            assert!(!body.contains(common::SK), "{body}");
        }
    }
    for host in ["127.0.0.1", "localhost", "app.localhost", "[::1]", "alicom-emu"] {
        let host = format!("{host}:{port}");
        let (status, _, body) = admin(&emu, Method::GET, "/admin/tenants", &[("host", &host)], "").await;
        assert_eq!(status, 200, "{host}: {body}");
    }
    emu.running.shutdown().await;
}

#[tokio::test]
async fn admin_errors_are_json() {
    let emu = common::start("").await;
    let big = "x".repeat(20 * 1024 * 1024);
    let cases: [(Method, &str, &str, u16); 9] = [
        (Method::GET, "/admin/reset", "", 405),
        (Method::DELETE, "/admin/tenants", "", 405),
        (Method::GET, "/admin/no-such-thing", "", 404),
        (Method::GET, "/no-such-thing", "", 404),
        (Method::PUT, "/admin/tenants/default/state", &big, 413),
        // Every component's admin routes answer in the same shape.
        (Method::GET, "/admin/media/no-such-channel", "", 404),
        (Method::GET, "/recordings/no-such.wav", "", 404),
        (Method::GET, "/admin/mns/queues/no-such-queue/messages", "", 404),
        (Method::GET, "/admin/calls/no-such-call", "", 404),
    ];
    for (method, path, body, want) in cases {
        let (status, ct, text) = admin(&emu, method.clone(), path, &[("content-type", "application/json")], body).await;
        assert_eq!(status, want, "{method} {path}: {text}");
        assert_json_error(&format!("{method} {path}"), &ct, &text);
    }
    // A path parameter axum cannot decode (its rejection is plain text).
    let (status, ct, text) = admin(&emu, Method::PUT, "/admin/tenants/%FF/state", &[], "{}").await;
    assert_eq!(status, 400, "{text}");
    assert_json_error("bad path", &ct, &text);
    emu.running.shutdown().await;
}

#[tokio::test]
async fn testkit_sends_the_configured_token() {
    let emu = emu_testkit::Emulator::start("[admin]\ntoken = \"kit-token\"\n").await.unwrap();
    let tenants = emu.admin_get("/admin/tenants").await.unwrap();
    assert!(tenants["tenants"].is_array(), "{tenants}");
    emu.shutdown().await;
}

/// The console (docs/console.md) is served on the admin listener at `/` and `/console` without
/// the token (it is a static page; every admin call it makes carries the token the user enters),
/// and behind the same Host check as the API.
#[tokio::test]
async fn the_console_is_served_and_the_api_behind_it_stays_guarded() {
    let emu = common::start("[admin]\ntoken = \"t0k3n-xyz\"\n").await;
    for path in ["/", "/console", "/console/"] {
        let (status, ct, body) = admin(&emu, Method::GET, path, &[], "").await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(ct.starts_with("text/html"), "{path}: {ct}");
        assert!(body.contains("<title>alicom-emu console</title>"), "{path}: {body}");
    }
    let (status, ct, body) = admin(&emu, Method::GET, "/console/console.js", &[], "").await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/javascript"), "{ct}");
    assert!(body.contains("/admin/events/stream"), "the script reads the live event stream");
    let (status, ct, _) = admin(&emu, Method::GET, "/console/console.css", &[], "").await;
    assert_eq!((status, ct.starts_with("text/css")), (200, true), "{ct}");
    // What the page reads still needs the token.
    let (status, _, _) = admin(&emu, Method::GET, "/admin/events/stream", &[], "").await;
    assert_eq!(status, 401);
    // DNS rebinding: a page on another site that points its name at 127.0.0.1 gets nothing.
    let (status, ct, body) = admin(&emu, Method::GET, "/", &[("host", "evil.example:80")], "").await;
    assert_eq!(status, 403, "{body}");
    assert_json_error("403", &ct, &body);
    emu.running.shutdown().await;
}
