//! HTTP: recording downloads and the media admin views.
//!
//! - `GET /recordings/{file}`: the WAV file (`audio/wav`).
//! - `GET /admin/recordings`: finished recordings, newest first.
//! - `GET /admin/media`: server-wide counters.
//! - `GET /admin/media/{channelId}`: a channel's per-leg statistics.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use emu_http::ApiError;

use crate::openapi::ErrorBody;
use crate::schemas::MediaSummary;
use emu_media::{MediaServer, RecordingInfo};

pub fn routes() -> OpenApiRouter<Arc<MediaServer>> {
    OpenApiRouter::new()
        .routes(routes!(download))
        .routes(routes!(list))
        .routes(routes!(summary))
        .routes(routes!(channel))
}

fn not_found(what: &str) -> Response {
    ApiError::not_found(what).into_response()
}

/// Downloads a recording.
///
/// The WAV file; no admin token needed (the URL is handed out in receipts, like the vendor's
/// pre-signed links).
#[utoipa::path(get, path = "/recordings/{file}", tag = "media",
    params(("file" = String, Path, description = "the recording's file name")),
    responses(
        (status = 200, description = "the recording", content_type = "audio/wav", body = Vec<u8>),
        (status = 404, description = "no such recording", body = ErrorBody),
    ))]
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

#[derive(Serialize, ToSchema)]
pub struct Recordings {
    recordings: Vec<RecordingInfo>,
}

/// Recordings.
///
/// Finished recordings, newest first.
#[utoipa::path(get, path = "/admin/recordings", tag = "media", responses((status = 200, description = "the recordings", body = Recordings)))]
async fn list(State(s): State<Arc<MediaServer>>) -> Response {
    let mut recordings = s.recordings();
    recordings.reverse();
    axum::Json(Recordings { recordings }).into_response()
}

/// Media counters.
///
/// Server-wide: addresses and ports, channels, legs, RTP packets, TURN users and allocations,
/// recordings in progress, datagram counters.
#[utoipa::path(get, path = "/admin/media", tag = "media", responses((status = 200, description = "the counters", body = MediaSummary)))]
async fn summary(State(s): State<Arc<MediaServer>>) -> Response {
    let mut v = s.summary();
    v["turnAllocations"] = s.turn_allocations().await.into();
    axum::Json(v).into_response()
}

/// A channel's media statistics.
///
/// Per leg (docs/media.md#statistics); for a released channel its final statistics
/// (`"released": true`, the last 1000 channels kept).
#[utoipa::path(get, path = "/admin/media/{channelId}", tag = "media",
    params(("channelId" = String, Path, description = "the call's channelId")),
    responses(
        (status = 200, description = "the statistics", body = Object),
        (status = 404, description = "no media for this channel", body = ErrorBody),
    ))]
async fn channel(State(s): State<Arc<MediaServer>>, Path(channel_id): Path<String>) -> Response {
    match s.stats(&channel_id) {
        Some(stats) => axum::Json(stats).into_response(),
        None => not_found("no media for this channel"),
    }
}
