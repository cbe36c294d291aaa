//! Throughput of the MNS HTTP API: signed SendMessage → ReceiveMessage → DeleteMessage cycles
//! over keep-alive connections, against the service in a separate process, so that /proc tells
//! the server's CPU time apart from the load generator's.
//!
//! ```text
//! alicom-bench mns [--seconds 10] [--clients 32] [--batch 1..16]
//!     [--data-dir DIR] [--shared-queue] [--client-threads 1] [--json]
//! ```
//!
//! Results and method: docs/benchmarks.md, "Media server and MNS".
//!
//! * `alicom-bench` starts itself again with `mns --server` (and `--data-dir` when given): the MNS router
//!   (`emu_mns::router`) served by `axum::serve` on 127.0.0.1, a multi-threaded tokio runtime with
//!   one worker per core and logging at `warn` — as `alicom-emu` serves it. It prints its address
//!   and runs until its stdin closes. With `--data-dir`, every send and delete is committed to
//!   `<DIR>/mns.redb` (fsync, group commit) before it is answered.
//! * `--clients` keep-alive HTTP/1.1 connections (hyper, `TCP_NODELAY`), one task and one request
//!   in flight each. Each client creates its queue `bench-<n>` (one queue `bench` for all with
//!   `--shared-queue`) and then loops: SendMessage, ReceiveMessage (no wait), DeleteMessage with
//!   the receipt handle just received. `--batch N` (2–16) uses BatchSendMessage /
//!   BatchReceiveMessage (`numOfMessages=N`) / BatchDeleteMessage instead.
//! * Every request carries an MNS V2 signature (`Authorization: MNS testAK:<HMAC-SHA1>`),
//!   `Date`, `x-mns-version` and, with a body, `Content-MD5` and `Content-Type`; the server
//!   verifies them (`pop.signature = "enforce"`, the default). The send and receive requests are
//!   the same every time and are signed once; each delete is signed when its handle is known.
//! * A message counts once it has been sent, received (its body checked) and deleted (HTTP 204).
//!   Any other answer is an error (counted; the first one is printed).
//!
//! Prints messages/s, requests/s, p50/p99 of each request, and the CPU time per message of the
//! server process and of the load generator (`/proc/<pid>/stat` utime + stime over the measured
//! window), what the rest of the machine used meanwhile, and the server's RSS afterwards.

use crate::procstat::{cpu_secs, machine_busy_secs, rss_mib};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use base64::Engine;
use bytes::Bytes;
use emu_core::accounts::TokenSettings;
use emu_core::{Config, Shared};
use emu_mns::{Mns, MnsConfig, signature};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::json;

const DEFAULT_TOML: &str = include_str!("../../fixtures/default.toml");
const ACCESS_KEY_ID: &str = "testAK";
const ACCESS_KEY_SECRET: &str = "testSecret";
/// A 28-byte base64 JSON body, like a small alicom receipt.
const BODY: &str = "eyJjaGFubmVsSWQiOiJiZW5jaCJ9";

struct Args {
    server: bool,
    seconds: u64,
    clients: usize,
    batch: usize,
    data_dir: Option<PathBuf>,
    shared_queue: bool,
    client_threads: usize,
    json: bool,
}

const USAGE: &str = "usage (docs/benchmarks.md): alicom-bench mns [--seconds 10] [--clients 32] \
                     [--batch 1..16] [--data-dir DIR] [--shared-queue] [--client-threads 1] [--json]";

fn args(argv: Vec<String>) -> anyhow::Result<Args> {
    let mut a = Args {
        server: false,
        seconds: 10,
        clients: 32,
        batch: 1,
        data_dir: None,
        shared_queue: false,
        client_threads: 1,
        json: false,
    };
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--server" => a.server = true,
            "--seconds" => a.seconds = value("--seconds")?.parse()?,
            "--clients" => a.clients = value("--clients")?.parse()?,
            "--batch" => a.batch = value("--batch")?.parse()?,
            "--data-dir" => a.data_dir = Some(value("--data-dir")?.into()),
            "--shared-queue" => a.shared_queue = true,
            "--client-threads" => a.client_threads = value("--client-threads")?.parse()?,
            "--json" => a.json = true,
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if !(1..=16).contains(&a.batch) {
        bail!("--batch is 1 to 16");
    }
    if a.clients == 0 || a.client_threads == 0 || a.seconds == 0 {
        bail!("--clients, --client-threads and --seconds must be at least 1");
    }
    Ok(a)
}

