//! The document describes every route, each with a summary and its answers in the error shape;
//! every route the prose documents is in it; and no route reaches the router without it.

use std::collections::BTreeMap;

use serde_json::Value;

use super::*;

fn document_json() -> Value {
    document()
}

/// (method, path, operation) of every operation of the document.
fn operations_of(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "put", "post", "delete", "head", "patch"].contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    out
}

#[test]
fn is_openapi_3_1_with_the_error_shape() {
    let doc = document_json();
    assert_eq!(doc["openapi"], "3.1.0");
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error"]), "{error}");
    assert_eq!(error["properties"]["error"]["type"], "string");
}

/// The test the issue asks for: a route without a description fails here.
#[test]
fn every_operation_has_a_summary_a_success_and_errors_in_the_error_shape() {
    let doc = document_json();
    let ops = operations_of(&doc);
    assert!(ops.len() >= 50, "only {} operations", ops.len());
    for (method, path, op) in ops {
        let name = format!("{method} {path}");
        let summary = op["summary"].as_str().unwrap_or_default();
        assert!(!summary.trim().is_empty(), "{name} has no summary: give its handler a doc comment");
        assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()), "{name} has no tag");
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.keys().any(|s| s.starts_with('2')), "{name} documents no success");
        assert!(responses.contains_key("403"), "{name}: the guard's 403 is missing");
        for (status, response) in responses {
            assert!(!response["description"].as_str().unwrap_or_default().is_empty(), "{name} {status}");
            // The one exception, documented: `/health` says `{"status":"starting"}` while starting.
            let starting = name == "GET /health" && status == "503";
            if (status.starts_with('4') || status.starts_with('5')) && !starting {
                let schema = &response["content"]["application/json"]["schema"];
                assert_eq!(schema["$ref"], "#/components/schemas/Error", "{name} {status} is not the error shape");
            }
        }
        if path.starts_with("/admin/") {
            assert!(responses.contains_key("401"), "{name}: the token's 401 is missing");
        }
    }
}

/// Every `$ref` names a schema of the document.
#[test]
fn every_reference_resolves() {
    let doc = document_json();
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for part in text.split("\"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        assert!(schemas.contains_key(name), "unresolved $ref {name}");
    }
}

/// Two types of the same name in different areas would silently share one schema (the first):
/// each area's schemas must agree with the merged document's.
#[test]
fn schema_names_are_unambiguous() {
    let merged = document_json();
    let mut seen: BTreeMap<String, (&str, Value)> = BTreeMap::new();
    for (area, doc) in area_documents() {
        let doc = inline_integers(doc);
        let Some(schemas) = doc["components"]["schemas"].as_object() else { continue };
        for (name, schema) in schemas {
            assert_eq!(&merged["components"]["schemas"][name], schema, "schema {name} of {area} differs");
            if let Some((other, first)) = seen.get(name) {
                assert_eq!(first, schema, "schema {name} means different things in {other} and {area}");
            }
            seen.insert(name.clone(), (area, schema.clone()));
        }
    }
}

/// Whether the template `/a/{x}/b` matches the concrete or templated `path`.
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || p.starts_with('{') || t == p)
}

/// `METHOD /path` in backticks, as the prose writes routes (also "`GET` / `PUT /path`").
fn documented_routes(text: &str) -> Vec<(String, String)> {
    const METHODS: [&str; 4] = ["GET", "PUT", "POST", "DELETE"];
    let route = |code: &str| {
        let (method, path) = code.split_once(' ')?;
        let end = path.find(['[', '?', ' ']).unwrap_or(path.len());
        (METHODS.contains(&method) && path.starts_with('/')).then(|| (method.to_string(), path[..end].to_string()))
    };
    // The odd pieces are the code spans.
    let pieces: Vec<&str> = text.split('`').collect();
    let mut out = Vec::new();
    for i in (1..pieces.len()).step_by(2) {
        if let Some(r) = route(pieces[i]) {
            out.push(r);
        } else if METHODS.contains(&pieces[i])
            && pieces.get(i + 1).is_some_and(|between| between.trim() == "/")
            && let Some((_, path)) = pieces.get(i + 2).and_then(|next| route(next))
        {
            out.push((pieces[i].to_string(), path));
        }
    }
    out
}

/// Every route docs/*.md documents is in the document (the prose and the contract agree).
#[test]
fn every_route_of_the_prose_is_in_the_document() {
    let doc = document_json();
    let ops: Vec<(String, String)> = operations_of(&doc).into_iter().map(|(m, p, _)| (m, p)).collect();
    let prose = [
        ("admin-api.md", include_str!("../../../../docs/admin-api.md")),
        ("calls.md", include_str!("../../../../docs/calls.md")),
        ("pstn.md", include_str!("../../../../docs/pstn.md")),
        ("voip-devices.md", include_str!("../../../../docs/voip-devices.md")),
        ("mns.md", include_str!("../../../../docs/mns.md")),
        ("media.md", include_str!("../../../../docs/media.md")),
        ("metrics.md", include_str!("../../../../docs/metrics.md")),
    ];
    let mut checked = 0;
    for (file, text) in prose {
        for (method, path) in documented_routes(text) {
            if !(path.starts_with("/admin")
                || path.starts_with("/health")
                || path.starts_with("/metrics")
                || path.starts_with("/recordings"))
            {
                continue;
            }
            assert!(
                ops.iter().any(|(m, t)| *m == method && matches(t, &path)),
                "{file} documents {method} {path}, which the OpenAPI document lacks"
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} routes found in the prose");
}

/// Routes reach the router only through `routes!` (which documents them): no module adds one
/// with axum's own `.route(`, but for the public listeners' `/health`.
#[test]
fn no_route_bypasses_the_document() {
    let sources = [
        ("lib.rs", include_str!("../lib.rs")),
        ("routes/mod.rs", include_str!("../routes/mod.rs")),
        ("routes/core.rs", include_str!("../routes/core.rs")),
        ("routes/calls.rs", include_str!("../routes/calls.rs")),
        ("routes/console.rs", include_str!("../routes/console.rs")),
        ("routes/devices.rs", include_str!("../routes/devices.rs")),
        ("routes/media.rs", include_str!("../routes/media.rs")),
        ("routes/metrics.rs", include_str!("../routes/metrics.rs")),
        ("routes/mns.rs", include_str!("../routes/mns.rs")),
        ("routes/voip.rs", include_str!("../routes/voip.rs")),
    ];
    for (file, text) in sources {
        for line in
            text.lines().filter(|l| l.contains(".route(") || l.contains(".nest(") || l.contains("route_service("))
        {
            assert!(line.contains("public_health"), "{file} adds a route the document does not see: {line}");
        }
    }
}

#[test]
fn prose_routes_are_parsed() {
    let routes = documented_routes(
        "| `GET` / `PUT /admin/mns/push` | x | `POST /admin/reset` | `GET /admin/accounts[?tenant=NAME]` |",
    );
    assert!(routes.contains(&("GET".into(), "/admin/mns/push".into())), "{routes:?}");
    assert!(routes.contains(&("PUT".into(), "/admin/mns/push".into())), "{routes:?}");
    assert!(routes.contains(&("POST".into(), "/admin/reset".into())), "{routes:?}");
    assert!(routes.contains(&("GET".into(), "/admin/accounts".into())), "{routes:?}");
    assert!(matches("/admin/pstn/phones/{number}/{action}", "/admin/pstn/phones/{number}/dtmf"));
    assert!(!matches("/admin/pstn/phones/{number}", "/admin/pstn/phones/{number}/dtmf"));
}
