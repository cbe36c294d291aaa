//! HTTP: recording downloads and the media admin views.
//!
//! - `GET /recordings/{file}`: the WAV file (`audio/wav`).
//! - `GET /admin/recordings`: finished recordings, newest first.
//! - `GET /admin/media`: server-wide counters.
//! - `GET /admin/media/{channelId}`: a channel's per-leg statistics.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use emu_http::ApiError;

use emu_media::MediaServer;

pub fn router(server: Arc<MediaServer>) -> Router {
    Router::new()
        .route("/recordings/{file}", get(download))
        .route("/admin/recordings", get(list))
        .route("/admin/media", get(summary))
        .route("/admin/media/{channel_id}", get(channel))
        .with_state(server)
}

fn not_found(what: &str) -> Response {
    ApiError::not_found(what).into_response()
}

async fn download(State(s): State<Arc<MediaServer>>, Path(file): Path<String>) -> Response {
    let Some(path) = s.recording_path(&file) else { return not_found("no such recording") };
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "audio/wav".to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => not_found("no such recording"),
    }
}

async fn list(State(s): State<Arc<MediaServer>>) -> Response {
    let mut recs = s.recordings();
    recs.reverse();
    axum::Json(json!({"recordings": recs})).into_response()
}

async fn summary(State(s): State<Arc<MediaServer>>) -> Response {
    let mut v = s.summary();
    v["turnAllocations"] = s.turn_allocations().await.into();
    axum::Json(v).into_response()
}

async fn channel(State(s): State<Arc<MediaServer>>, Path(channel_id): Path<String>) -> Response {
    match s.stats(&channel_id) {
        serde_json::Value::Null => not_found("no media for this channel"),
        v => axum::Json(v).into_response(),
    }
}
