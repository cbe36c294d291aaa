//! A local stand-in for the customer's callback endpoint: answers each POST as a test says and
//! records what it received.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};

/// How the server answers one callback.
#[derive(Debug, Clone)]
pub enum Reply {
    Json(Value),
    Status(u16),
    /// A 200 with a body that is not JSON.
    Garbage,
    /// Answer after a real-time delay.
    Delayed(Duration, Value),
}

type Responder = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

pub struct CallbackServer {
    pub url: String,
    received: Mutex<mpsc::UnboundedReceiver<Value>>,
    task: tokio::task::JoinHandle<()>,
}

impl CallbackServer {
    /// Serves on 127.0.0.1 (free port); `respond` decides each answer from the request JSON.
    pub async fn start(respond: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let state: (Responder, mpsc::UnboundedSender<Value>) = (Arc::new(respond), tx);
        let app = Router::new().fallback(handle).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/callback", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CallbackServer { url, received: Mutex::new(rx), task })
    }

    /// The next request body received (within 5 s).
    pub async fn next_request(&self) -> anyhow::Result<Value> {
        let mut rx = self.received.lock().await;
        tokio::time::timeout(crate::DEFAULT_TIMEOUT, rx.recv())
            .await
            .map_err(|_| anyhow::anyhow!("no callback request within {:?}", crate::DEFAULT_TIMEOUT))?
            .ok_or_else(|| anyhow::anyhow!("callback server stopped"))
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State((respond, tx)): State<(Responder, mpsc::UnboundedSender<Value>)>, body: Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = tx.send(req.clone());
    match respond(&req) {
        Reply::Json(v) => axum::Json(v).into_response(),
        Reply::Status(s) => StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR).into_response(),
        Reply::Garbage => (StatusCode::OK, "<html>not json").into_response(),
        Reply::Delayed(d, v) => {
            tokio::time::sleep(d).await;
            axum::Json(v).into_response()
        }
    }
}
