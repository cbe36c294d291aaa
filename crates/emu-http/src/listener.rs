//! The one HTTP/1.1 serve loop of the emulator's HTTP listeners (POP, admin, MNS, plain or TLS),
//! with the timeouts `axum::serve` does not have:
//!
//! * **header read**: a request whose head is not complete `header_read_timeout` after its first
//!   byte arrived closes the connection (a stalled or trickling client);
//! * **idle**: a keep-alive connection with no request for `idle_timeout` is closed;
//! * while a request is being answered — an MNS long poll, the admin event stream — nothing is
//!   timed: the handler decides how long it takes.
//!
//! (hyper's own `header_read_timeout` starts when the server waits for the next request, so on a
//! keep-alive connection it is an idle timeout too; here the two are separate.)
//!
//! Requests carry `ConnectInfo<SocketAddr>` (and [`ViaTls`] over TLS). At shutdown the listener
//! stops accepting and open connections finish their requests gracefully (at most 10 s).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::ViaTls;
use crate::accept::Acceptor;

/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may run on after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Builds the whole HTTP response (status line, headers, body) that replaces hyper's bare answer
/// to a request head it refused (status 400, 414 URI too long, 431 header too large), from that
/// status and the first bytes of the refused head; `None` keeps hyper's answer.
pub type HeadErrorHook = Arc<dyn Fn(u16, &[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// How much of a refused head the [`HeadErrorHook`] sees.
const HEAD_SAMPLE: usize = 64 * 1024;

#[derive(Clone)]
pub struct ServeOptions {
    /// From the first byte of a request to its complete head (`None`: no limit).
    pub header_read_timeout: Option<Duration>,
    /// A keep-alive connection without a request (`None`: no limit).
    pub idle_timeout: Option<Duration>,
    /// hyper's read buffer, i.e. the largest request head accepted (`None`: hyper's ~400 KB);
    /// a longer head gets 431 from hyper.
    pub max_buf_size: Option<usize>,
    /// Serve HTTPS with this configuration.
    pub tls: Option<Arc<ServerConfig>>,
    /// Answers heads hyper refuses in the service's own error format.
    pub head_error: Option<HeadErrorHook>,
}

impl ServeOptions {
    /// The timeouts of `[server]` (`0` = no limit).
    pub fn from_config(server: &emu_core::config::ServerConfig) -> Self {
        let ms = |v: u64| (v > 0).then(|| Duration::from_millis(v));
        ServeOptions {
            header_read_timeout: ms(server.header_read_timeout_ms),
            idle_timeout: ms(server.idle_timeout_ms),
            ..ServeOptions::default()
        }
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Some(Duration::from_secs(10)),
            idle_timeout: Some(Duration::from_secs(75)),
            max_buf_size: None,
            tls: None,
            head_error: None,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, router: Router, opts: ServeOptions, shutdown: impl Future<Output = ()>) {
    let acceptor = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let opts = Arc::new(opts);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    let mut acceptor_loop = Acceptor::new(listener);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            c = acceptor_loop.accept() => c,
        };
        // Small request/response exchanges: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let (router, opts, stop, acceptor) = (router.clone(), opts.clone(), stop_rx.clone(), acceptor.clone());
        conns.spawn(async move {
            match acceptor {
                None => connection(tcp, peer, false, router, &opts, stop).await,
                Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => connection(tls, peer, true, router, &opts, stop).await,
                    Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
        while conns.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(true);
    while conns.join_next().await.is_some() {}
}

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

/// Where a connection is in its request cycle, shared by its reader, its service and its watchdog.
struct Activity {
    start: Instant,
    phase: AtomicU8,
    since_ms: AtomicU64,
    changed: Notify,
}

impl Activity {
    fn set(&self, phase: u8) {
        self.since_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
        self.changed.notify_one();
    }

    /// When the connection is to be closed in its current phase, and why.
    fn deadline(&self, opts: &ServeOptions) -> Option<(Instant, &'static str)> {
        let since = self.start + Duration::from_millis(self.since_ms.load(Ordering::Relaxed));
        match self.phase.load(Ordering::Acquire) {
            IDLE => opts.idle_timeout.map(|t| (since + t, "idle")),
            HEAD => opts.header_read_timeout.map(|t| (since + t, "no complete request head in time")),
            _ => None,
        }
    }
}

/// Marks the connection idle again when the response body is done (or dropped).
struct IdleOnDrop(Arc<Activity>);

impl Drop for IdleOnDrop {
    fn drop(&mut self) {
        self.0.set(IDLE);
    }
}

/// The connection's byte stream; the first byte read on an idle connection starts a request head.
/// With a [`HeadErrorHook`], what hyper writes while no request was accepted (its answer to a
/// head it refused) is replaced by the hook's response.
struct Tracked<IO> {
    io: IO,
    activity: Arc<Activity>,
    head_error: Option<HeadErrorHook>,
    /// The start of the current head (only with a hook).
    head: Vec<u8>,
    /// The replacement being written, and how much of it is out.
    replacement: Option<(Vec<u8>, usize)>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            let phase = self.activity.phase.load(Ordering::Acquire);
            if phase == IDLE {
                self.activity.set(HEAD);
                self.head.clear();
            }
            if phase != BUSY && self.head_error.is_some() && self.head.len() < HEAD_SAMPLE {
                let room = HEAD_SAMPLE - self.head.len();
                let new = &buf.filled()[before..];
                let take = new.len().min(room);
                self.head.extend_from_slice(&new[..take]);
            }
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> Tracked<IO> {
    /// Writes `buf`, or in its place the hook's answer when hyper answers a refused head.
    fn write_or_replace(&mut self, cx: &mut Context<'_>, buf: &[u8], len: usize) -> Poll<std::io::Result<usize>> {
        if self.replacement.is_none()
            && self.activity.phase.load(Ordering::Acquire) == HEAD
            && let Some(hook) = &self.head_error
        {
            let status = buf.get(9..12).and_then(|s| std::str::from_utf8(s).ok()?.parse().ok());
            if let Some(bytes) = status.and_then(|s| hook(s, &self.head)) {
                self.replacement = Some((bytes, 0));
            }
        }
        let Some((bytes, pos)) = &mut self.replacement else {
            return Pin::new(&mut self.io).poll_write(cx, buf);
        };
        while *pos < bytes.len() {
            match Pin::new(&mut self.io).poll_write(cx, &bytes[*pos..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *pos += n,
                other => return other,
            }
        }
        // hyper's own bytes are dropped: it closes the connection after such an answer.
        Poll::Ready(Ok(len))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.head_error.is_none() {
            return Pin::new(&mut self.io).poll_write(cx, buf);
        }
        self.write_or_replace(cx, buf, buf.len())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.head_error.is_none() || self.activity.phase.load(Ordering::Acquire) != HEAD {
            return Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        }
        let first = bufs.iter().find(|b| !b.is_empty()).map(|b| &b[..]).unwrap_or_default();
        let total = bufs.iter().map(|b| b.len()).sum();
        self.write_or_replace(cx, first, total)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

async fn connection<IO>(
    io: IO,
    peer: SocketAddr,
    tls: bool,
    router: Router,
    opts: &ServeOptions,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        start: Instant::now(),
        phase: AtomicU8::new(IDLE),
        since_ms: AtomicU64::new(0),
        changed: Notify::new(),
    });
    let svc = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            activity.set(BUSY);
            let guard = IdleOnDrop(activity.clone());
            req.extensions_mut().insert(ConnectInfo(peer));
            if tls {
                req.extensions_mut().insert(ViaTls);
            }
            let response = router.clone().oneshot(req);
            async move {
                let response = response.await?;
                Ok::<_, std::convert::Infallible>(response.map(move |body| {
                    Body::new(body.map_frame(move |frame| {
                        let _ = &guard;
                        frame
                    }))
                }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.header_read_timeout(None);
    if let Some(max) = opts.max_buf_size {
        builder.max_buf_size(max);
    }
    let tracked = Tracked {
        io,
        activity: activity.clone(),
        head_error: opts.head_error.clone(),
        head: Vec::new(),
        replacement: None,
    };
    let conn = builder.serve_connection(TokioIo::new(tracked), svc).with_upgrades();
    tokio::pin!(conn);
    loop {
        let deadline = activity.deadline(opts);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = activity.changed.notified() => {}
            _ = tokio::time::sleep_until(deadline.map(|d| d.0).unwrap_or_else(Instant::now)), if deadline.is_some() => {
                // Still in the same phase (a change would have moved the deadline)?
                if let Some((at, why)) = activity.deadline(opts)
                    && at <= Instant::now()
                {
                    tracing::debug!(%peer, "closing the connection: {why}");
                    return;
                }
            }
            _ = stopped(&mut stop) => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
                return;
            }
        }
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn serves_tls_with_connect_info_and_via_tls() {
        let dir = std::env::temp_dir().join(format!("emu-mns-listener-{}", std::process::id()));
        let (config, files) = crate::tls::self_signed(&dir, &[]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().fallback(
            |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: axum::extract::Request| async move {
                format!("{} {}", peer.ip(), req.extensions().get::<ViaTls>().is_some())
            },
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let opts = ServeOptions { tls: Some(config), ..ServeOptions::default() };
        let server = tokio::spawn(serve(listener, router, opts, async move {
            let _ = stopped.await;
        }));

        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&files.ca_cert).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut out = String::new();
        let _ = tls.read_to_string(&mut out).await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.ends_with("127.0.0.1 true"), "{out}");
        let _ = stop.send(());
        server.await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
