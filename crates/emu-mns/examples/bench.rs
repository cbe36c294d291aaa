//! Throughput of the MNS HTTP API: signed SendMessage → ReceiveMessage → DeleteMessage cycles
//! from concurrent clients against an in-process service (real clock), on one machine.
//!
//! ```text
//! cargo run --release -p emu-mns --example bench -- [--seconds 10] [--clients 32] [--batch 1|16] [--data-dir DIR]
//! ```
//!
//! `--batch 16` uses BatchSendMessage / BatchReceiveMessage / BatchDeleteMessage (16 messages
//! per request). Prints messages (each sent, received and deleted) per second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;
use emu_core::accounts::TokenSettings;
use emu_core::{Config, Shared};
use emu_mns::{Mns, MnsConfig, signature};

const DEFAULT_TOML: &str = include_str!("../../../fixtures/default.toml");

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(&self, method: reqwest::Method, target: &str, body: Option<String>) -> (u16, String) {
        let mut h = HeaderMap::new();
        h.insert("date", HeaderValue::from_static("Mon, 01 Jan 2024 00:00:00 GMT"));
        h.insert("x-mns-version", HeaderValue::from_static("2015-06-06"));
        if let Some(b) = &body {
            let md5 =
                base64::engine::general_purpose::STANDARD.encode(signature::md5_upper_hex(b.as_bytes()).to_lowercase());
            h.insert("content-md5", HeaderValue::from_str(&md5).unwrap());
            h.insert("content-type", HeaderValue::from_static("text/xml;charset=UTF-8"));
        }
        let sts = signature::string_to_sign(method.as_str(), &h, target);
        let auth = format!("MNS testAK:{}", signature::sign("testSecret", &sts));
        h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        let r = self
            .http
            .request(method, format!("{}{target}", self.base))
            .headers(h)
            .body(body.unwrap_or_default())
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }
}

fn tags<'a>(body: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    body.match_indices(&open)
        .filter_map(|(i, _)| {
            let s = i + open.len();
            body[s..].find(&close).map(|e| &body[s..s + e])
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut seconds = 10u64;
    let mut clients = 32usize;
    let mut batch = 1usize;
    let mut data_dir: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().unwrap_or_default().parse()?,
            "--clients" => clients = args.next().unwrap_or_default().parse()?,
            "--batch" => batch = args.next().unwrap_or_default().parse()?,
            "--data-dir" => data_dir = args.next().map(Into::into),
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    anyhow::ensure!((1..=16).contains(&batch), "--batch is 1 to 16");
    let config: Config = toml::from_str(DEFAULT_TOML)?;
    let ts = TokenSettings {
        mqtt_host: String::new(),
        mqtt_ws_port: 0,
        mqtt_tcp_port: 0,
        conference_topic: String::new(),
        server_id: String::new(),
        lifetime_ms: 1,
    };
    let mns =
        Mns::new(Shared::new(config, ts), MnsConfig::default(), data_dir.as_deref()).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = emu_mns::router(mns.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build()?;
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = Client { http: http.clone(), base: base.clone() };
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let q = format!("bench-{c}");
            let (s, b) = client.call(reqwest::Method::PUT, &format!("/queues/{q}"), Some("<Queue/>".into())).await;
            assert!(s == 201 || s == 204, "{s} {b}");
            let path = format!("/queues/{q}/messages");
            let send_body = if batch == 1 {
                "<Message><MessageBody>eyJjaGFubmVsSWQiOiJiZW5jaCJ9</MessageBody></Message>".to_string()
            } else {
                let one = "<Message><MessageBody>eyJjaGFubmVsSWQiOiJiZW5jaCJ9</MessageBody></Message>";
                format!("<Messages>{}</Messages>", one.repeat(batch))
            };
            let recv = if batch == 1 { path.clone() } else { format!("{path}?numOfMessages={batch}") };
            while Instant::now() < deadline {
                let (s, b) = client.call(reqwest::Method::POST, &path, Some(send_body.clone())).await;
                assert_eq!(s, 201, "{b}");
                let (s, b) = client.call(reqwest::Method::GET, &recv, None).await;
                assert_eq!(s, 200, "{b}");
                let handles = tags(&b, "ReceiptHandle");
                if batch == 1 {
                    let (s, b) = client
                        .call(reqwest::Method::DELETE, &format!("{path}?ReceiptHandle={}", handles[0]), None)
                        .await;
                    assert_eq!(s, 204, "{b}");
                } else {
                    let body: String = handles.iter().map(|h| format!("<ReceiptHandle>{h}</ReceiptHandle>")).collect();
                    let (s, b) = client
                        .call(reqwest::Method::DELETE, &path, Some(format!("<ReceiptHandles>{body}</ReceiptHandles>")))
                        .await;
                    assert_eq!(s, 204, "{b}");
                }
                done.fetch_add(handles.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "{n} messages sent+received+deleted in {elapsed:.1} s by {clients} clients (batch {batch}{}): {:.0} messages/s, {:.0} requests/s",
        if data_dir.is_some() { ", durable" } else { "" },
        n as f64 / elapsed,
        n as f64 * 3.0 / batch as f64 / elapsed
    );
    mns.shutdown();
    Ok(())
}
