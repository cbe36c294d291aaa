//! The signalling gateway (docs/gateway.md): the MQTT 3.1.1 endpoint the SDKs connect to, over
//! WebSocket (`/mqtt`) and TCP, speaking the Alicom envelope protocol (docs/protocol.md).
//! It authenticates connections by their token, keeps registrations, ACKs and de-duplicates
//! requests, re-sends unACKed server requests, and hands device requests to the call engine.

pub mod connection;
pub mod envelope;
/// For the fuzz targets only (docs/fuzzing.md).
#[doc(hidden)]
pub mod fuzzing;
pub mod hub;
mod json_out;
pub mod media_signal;
pub mod mqtt;
pub mod sls;
mod sls_http;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use emu_core::Shared;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use hub::{CustomMessage, CustomMessageError, GatewayEvent, HeldAck, Hub, KickError, SendError};

/// The routes of the `mqtt_ws` listener: `/mqtt` and the SLS log sink.
pub fn ws_router(hub: Arc<Hub>) -> Router {
    Router::new().route("/mqtt", get(upgrade)).with_state(hub.clone()).merge(sls_http::routes(hub))
}

async fn upgrade(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let max = hub.cfg.max_packet_bytes.saturating_mul(2);
    ws.protocols(["mqtt"])
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| connection::serve(hub, connection::Transport::Ws(Box::new(socket)), peer.to_string()))
        .into_response()
}

/// Accepts MQTT-over-TCP connections until `stop` turns true.
/// Out of file descriptors, new connections are closed at once ([`emu_http::Acceptor`]).
pub async fn serve_tcp(hub: Arc<Hub>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let mut acceptor = emu_http::Acceptor::new(listener);
    loop {
        tokio::select! {
            (stream, peer) = acceptor.accept() => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection::serve(hub.clone(), connection::Transport::Tcp(stream), peer.to_string()));
            }
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Drives the hub's timeouts and follows the account directory (token supersedes, resets).
pub async fn run_background(hub: Arc<Hub>, shared: Shared, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(hub.cfg.sweep_interval_ms.max(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut directory = shared.directory.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => hub.sweep(),
            ev = directory.recv() => match ev {
                Ok(ev) => hub.on_directory_event(ev),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => tracing::warn!("missed {n} directory events"),
                Err(_) => return,
            },
            _ = stopped(&mut stop) => return,
        }
    }
}
