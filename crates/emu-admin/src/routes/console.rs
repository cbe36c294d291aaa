//! The console (docs/console.md): a page, a script and a stylesheet embedded in the binary and
//! served on the admin listener at `/` and `/console`. It reads only documented admin routes, so
//! it adds no state and no work until someone opens it.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const INDEX: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/console.js");
const STYLE: &str = include_str!("../../console/console.css");

pub fn routes() -> OpenApiRouter<()> {
    OpenApiRouter::new()
        .routes(routes!(root))
        .routes(routes!(console))
        .routes(routes!(console_slash))
        .routes(routes!(script))
        .routes(routes!(style))
}

/// The console.
///
/// A web page that shows and drives the emulator through the admin API (docs/console.md).
#[utoipa::path(get, path = "/", tag = "console", responses((status = 200, description = "the page", content_type = "text/html; charset=utf-8", body = String)))]
async fn root() -> impl IntoResponse {
    index().await
}

/// The console (as `/`).
#[utoipa::path(get, path = "/console", tag = "console", responses((status = 200, description = "the page", content_type = "text/html; charset=utf-8", body = String)))]
async fn console() -> impl IntoResponse {
    index().await
}

/// The console (as `/`).
#[utoipa::path(get, path = "/console/", tag = "console", responses((status = 200, description = "the page", content_type = "text/html; charset=utf-8", body = String)))]
async fn console_slash() -> impl IntoResponse {
    index().await
}

/// The console's script.
#[utoipa::path(get, path = "/console/console.js", tag = "console", responses((status = 200, description = "the script", content_type = "text/javascript; charset=utf-8", body = String)))]
async fn script() -> impl IntoResponse {
    file("text/javascript; charset=utf-8", SCRIPT).await
}

/// The console's stylesheet.
#[utoipa::path(get, path = "/console/console.css", tag = "console", responses((status = 200, description = "the stylesheet", content_type = "text/css; charset=utf-8", body = String)))]
async fn style() -> impl IntoResponse {
    file("text/css; charset=utf-8", STYLE).await
}

async fn index() -> impl IntoResponse {
    file("text/html; charset=utf-8", INDEX).await
}

/// `no-cache`: after an upgrade the browser revalidates instead of running an old script.
async fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route the page loads is one this router serves (a renamed file would break the page).
    #[test]
    fn the_page_loads_what_the_router_serves() {
        assert!(INDEX.contains("src=\"/console/console.js\""));
        assert!(INDEX.contains("href=\"/console/console.css\""));
    }

    /// The script uses only admin routes that exist (each `api('/admin/…')` prefix is routed).
    #[test]
    fn the_script_calls_documented_routes() {
        let docs = [
            include_str!("../../../../docs/admin-api.md"),
            include_str!("../../../../docs/calls.md"),
            include_str!("../../../../docs/pstn.md"),
            include_str!("../../../../docs/mns.md"),
            include_str!("../../../../docs/voip-devices.md"),
        ]
        .concat();
        let starts = SCRIPT.match_indices("'/admin/").chain(SCRIPT.match_indices("`/admin/"));
        for (i, _) in starts {
            let rest = &SCRIPT[i + 1..];
            let path: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || "/-_".contains(*c)).collect();
            let path = path.trim_end_matches('/');
            assert!(docs.contains(path), "the console calls {path}, which no doc describes");
        }
    }
}
