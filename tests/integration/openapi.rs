//! `GET /admin/openapi.json` (docs/admin-api.md#openapi): the running emulator serves the document
//! generated from the code, behind the admin guard, and every route it describes is one the
//! router serves.

use reqwest::Method;
use serde_json::Value;

use crate::common;

#[tokio::test]
async fn the_admin_listener_serves_its_openapi_document() {
    let emu = common::start("").await;
    let resp = emu.http.get(format!("{}/admin/openapi.json", emu.admin)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let served: Value = resp.json().await.unwrap();
    let generated = emu_admin::openapi::document();
    assert_eq!(served, generated, "the served document is the generated one");
    assert_eq!(served["openapi"], "3.1.0");
    assert!(served["paths"]["/admin/openapi.json"]["get"]["summary"].is_string());
    emu.running.shutdown().await;
}

/// A concrete request path for a templated one: each `{param}` becomes the first value of its
/// enum, or `x`.
fn concrete(path: &str, op: &Value) -> String {
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    path.split('/')
        .map(|segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => params
                .iter()
                .find(|p| p["name"] == name)
                .and_then(|p| p["schema"]["enum"][0].as_str())
                .unwrap_or("x")
                .to_string(),
            None => segment.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// No path of the document is one the router lacks: every operation reaches a handler (never the
/// fallback's 404 nor a 405), and answers with a status the document lists for it.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let emu = common::start("").await;
    let doc = emu_admin::openapi::document();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "put", "post", "delete"].contains(&method.as_str()) {
                continue;
            }
            let url = format!("{}{}", emu.admin, concrete(path, op));
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // Headers only: the event stream's body never ends.
            let resp = emu.http.request(method.clone(), &url).send().await.unwrap();
            let status = resp.status().as_u16();
            assert_ne!(status, 405, "{method} {path}: not routed for this method");
            if status == 404 && path != "/admin/events/stream" {
                let body: Value = resp.json().await.unwrap();
                let message = body["error"].as_str().unwrap_or_default();
                assert!(!message.contains("no such admin endpoint"), "{method} {path}: not routed ({url})");
            }
            assert!(
                op["responses"].get(status.to_string()).is_some(),
                "{method} {url}: {status} is not among the documented answers"
            );
            checked += 1;
        }
    }
    assert!(checked >= 50, "{checked}");
    emu.running.shutdown().await;
}

#[tokio::test]
async fn the_document_needs_the_admin_token_when_one_is_set() {
    let emu = common::start("[admin]\ntoken = \"openapi-token\"\n").await;
    let url = format!("{}/admin/openapi.json", emu.admin);
    let resp = emu.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = emu.http.get(&url).bearer_auth("openapi-token").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object(), "the token is described");
    emu.running.shutdown().await;
}

// Found by schemathesis (tests/openapi/run.sh); each stays fixed.

/// An advance past the year 9999 overflowed the clock and killed the call driver (debug builds):
/// now it is a 400, and the clock and the driver go on.
#[tokio::test]
async fn an_advance_past_the_year_9999_is_refused() {
    let emu = common::start("[clock]\nmode = \"manual\"\n").await;
    let url = format!("{}/admin/clock/advance", emu.admin);
    let resp = emu.http.post(&url).body(r#"{"ms": 9223372036854775807}"#).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("9999"), "{body}");
    let resp = emu.http.post(&url).body(r#"{"ms": 1000}"#).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the driver still answers");
    emu.running.shutdown().await;
}
