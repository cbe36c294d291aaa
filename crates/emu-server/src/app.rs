//! Wiring: bind every listener, build the shared state, serve until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use emu_admin::Admin;
use emu_core::accounts::TokenSettings;
use emu_core::retention::Limit;
use emu_core::{Config, Shared};
use emu_http::ServeOptions;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Every endpoint a client needs, and the default credentials: the ready-file's content.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoints {
    pub pop: String,
    pub admin: String,
    pub mqtt_ws: String,
    pub mqtt_tcp: String,
    pub mns: String,
    /// The TURN server handed to browsers (`turn:host:port?transport=udp`), when enabled.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub turn: String,
    /// The media server's UDP address (its ICE candidate).
    pub media_udp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pop_tls: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mns_tls: Option<String>,
    /// The CA certificate to trust for the TLS listeners (when it was generated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_cert: Option<String>,
    pub access_key_id: String,
    pub access_key_secret: String,
    pub tenant: String,
    pub uid: String,
}

/// A running emulator. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    pub endpoints: Endpoints,
    pub shared: Shared,
    pub admin: Arc<Admin>,
    pub gateway: Arc<emu_gateway::Hub>,
    pub calls: emu_calls::DriverHandle,
    pub mns: Arc<emu_mns::Mns>,
    pub media: Arc<emu_media::MediaServer>,
    /// A recordings directory made for this run only (no data dir): removed at shutdown.
    temp_recordings: Option<std::path::PathBuf>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits for every listener.
    pub async fn shutdown(mut self) {
        self.media.shutdown().await;
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        if let Some(dir) = self.temp_recordings.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Resolves when any listener stops on its own (it should not).
    pub async fn wait(&mut self) {
        self.tasks.join_next().await;
    }
}