/// `alicom-bench mns [options]`.
pub fn run(argv: Vec<String>) -> anyhow::Result<()> {
    let a = args(argv)?;
    if a.server { server(&a) } else { client(&a) }
}

// ---------------------------------------------------------------------------------------------
// the server process

fn server(a: &Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let config: Config = toml::from_str(DEFAULT_TOML)?;
        let ts = TokenSettings {
            mqtt_host: String::new(),
            mqtt_ws_port: 0,
            mqtt_tcp_port: 0,
            conference_topic: String::new(),
            server_id: String::new(),
            lifetime_ms: 1,
        };
        let mns = Mns::new(Shared::new(config, ts), MnsConfig::default(), a.data_dir.as_deref())
            .map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let service = emu_mns::router(mns.clone()).into_make_service_with_connect_info::<SocketAddr>();
        // Stops when the parent closes our stdin.
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            let _ = stop_tx.send(());
        });
        axum::serve(listener, service)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await?;
        mns.shutdown();
        anyhow::Ok(())
    })?;
    // Dropping the runtime and the service lets the store finish its last commit.
    drop(runtime);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// /proc

// ---------------------------------------------------------------------------------------------
// the load generator

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: &str) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// A signed request: headers (with `Authorization`), method, target and body.
#[derive(Clone)]
struct Signed {
    method: Method,
    target: String,
    headers: HeaderMap,
    body: Bytes,
}

fn sign(host: &HeaderValue, date: &HeaderValue, method: Method, target: String, body: Option<String>) -> Signed {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, host.clone());
    h.insert(header::DATE, date.clone());
    h.insert("x-mns-version", HeaderValue::from_static("2015-06-06"));
    if let Some(b) = &body {
        // Base64 of the hex MD5, as the Python and Node SDKs send it.
        let md5 = base64::engine::general_purpose::STANDARD
            .encode(signature::md5_upper_hex(b.as_bytes()).to_ascii_lowercase());
        h.insert("content-md5", HeaderValue::from_str(&md5).expect("base64"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml;charset=UTF-8"));
    }
    let sts = signature::string_to_sign(method.as_str(), &h, &target);
    let auth = format!("MNS {ACCESS_KEY_ID}:{}", signature::sign(ACCESS_KEY_SECRET, &sts));
    h.insert(header::AUTHORIZATION, HeaderValue::from_str(&auth).expect("ascii"));
    Signed { method, target, headers: h, body: body.map(Bytes::from).unwrap_or_default() }
}

async fn call(sender: &mut Sender, s: &Signed) -> anyhow::Result<(StatusCode, Bytes)> {
    sender.ready().await?;
    let mut req = Request::builder().method(s.method.clone()).uri(s.target.as_str()).body(Full::new(s.body.clone()))?;
    *req.headers_mut() = s.headers.clone();
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

/// The texts of every `<name>…</name>` in an XML body.
fn tags<'a>(body: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    body.match_indices(&open)
        .filter_map(|(i, _)| {
            let s = i + open.len();
            body[s..].find(&close).map(|e| &body[s..s + e])
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    messages: u64,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    /// Per request kind (send, receive, delete), µs.
    lat: [Vec<u32>; 3],
}

impl Tally {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }
}

fn micros(t: Instant) -> u32 {
    u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX)
}

struct Worker {
    addr: String,
    host: HeaderValue,
    date: HeaderValue,
    send: Signed,
    receive: Signed,
    path: String,
    batch: usize,
}

impl Worker {
    async fn run(self, mut sender: Sender, deadline: Instant) -> anyhow::Result<Tally> {
        let mut t = Tally::default();
        for l in &mut t.lat {
            l.reserve(1 << 16);
        }
        while Instant::now() < deadline {
            if let Err(e) = self.cycle(&mut sender, &mut t).await {
                t.error(format!("{e:#}"));
                sender = connect(&self.addr).await?;
            }
        }
        Ok(t)
    }

    /// One send → receive → delete; request errors are counted, transport errors returned.
    async fn cycle(&self, sender: &mut Sender, t: &mut Tally) -> anyhow::Result<()> {
        let at = Instant::now();
        let (status, body) = call(sender, &self.send).await?;
        t.requests += 1;
        if status != StatusCode::CREATED {
            t.error(format!("send: HTTP {status}: {}", String::from_utf8_lossy(&body)));
            return Ok(());
        }
        t.lat[0].push(micros(at));

        let at = Instant::now();
        let (status, body) = call(sender, &self.receive).await?;
        t.requests += 1;
        let text = String::from_utf8_lossy(&body);
        let handles = tags(&text, "ReceiptHandle");
        let bodies = tags(&text, "MessageBody");
        if status != StatusCode::OK || handles.is_empty() || bodies.iter().any(|b| *b != BODY) {
            t.error(format!("receive: HTTP {status}: {text}"));
            return Ok(());
        }
        t.lat[1].push(micros(at));

        let delete = if self.batch == 1 {
            let target = format!("{}?ReceiptHandle={}", self.path, handles[0]);
            sign(&self.host, &self.date, Method::DELETE, target, None)
        } else {
            let list: String = handles.iter().map(|h| format!("<ReceiptHandle>{h}</ReceiptHandle>")).collect();
            let body = format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><ReceiptHandles xmlns="http://mns.aliyuncs.com/doc/v1/">{list}</ReceiptHandles>"#
            );
            sign(&self.host, &self.date, Method::DELETE, self.path.clone(), Some(body))
        };
        let at = Instant::now();
        let (status, body) = call(sender, &delete).await?;
        t.requests += 1;
        if status != StatusCode::NO_CONTENT {
            t.error(format!("delete: HTTP {status}: {}", String::from_utf8_lossy(&body)));
            return Ok(());
        }
        t.lat[2].push(micros(at));
        t.messages += handles.len() as u64;
        Ok(())
    }
}

