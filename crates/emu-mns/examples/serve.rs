//! A stand-alone MNS service, for running the real-SDK suites (tests/sdk/mns) before the
//! service is wired into the `alicom-emu` binary. Takes the binary's flags that the suites use:
//!
//! ```text
//! cargo run -p emu-mns --example serve -- [--config FILE] [--ephemeral-ports] [--ready-file FILE]
//!                                         [--data-dir DIR] [--tls]
//! ```
//!
//! The ready-file has `mns` (and `mns_tls` with `--tls`), `admin` (the same origin: the MNS
//! admin routes plus `POST /admin/sts` and `POST /admin/reset`), the default credentials, and no
//! `pop`: temporary credentials come from `POST /admin/sts` (`{"tenant", "lifetime_secs",
//! "scope": [queue, …]}`; `scope` is this harness's extension, standing in for
//! QueryTokenForMnsQueue).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use emu_core::accounts::TokenSettings;
use emu_core::{Config, Shared};
use emu_mns::{Mns, MnsConfig};
use serde_json::json;

const DEFAULT_TOML: &str = include_str!("../../../fixtures/default.toml");

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_table() && v.is_table() => merge(existing, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

struct Args {
    config: Option<PathBuf>,
    ready_file: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    ephemeral: bool,
    tls: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args { config: None, ready_file: None, data_dir: None, ephemeral: false, tls: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--config" => a.config = Some(it.next().context("--config needs a file")?.into()),
            "--ready-file" => a.ready_file = Some(it.next().context("--ready-file needs a path")?.into()),
            "--data-dir" => a.data_dir = Some(it.next().context("--data-dir needs a directory")?.into()),
            "--ephemeral-ports" => a.ephemeral = true,
            "--tls" => a.tls = true,
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(a)
}

fn load_config(file: Option<&PathBuf>) -> anyhow::Result<Config> {
    let mut value: toml::Value = toml::from_str(DEFAULT_TOML)?;
    if let Some(f) = file {
        let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        merge(&mut value, toml::from_str(&text)?);
    }
    if let Ok(mode) = std::env::var("ALICOM_EMU_POP__SIGNATURE") {
        merge(&mut value, toml::from_str(&format!("[pop]\nsignature = {mode:?}"))?);
    }
    let config: Config = value.try_into()?;
    config.validate().map_err(anyhow::Error::msg)?;
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber_init();
    let a = args()?;
    let config = load_config(a.config.as_ref())?;
    let port = if a.ephemeral { 0 } else { config.ports.mns };
    let listener = tokio::net::TcpListener::bind((config.server.bind.as_str(), port)).await?;
    let addr = listener.local_addr()?;
    let host = config.public_host();
    let token_settings = TokenSettings {
        mqtt_host: format!("{host}:0/mqtt"),
        mqtt_ws_port: 0,
        mqtt_tcp_port: 0,
        conference_topic: config.tokens.conference_topic.clone(),
        server_id: TokenSettings::server_id_for(&host),
        lifetime_ms: 3_600_000,
    };
    let key = config.default_access_key().cloned();
    let first = config.tenants[0].clone();
    let shared = Shared::new(config, token_settings);
    let mns = Mns::new(shared.clone(), MnsConfig::default(), a.data_dir.as_deref()).map_err(anyhow::Error::msg)?;

    let extra =
        Router::new().route("/admin/sts", post(issue_sts)).route("/admin/reset", post(reset)).with_state(mns.clone());
    let app = emu_mns::router(mns.clone()).merge(emu_mns::admin::router(mns.clone()));
    let app = extra.merge(app);

    let origin = format!("http://{host}:{}", addr.port());
    let mut ready = json!({
        "mns": origin,
        "admin": origin,
        "access_key_id": key.as_ref().map(|k| k.id.clone()).unwrap_or_default(),
        "access_key_secret": key.map(|k| k.secret).unwrap_or_default(),
        "tenant": first.name,
        "uid": first.uid,
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    if a.tls {
        let dir = a.data_dir.as_ref().map(|d| d.join("tls")).unwrap_or_else(emu_http::tls::default_dir);
        let (tls_config, files) =
            emu_http::tls::self_signed(&dir, std::slice::from_ref(&host)).map_err(anyhow::Error::msg)?;
        let tls_listener = tokio::net::TcpListener::bind((shared.config.server.bind.as_str(), 0)).await?;
        ready["mns_tls"] = json!(format!("https://{host}:{}", tls_listener.local_addr()?.port()));
        ready["tls_ca_cert"] = json!(files.ca_cert);
        let mut stop = stop_rx.clone();
        let router = app.clone();
        tasks.spawn(async move {
            emu_http::tls::serve(tls_listener, router, tls_config, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
        });
    }
    {
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let service = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, service)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        });
    }
    if let Some(path) = &a.ready_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&ready)?)?;
        std::fs::rename(&tmp, path)?;
    }
    eprintln!("emu-mns serve: {ready}");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    mns.shutdown();
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn issue_sts(State(mns): State<Arc<Mns>>, body: axum::body::Bytes) -> axum::response::Response {
    #[derive(serde::Deserialize, Default)]
    struct Body {
        tenant: Option<String>,
        lifetime_secs: Option<u64>,
        #[serde(default)]
        scope: Vec<String>,
    }
    let b: Body = if body.is_empty() { Body::default() } else { serde_json::from_slice(&body).unwrap_or_default() };
    let tenant =
        b.tenant.as_deref().and_then(|n| mns.shared.tenants.by_name(n)).map(|t| t.id).unwrap_or(emu_core::TenantId(0));
    let now = mns.shared.clock.now_ms();
    let c = mns.shared.tenants.issue_sts(tenant, now, b.lifetime_secs.unwrap_or(3600) * 1000, b.scope);
    axum::Json(json!({
        "accessKeyId": c.access_key_id,
        "accessKeySecret": c.access_key_secret,
        "securityToken": c.security_token,
        "expiresMs": c.expires_ms,
    }))
    .into_response()
}

async fn reset(State(mns): State<Arc<Mns>>) -> axum::response::Response {
    mns.reset();
    mns.shared.reset();
    axum::Json(json!({"reset": true})).into_response()
}

fn tracing_subscriber_init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