/// An emulator dropped without `shutdown` (a test that ends) still removes the recordings
/// directory it made for itself.
impl Drop for Running {
    fn drop(&mut self) {
        if let Some(dir) = self.temp_recordings.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn bind(config: &Config, port: u16, what: &str) -> anyhow::Result<TcpListener> {
    let addr = format!("{}:{port}", config.server.bind);
    TcpListener::bind(&addr).await.with_context(|| format!("cannot listen on {addr} ({what})"))
}

/// Binds every listener and starts serving. Returns once all of them accept connections.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let pop_listener = bind(&config, config.ports.pop, "pop").await?;
    let admin_listener = bind(&config, config.ports.admin, "admin").await?;
    let mqtt_ws_listener = bind(&config, config.ports.mqtt_ws, "mqtt_ws").await?;
    let mqtt_tcp_listener = bind(&config, config.ports.mqtt_tcp, "mqtt_tcp").await?;
    let mns_listener = bind(&config, config.ports.mns, "mns").await?;
    let tls_listeners = if config.tls.enabled {
        Some((
            bind(&config, config.tls.pop_port, "pop_tls").await?,
            bind(&config, config.tls.mns_port, "mns_tls").await?,
        ))
    } else {
        None
    };
    let port = |l: &TcpListener| l.local_addr().map(|a: SocketAddr| a.port()).unwrap_or(0);
    let (pop_port, admin_port, mqtt_ws_port, mqtt_tcp_port) =
        (port(&pop_listener), port(&admin_listener), port(&mqtt_ws_listener), port(&mqtt_tcp_listener));

    let host = config.public_host();
    let token_settings = token_settings(&config, &host, mqtt_ws_port, mqtt_tcp_port);
    let (media_cfg, temp_recordings) = media_config(&config, &host, admin_port)?;
    let default_key = config.default_access_key().cloned();
    let first_tenant = config.tenants[0].clone();
    let shared = Shared::new(config, token_settings);
    let (media, media_events) = emu_media::MediaServer::start(media_cfg, shared.clock.clone()).await?;
    let pop = emu_pop::Pop::new(shared.clone());
    let admin = Admin::new(shared.clone(), pop.clone());
    let data_dir = Some(std::path::PathBuf::from(&shared.config.server.data_dir)).filter(|d| !d.as_os_str().is_empty());
    let mns = emu_mns::Mns::new(shared.clone(), shared.config.mns.clone(), data_dir.as_deref())
        .map_err(|e| anyhow::anyhow!("MNS: {e}"))?;
    {
        admin.resets(mns.clone());
        let for_pop = mns.clone();
        pop.set_queue_hook(Arc::new(move |tenant, queue| {
            if let Err(e) = for_pop.ensure_queue_now(tenant, queue) {
                tracing::warn!(queue, "cannot create the alicom queue: {e}");
            }
        }));
    }
    let tls = match tls_listeners {
        Some(_) => Some(tls_server_config(&shared.config, data_dir.as_deref(), &host)?),
        None => None,
    };
    let gateway = emu_gateway::Hub::new(shared.clone(), format!("{host}:{mqtt_ws_port}"));
    admin.resets(gateway.clone());

    let endpoints = Endpoints {
        pop: format!("http://{host}:{pop_port}"),
        admin: format!("http://{host}:{admin_port}"),
        mqtt_ws: format!("ws://{host}:{mqtt_ws_port}/mqtt"),
        mqtt_tcp: format!("mqtt://{host}:{mqtt_tcp_port}"),
        mns: format!("http://{host}:{}", port(&mns_listener)),
        turn: media.turn_url().unwrap_or_default(),
        media_udp: media.candidate_addr().to_string(),
        pop_tls: tls_listeners.as_ref().map(|(p, _)| format!("https://{host}:{}", port(p))),
        mns_tls: tls_listeners.as_ref().map(|(_, m)| format!("https://{host}:{}", port(m))),
        tls_ca_cert: tls.as_ref().and_then(|(_, ca)| ca.as_ref().map(|p| p.display().to_string())),
        access_key_id: default_key.as_ref().map(|k| k.id.clone()).unwrap_or_default(),
        access_key_secret: default_key.map(|k| k.secret).unwrap_or_default(),
        tenant: first_tenant.name,
        uid: first_tenant.uid,
    };

    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let (calls, driver_task) =
        emu_calls::spawn(shared.clone(), gateway.clone(), mns.clone(), media.clone(), media_events, stop_rx.clone())?;
    tasks.spawn(async move {
        let _ = driver_task.await;
    });
    admin.resets(Arc::new(calls.clone()));
    admin.advances_with(Arc::new(calls.clone()));
    let health = emu_admin::health_router(admin.clone());
    let http_opts = ServeOptions::from_config(&shared.config.server);
    // A request head up to 4 × pop.max_body_bytes reaches emu-pop, which refuses a query longer
    // than pop.max_body_bytes in the vendor's format (hyper alone would answer a bare 431).
    let pop_head = shared.config.pop.max_body_bytes.saturating_mul(4).saturating_add(64 * 1024);
    let refused = pop.clone();
    let pop_opts = ServeOptions {
        max_buf_size: Some(pop_head),
        head_error: Some(std::sync::Arc::new(move |status, head| emu_pop::refused_head(&refused, status, head))),
        ..http_opts.clone()
    };
    let pop_router = emu_pop::router(pop.clone()).merge(health.clone());
    serve_http(&mut tasks, pop_listener, pop_router.clone(), pop_opts.clone(), stop_rx.clone());
    serve_http(&mut tasks, mns_listener, emu_mns::router(mns.clone()), http_opts.clone(), stop_rx.clone());
    if let (Some((pop_tls, mns_tls)), Some((tls_config, _))) = (tls_listeners, &tls) {
        let pop_tls_opts = ServeOptions { tls: Some(tls_config.clone()), ..pop_opts };
        let mns_tls_opts = ServeOptions { tls: Some(tls_config.clone()), ..http_opts.clone() };
        serve_http(&mut tasks, pop_tls, pop_router, pop_tls_opts, stop_rx.clone());
        serve_http(&mut tasks, mns_tls, emu_mns::router(mns.clone()), mns_tls_opts, stop_rx.clone());
    }
    {
        // Ends waiting long polls so SIGTERM exits at once.
        let (mns, mut stop) = (mns.clone(), stop_rx.clone());
        tasks.spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            mns.shutdown();
        });
    }
    let admin_routes = emu_admin::router(emu_admin::Components {
        admin: admin.clone(),
        gateway: gateway.clone(),
        calls: calls.clone(),
        mns: mns.clone(),
        media: media.clone(),
    });
    let admin_routes = emu_admin::secure(admin_routes, &shared.config);
    serve_http(&mut tasks, admin_listener, admin_routes, http_opts, stop_rx.clone());
    serve(
        &mut tasks,
        "mqtt_ws",
        mqtt_ws_listener,
        emu_gateway::ws_router(gateway.clone()).merge(health),
        stop_rx.clone(),
    );
    tasks.spawn(emu_gateway::serve_tcp(gateway.clone(), mqtt_tcp_listener, stop_rx.clone()));
    tasks.spawn(emu_gateway::run_background(gateway.clone(), shared.clone(), stop_rx.clone()));

    spawn_housekeeping(&mut tasks, shared.clone(), mns.clone(), stop_rx);
    admin.set_ready(serde_json::to_value(&endpoints).unwrap_or_default());
    tracing::info!(pop = %endpoints.pop, admin = %endpoints.admin, mqtt_ws = %endpoints.mqtt_ws, mqtt_tcp = %endpoints.mqtt_tcp, "alicom-emu ready");
    tracing::info!(mns = %endpoints.mns, "MNS ready");
    Ok(Running { endpoints, shared, admin, gateway, calls, mns, media, temp_recordings, stop, tasks })
}