fn http_date() -> String {
    // RFC 7231 IMF-fixdate, from the system clock.
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|d| d.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_else(|| "Mon, 01 Jan 2024 00:00:00 GMT".into())
}

struct Outcome {
    tally: Tally,
    seconds: f64,
    server_cpu: Option<f64>,
    client_cpu: Option<f64>,
    others_cpu: Option<f64>,
}

async fn load(a: &Args, addr: &str, server_pid: &str) -> anyhow::Result<Outcome> {
    let host = HeaderValue::from_str(addr)?;
    let date = HeaderValue::from_str(&http_date())?;
    let message = format!("<Message><MessageBody>{BODY}</MessageBody><Priority>8</Priority></Message>");
    let send_body = if a.batch == 1 {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>{}"#,
            message.replace("<Message>", r#"<Message xmlns="http://mns.aliyuncs.com/doc/v1/">"#)
        )
    } else {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Messages xmlns="http://mns.aliyuncs.com/doc/v1/">{}</Messages>"#,
            message.repeat(a.batch)
        )
    };
    let mut workers = Vec::with_capacity(a.clients);
    for c in 0..a.clients {
        let mut sender = connect(addr).await?;
        let queue = if a.shared_queue { "bench".to_string() } else { format!("bench-{c}") };
        if c == 0 || !a.shared_queue {
            let create = sign(&host, &date, Method::PUT, format!("/queues/{queue}"), Some("<Queue/>".into()));
            let (s, b) = call(&mut sender, &create).await?;
            if s != StatusCode::CREATED && s != StatusCode::NO_CONTENT {
                bail!("CreateQueue {queue}: HTTP {s}: {}", String::from_utf8_lossy(&b));
            }
        }
        let path = format!("/queues/{queue}/messages");
        let recv_target = if a.batch == 1 { path.clone() } else { format!("{path}?numOfMessages={}", a.batch) };
        workers.push((
            Worker {
                addr: addr.to_string(),
                host: host.clone(),
                date: date.clone(),
                send: sign(&host, &date, Method::POST, path.clone(), Some(send_body.clone())),
                receive: sign(&host, &date, Method::GET, recv_target, None),
                path,
                batch: a.batch,
            },
            sender,
        ));
    }
    let cpu = || (cpu_secs(server_pid), cpu_secs("self"), machine_busy_secs());
    let before = cpu();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.seconds);
    let handles: Vec<_> = workers.into_iter().map(|(w, s)| tokio::spawn(w.run(s, deadline))).collect();
    let mut total = Tally::default();
    for h in handles {
        let t = h.await??;
        total.messages += t.messages;
        total.requests += t.requests;
        total.errors += t.errors;
        total.first_error = total.first_error.or(t.first_error);
        for (all, mine) in total.lat.iter_mut().zip(t.lat) {
            all.extend(mine);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = cpu();
    let d = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
    let (server_cpu, client_cpu, machine) = (d(after.0, before.0), d(after.1, before.1), d(after.2, before.2));
    let others_cpu = machine.map(|m| (m - server_cpu.unwrap_or(0.0) - client_cpu.unwrap_or(0.0)).max(0.0));
    Ok(Outcome { tally: total, seconds, server_cpu, client_cpu, others_cpu })
}

fn client(a: &Args) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("mns").arg("--server").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    if let Some(d) = &a.data_dir {
        cmd.arg("--data-dir").arg(d);
    }
    let mut child = cmd.spawn().context("cannot start the server process")?;
    let server_pid = child.id().to_string();
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
    let addr = line.trim().strip_prefix("listening ").context("the server did not start")?.to_string();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(a.client_threads).enable_all().build()?;
    let r = runtime.block_on(load(a, &addr, &server_pid));
    let server_rss = rss_mib(&server_pid);
    drop(child.stdin.take()); // the server stops
    let status = child.wait()?;
    let r = r?;
    if !status.success() {
        eprintln!("warning: the server exited with {status}");
    }

    let mut t = r.tally;
    for l in &mut t.lat {
        l.sort_unstable();
    }
    let pct = |v: &[u32], p: usize| {
        v.get((v.len() * p / 100).min(v.len().saturating_sub(1))).map_or(0.0, |&us| us as f64 / 1000.0)
    };
    let per_msg =
        |cpu: Option<f64>| cpu.filter(|_| t.messages > 0).map(|s| (s * 1e7 / t.messages as f64).round() / 10.0);
    let (mps, rps) = (t.messages as f64 / r.seconds, t.requests as f64 / r.seconds);
    let mode = match (&a.data_dir, a.shared_queue) {
        (Some(_), false) => "data dir",
        (Some(_), true) => "data dir, one shared queue",
        (None, false) => "in memory",
        (None, true) => "in memory, one shared queue",
    };
    let mut summary = format!(
        "mns ({mode}, batch {}): {} messages sent+received+deleted in {:.2} s over {} connections ({} client threads): {mps:.0} messages/s, {rps:.0} requests/s, {} errors; p50/p99 ms send {:.2}/{:.2} receive {:.2}/{:.2} delete {:.2}/{:.2}",
        a.batch,
        t.messages,
        r.seconds,
        a.clients,
        a.client_threads,
        t.errors,
        pct(&t.lat[0], 50),
        pct(&t.lat[0], 99),
        pct(&t.lat[1], 50),
        pct(&t.lat[1], 99),
        pct(&t.lat[2], 50),
        pct(&t.lat[2], 99),
    );
    if let Some(us) = per_msg(r.server_cpu) {
        summary.push_str(&format!("; server CPU {us} µs/message ({:.2} s)", r.server_cpu.unwrap_or(0.0)));
    }
    if let Some(us) = per_msg(r.client_cpu) {
        summary.push_str(&format!(", load generator CPU {us} µs/message"));
    }
    if let Some(o) = r.others_cpu {
        summary.push_str(&format!(", rest of the machine {o:.2} CPU-s"));
    }
    if let Some(m) = server_rss {
        summary.push_str(&format!(", server RSS {m:.1} MiB"));
    }
    if a.json {
        eprintln!("{summary}");
        let v = json!({
            "mode": mode, "batch": a.batch, "connections": a.clients, "client_threads": a.client_threads,
            "messages": t.messages, "requests": t.requests, "errors": t.errors, "seconds": r.seconds,
            "messages_per_s": mps.round(), "requests_per_s": rps.round(),
            "send_ms": [pct(&t.lat[0], 50), pct(&t.lat[0], 99)],
            "receive_ms": [pct(&t.lat[1], 50), pct(&t.lat[1], 99)],
            "delete_ms": [pct(&t.lat[2], 50), pct(&t.lat[2], 99)],
            "server_cpu_us_per_message": per_msg(r.server_cpu), "client_cpu_us_per_message": per_msg(r.client_cpu),
            "server_cpu_s": r.server_cpu, "client_cpu_s": r.client_cpu, "others_cpu_s": r.others_cpu,
            "server_rss_mib": server_rss,
        });
        println!("{v}");
    } else {
        println!("{summary}");
    }
    if let Some(e) = t.first_error {
        eprintln!("first error: {e}");
    }
    Ok(())
}
