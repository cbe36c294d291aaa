//! The admin API's OpenAPI 3.1 document, served at `GET /admin/openapi.json`. It is generated
//! from the code: each area's routes are declared once, with `#[utoipa::path]` on the handler,
//! and [`crate::router`] and [`document`] are both built from those declarations, so the router
//! cannot serve a route the document lacks (or the other way round). Schemas are derived on the
//! types the handlers serialize; replies other crates build as JSON values are described in
//! [`crate::schemas`].
//!
//! Besides what each handler declares, every operation gets the answers the listener's own
//! layers give ([`crate::secure`]): 401 (admin token) and 403 (foreign `Host` or `Origin`) on
//! `/admin/*`, 413 where a body is read, all in the one error shape ([`ErrorBody`]).

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::Value;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder, SecurityRequirement};
use utoipa::{OpenApi as _, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::routes;

/// Every 4xx and 5xx of the admin listener.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = Error, example = json!({"error": "no tenant named \"nope\""}))]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub error: String,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "alicom-emu admin API",
        description = "The admin listener of alicom-emu, a local emulator of Alibaba Cloud's converged \
            communication service: state, faults, calls, phones, virtual devices, MNS queues, media \
            and the console. Prose: docs/admin-api.md. Every 4xx/5xx is `{\"error\": \"…\"}`.",
        license(name = "MIT", identifier = "MIT"),
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "core", description = "Health, reset, tenants, accounts, credentials, the POP request log, the clock, the configuration and the event log (docs/admin-api.md)"),
        (name = "devices", description = "SDK devices on the MQTT gateway, custom messages, SLS uploads (docs/admin-api.md)"),
        (name = "calls", description = "Calls, CDRs and callback URLs (docs/calls.md)"),
        (name = "pstn", description = "The simulated phone network (docs/pstn.md)"),
        (name = "voip", description = "Virtual VoIP devices (docs/voip-devices.md)"),
        (name = "mns", description = "MNS queues and receipt pushes (docs/mns.md)"),
        (name = "media", description = "Media statistics and recordings (docs/media.md)"),
        (name = "metrics", description = "Prometheus metrics (docs/metrics.md)"),
        (name = "console", description = "The web console (docs/console.md)"),
    )
)]
struct Info;

/// Which status codes the listener's layers add, and why.
const GUARD_ANSWERS: [(&str, &str); 2] = [
    ("401", "the admin token is configured and missing or wrong (`WWW-Authenticate: Bearer`)"),
    ("403", "the `Host` is not this machine's, or a state-changing request comes from a foreign `Origin`"),
];
const TOO_LARGE: (&str, &str) = ("413", "the body is over 2 MiB");

/// Each area's routes as documented, without their state (the document needs none).
pub(crate) fn area_documents() -> Vec<(&'static str, OpenApi)> {
    vec![
        ("core", routes::core::routes().into_openapi()),
        ("metrics", routes::metrics::routes().into_openapi()),
        ("devices", routes::devices::routes().into_openapi()),
        ("calls", routes::calls::routes().into_openapi()),
        ("voip", routes::voip::routes().into_openapi()),
        ("mns", routes::mns::routes().into_openapi()),
        ("media", routes::media::routes().into_openapi()),
        ("console", routes::console::routes().into_openapi()),
        ("openapi", document_route(Arc::default()).into_openapi()),
    ]
}

/// The OpenAPI document of every route [`crate::router`] serves (the one it serves, too), as JSON.
pub fn document() -> Value {
    let mut paths = OpenApi::default();
    for (_, doc) in area_documents() {
        paths.merge(doc);
    }
    finish(paths)
}

/// `GET /admin/openapi.json`, answering with `text` (set once the document is complete).
fn document_route(text: Arc<OnceLock<String>>) -> OpenApiRouter<()> {
    OpenApiRouter::new().routes(routes!(openapi_json)).with_state(text)
}

/// The merged routes, plus `GET /admin/openapi.json` serving the document made from them.
pub(crate) fn serve(router: OpenApiRouter<()>) -> axum::Router {
    let text: Arc<OnceLock<String>> = Arc::default();
    let (router, paths) = router.merge(document_route(text.clone())).split_for_parts();
    let _ = text.set(finish(paths).to_string());
    router
}

/// The info, tags, security schemes and the layers' answers around the routes' own paths.
fn finish(paths: OpenApi) -> Value {
    let mut doc = Info::openapi().merge_from(paths);
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("`[admin] token`")).build(),
        ),
    );
    components.add_security_scheme(
        "adminToken",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description("X-Admin-Token", "`[admin] token`"))),
    );
    // The token is off by default: no credentials is one of the accepted alternatives.
    doc.security = Some(vec![
        SecurityRequirement::default(),
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("adminToken", Vec::<String>::new()),
    ]);
    for (path, item) in doc.paths.paths.iter_mut() {
        let admin = path.starts_with("/admin/");
        for op in operations(item) {
            if admin {
                for (status, why) in GUARD_ANSWERS {
                    add_error(op, status, why);
                }
            } else {
                add_error(op, "403", GUARD_ANSWERS[1].1);
            }
            if op.request_body.is_some() {
                add_error(op, TOO_LARGE.0, TOO_LARGE.1);
            }
        }
    }
    inline_integers(doc)
}

/// Fields typed with an alias of an integer (`Millis`, `LegId`, `ConnId`) come out of the derive as
/// references to a schema named after the integer (`u64`): put the integer's schema in their place.
fn inline_integers(doc: OpenApi) -> Value {
    let mut value = serde_json::to_value(&doc).unwrap_or_default();
    let Some(schemas) = value.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else { return value };
    let integers: Vec<(String, Value)> = ["u8", "u16", "u32", "u64", "usize", "i32", "i64"]
        .iter()
        .filter_map(|name| schemas.remove(*name).map(|schema| (format!("#/components/schemas/{name}"), schema)))
        .collect();
    replace_refs(&mut value, &integers);
    value
}

fn replace_refs(value: &mut Value, targets: &[(String, Value)]) {
    match value {
        Value::Object(map) => {
            let target = map.get("$ref").and_then(Value::as_str).and_then(|r| targets.iter().find(|(t, _)| t == r));
            if let Some((_, Value::Object(schema))) = target {
                map.remove("$ref");
                for (k, v) in schema {
                    map.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            map.values_mut().for_each(|v| replace_refs(v, targets));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| replace_refs(v, targets)),
        _ => {}
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.head, &mut item.patch]
        .into_iter()
        .filter_map(Option::as_mut)
}

/// Adds `status` with the error shape unless the operation documents it already.
fn add_error(op: &mut Operation, status: &str, why: &str) {
    if op.responses.responses.contains_key(status) {
        return;
    }
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build();
    let response = ResponseBuilder::new().description(why).content("application/json", content).build();
    op.responses.responses.insert(status.to_string(), response.into());
}

/// This document.
///
/// The OpenAPI 3.1 description of every route of the admin listener, generated from the code.
#[utoipa::path(get, path = "/admin/openapi.json", tag = "core",
    responses((status = 200, description = "the OpenAPI document", content_type = "application/json", body = Object)))]
async fn openapi_json(State(text): State<Arc<OnceLock<String>>>) -> impl IntoResponse {
    let body = text.get().cloned().unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body)
}

#[cfg(test)]
mod tests;