fn serve(
    tasks: &mut JoinSet<()>,
    name: &'static str,
    listener: TcpListener,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    tasks.spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).with_graceful_shutdown(shutdown).await {
            tracing::error!(listener = name, "listener failed: {e}");
        }
    });
}

/// An HTTP listener with header-read and idle timeouts (POP, admin, MNS; plain or TLS).
fn serve_http(
    tasks: &mut JoinSet<()>,
    listener: TcpListener,
    router: axum::Router,
    opts: ServeOptions,
    mut stop: watch::Receiver<bool>,
) {
    tasks.spawn(emu_http::serve(listener, router, opts, async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
}

/// Periodic clean-up of expired state, so memory stays flat under sustained load.
fn spawn_housekeeping(
    tasks: &mut JoinSet<()>,
    shared: Shared,
    mns: Arc<emu_mns::Mns>,
    mut stop: watch::Receiver<bool>,
) {
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    shared.directory.purge_expired_tokens(shared.clock.now_ms());
                    mns.sweep();
                }
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    });
}

type TlsSetup = (Arc<emu_http::tls::ServerConfig>, Option<std::path::PathBuf>);

/// The configured certificate, or a self-signed one generated once (its CA is for the user to
/// trust).
fn tls_server_config(config: &Config, data_dir: Option<&std::path::Path>, host: &str) -> anyhow::Result<TlsSetup> {
    let t = &config.tls;
    if !t.cert_file.is_empty() {
        let c = emu_http::tls::from_pem_files(std::path::Path::new(&t.cert_file), std::path::Path::new(&t.key_file))?;
        return Ok((c, None));
    }
    let dir = data_dir.map(|d| d.join("tls")).unwrap_or_else(emu_http::tls::default_dir);
    let (c, files) = emu_http::tls::self_signed(&dir, &[host.to_string()])?;
    if files.generated {
        tracing::info!(ca = %files.ca_cert.display(), "generated a self-signed TLS certificate: trust this CA");
    }
    Ok((c, Some(files.ca_cert)))
}

/// What tokens say and how long they last, once the MQTT ports are known.
pub fn token_settings(config: &Config, host: &str, mqtt_ws_port: u16, mqtt_tcp_port: u16) -> TokenSettings {
    TokenSettings {
        mqtt_host: format!("{host}:{mqtt_ws_port}/mqtt"),
        mqtt_ws_port,
        mqtt_tcp_port,
        conference_topic: config.tokens.conference_topic.clone(),
        server_id: TokenSettings::server_id_for(host),
        lifetime_ms: config.tokens.lifetime_secs.saturating_mul(1000),
    }
}

/// The media server's settings: recordings go to `media.recordings_dir`, else
/// `<data_dir>/recordings`, else a temporary directory of this run (returned, to be removed at
/// shutdown; only its path is made here); download URLs name the admin listener.
pub fn media_config(
    config: &Config,
    host: &str,
    admin_port: u16,
) -> anyhow::Result<(emu_media::MediaConfig, Option<std::path::PathBuf>)> {
    let m = &config.media;
    let (recordings_dir, temp) = if !m.recordings_dir.is_empty() {
        (std::path::PathBuf::from(&m.recordings_dir), None)
    } else if !config.server.data_dir.is_empty() {
        (std::path::Path::new(&config.server.data_dir).join("recordings"), None)
    } else {
        static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("alicom-emu-recordings-{}-{n}", std::process::id()));
        (dir.clone(), Some(dir))
    };
    let media = emu_media::MediaConfig {
        bind: config
            .server
            .bind
            .parse()
            .with_context(|| format!("server.bind {:?} is not an IP address", config.server.bind))?,
        public_host: config.server.public_host.clone(),
        udp_port: config.ports.media,
        workers: m.workers,
        turn_port: config.ports.turn,
        turn_enabled: m.turn,
        turn_realm: m.turn_realm.clone(),
        turn_credential_ttl: std::time::Duration::from_secs(m.turn_credential_ttl_secs),
        recordings_dir,
        audio_dir: m.audio_dir.clone().into(),
        record_by_default: emu_media::RecordDefaults {
            voip2pstn: m.record_voip2pstn,
            voip2voip: m.record_voip2voip,
            pstn2voip: m.record_pstn2voip,
            pstn2pstn: false,
        },
        http_base: format!("http://{host}:{admin_port}"),
        finished_channels: Limit::new(config.retention.finished_channels, config.retention.finished_channel_bytes),
        recordings: Limit::new(config.retention.recordings, config.retention.recording_bytes),
    };
    Ok((media, temp))
}
