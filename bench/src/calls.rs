//! `bench calls`: call setups per second, signalling only, over pairs of virtual SDK devices
//! (VoIP→VoIP) or single devices calling instantly answering simulated phones (VoIP→PSTN).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use serde_json::{Value, json};

use emu_testkit::load_device::{Account, Conn, Frame, STEP_TIMEOUT, media_signal};

use crate::common::{
    CpuUse, Emulator, Target, authority_of, client_runtime, cpu_delta, cpu_pair, get_json, per_op_us, percentile_ms,
    provision, report, round3, run_id,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Voip,
    Pstn,
}

#[derive(Debug, Args)]
pub struct CallsArgs {
    /// How long to start calls (calls in progress at the end are completed, not counted twice).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Calls in progress at once: pairs of devices (voip) or devices with their own phone (pstn).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// voip: VoIP→VoIP between two registered devices; pstn: VoIP→PSTN to a phone that answers at once.
    #[arg(long, value_enum, default_value_t = Kind::Voip)]
    kind: Kind,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Keep the media server's default recording of VoIP→PSTN calls (a WAV file per call).
    #[arg(long)]
    record: bool,
    /// Print one JSON object instead of the summary (which then goes to stderr).
    #[arg(long)]
    json: bool,
}

/// The bought number VoIP→PSTN calls display (the default tenant's, fixtures/default.toml).
const DISPLAY_NUMBER: &str = "02160000001";

/// Real clock; every phone nobody scripted answers at once (the magic numbers still apply);
/// no recording of VoIP→PSTN calls (on by default, like the vendor's; it is media work, and it
/// would leave a WAV file per call). `--record` keeps the default.
const CONFIG: &str = r#"[clock]
mode = "real"

[pstn]
default_behavior = { ring_ms = 0, then = "answer" }
"#;

const NO_RECORDING: &str = r#"
[media]
record_voip2pstn = false
"#;

/// A slot's callee phone: not a magic number (those are 138000000xx), unique per slot, since a
/// phone in a call is busy.
fn phone_of(slot: usize) -> String {
    format!("139{slot:08}")
}

pub fn calls(args: CallsArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.client_threads == 0 {
        bail!("--concurrency and --client-threads must be at least 1");
    }
    crate::common::raise_nofile_limit()?;
    let config = std::env::temp_dir().join(format!("alicom-emu-bench-{}-calls.toml", std::process::id()));
    let no_recording = if args.record { "" } else { NO_RECORDING };
    std::fs::write(&config, format!("{CONFIG}{no_recording}"))?;
    let spawned = Emulator::spawn_with("calls", Some(&config));
    let _ = std::fs::remove_file(&config);
    let (mut emulator, _, ready) = spawned?;
    let runtime = client_runtime(args.client_threads)?;
    let result = runtime.block_on(run(&args, &emulator, &ready));
    let server_rss = emulator.rss_mib().ok();
    emulator.stop_or_warn();
    runtime.shutdown_timeout(Duration::from_secs(1));
    let r = result?;
    let (dropped, log_lines) = (emulator.log.engine_events_dropped(), emulator.log.other_lines());

    let mut lat = r.latencies_us;
    lat.sort_unstable();
    let setups = lat.len();
    let rate = setups as f64 / r.seconds;
    let (p50, p99) = (percentile_ms(&lat, 50), percentile_ms(&lat, 99));
    let (server_us, client_us) = (per_op_us(r.cpu.server, setups), per_op_us(r.cpu.client, setups));
    let kind = match args.kind {
        Kind::Voip => "VoIP→VoIP",
        Kind::Pstn => "VoIP→PSTN",
    };
    let kind = if args.record { format!("{kind} (recorded)") } else { kind.to_string() };
    let mut summary = format!(
        "calls {kind}: {setups} setups, {} errors in {:.2} s over {} concurrent calls ({} client threads): {rate:.0} setups/s, setup p50 {p50:.2} ms, p99 {p99:.2} ms",
        r.errors, r.seconds, args.concurrency, args.client_threads
    );
    let show = |v: Option<f64>| v.map_or("?".to_string(), |v| v.to_string());
    let _ = write!(
        summary,
        ", server CPU {} µs/call, load generator {} µs/call (setup and teardown); the rest of the machine used {:.1} CPU-s",
        show(server_us),
        show(client_us),
        r.cpu.others.unwrap_or(f64::NAN),
    );
    if let Some(mib) = server_rss {
        let _ = write!(summary, ", server RSS {mib:.1} MiB");
    }
    let _ = write!(
        summary,
        "\n  {} calls started; /admin/cdrs: {} CDRs ({} of this run, {} ended by the caller's hang-up 2000099); /admin/calls: {} not ended",
        r.started, r.cdrs, r.cdrs_ours, r.cdrs_hung_up, r.calls_not_ended
    );
    let _ = write!(summary, "; emulator log: {dropped} \"event dropped\" errors, {log_lines} other warnings/errors");
    let value = json!({
        "kind": args.kind.to_possible_value().map(|v| v.get_name().to_string()), "setups": setups,
        "errors": r.errors, "seconds": round3(r.seconds), "setups_per_sec": rate.round(), "p50_ms": p50,
        "p99_ms": p99, "concurrency": args.concurrency, "client_threads": args.client_threads, "record": args.record,
        "server_cpu_us_per_call": server_us, "client_cpu_us_per_call": client_us,
        "server_rss_mib": server_rss.map(round3), "calls_started": r.started, "cdrs": r.cdrs,
        "cdrs_of_run": r.cdrs_ours, "cdrs_hung_up_by_caller": r.cdrs_hung_up, "calls_not_ended": r.calls_not_ended,
        "other_cpu_secs": r.cpu.others.map(round3), "engine_events_dropped": dropped, "emulator_log_lines": log_lines,
    });
    report(args.json, summary, value);
    if let Some(e) = &r.first_error {
        eprintln!("first error: {e}");
    }
    let expected_cdrs = r.started.min(1000) as usize;
    if r.cdrs_ours != expected_cdrs || r.calls_not_ended != 0 {
        bail!(
            "{} calls started but /admin/cdrs holds {} of them (expected {expected_cdrs}) and {} calls are not ended",
            r.started,
            r.cdrs_ours,
            r.calls_not_ended
        );
    }
    Ok(())
}

#[derive(Default)]
struct Outcome {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    started: u64,
    seconds: f64,
    cpu: CpuUse,
    cdrs: usize,
    cdrs_ours: usize,
    cdrs_hung_up: usize,
    calls_not_ended: usize,
}

async fn run(args: &CallsArgs, emulator: &Emulator, ready: &Value) -> anyhow::Result<Outcome> {
    let pid = emulator.pid();
    let target = Target::from_ready(ready)?;
    let mqtt = authority_of(ready["mqtt_tcp"].as_str().context("no mqtt_tcp in the ready-file")?)?;
    let admin = ready["admin"].as_str().context("no admin in the ready-file")?.to_string();
    let tag = run_id();
    let per_slot = if args.kind == Kind::Voip { 2 } else { 1 };
    let accounts = provision(&target, args.concurrency * per_slot, 16, &tag).await?;
    let mut accounts = accounts.into_iter();
    let mut slots = Vec::with_capacity(args.concurrency);
    for slot in 0..args.concurrency {
        let caller = Party::connect(&mqtt, accounts.next().context("account")?).await?;
        let callee = match args.kind {
            Kind::Voip => Some(Party::connect(&mqtt, accounts.next().context("account")?).await?),
            Kind::Pstn => None,
        };
        slots.push(Slot {
            index: slot,
            caller,
            callee,
            tag: tag.clone(),
            channel_id: String::new(),
            out: Outcome::default(),
        });
    }

    let cpu_before = cpu_pair(Some(&pid));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration_secs);
    let kind = args.kind;
    let tasks: Vec<_> = slots.into_iter().map(|s| tokio::spawn(s.run(kind, deadline))).collect();
    let mut total = Outcome::default();
    for t in tasks {
        let o = t.await?;
        total.latencies_us.extend(o.latencies_us);
        total.errors += o.errors;
        total.started += o.started;
        total.first_error = total.first_error.or(o.first_error);
    }
    total.seconds = start.elapsed().as_secs_f64();
    total.cpu = cpu_delta(cpu_before, cpu_pair(Some(&pid)));

    // The engine writes the CDR when it handles the hang-up, just after the gateway's ACK.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (cdrs, ours, hung_up) = cdr_count_of(&admin, &tag).await?;
    total.cdrs = cdrs;
    total.cdrs_ours = ours;
    total.cdrs_hung_up = hung_up;
    let calls = get_json(&format!("{admin}/admin/calls")).await?;
    total.calls_not_ended = calls["calls"].as_array().map_or(0, |l| l.iter().filter(|c| c["state"] != "ended").count());
    Ok(total)
}

async fn cdr_count(admin: &str) -> anyhow::Result<(usize, Value)> {
    let v = get_json(&format!("{admin}/admin/cdrs")).await?;
    Ok((v["cdrs"].as_array().map_or(0, Vec::len), v))
}

/// CDRs listed, those of this run (channelId prefix), and of those the ones the caller hung up.
async fn cdr_count_of(admin: &str, tag: &str) -> anyhow::Result<(usize, usize, usize)> {
    let (n, v) = cdr_count(admin).await?;
    let prefix = format!("bc{tag}-");
    let ours: Vec<&Value> = v["cdrs"]
        .as_array()
        .map(|l| {
            l.iter().filter(|c| c["report"]["channelId"].as_str().is_some_and(|id| id.starts_with(&prefix))).collect()
        })
        .unwrap_or_default();
    let hung_up = ours.iter().filter(|c| c["report"]["detail"]["causeCode"] == 2_000_099).count();
    Ok((n, ours.len(), hung_up))
}

/// What a device received, reduced to what the flows need.
struct Msg {
    response: bool,
    message_type: String,
    request_id: String,
    code: i64,
    channel_id: Option<String>,
    received: Instant,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(default)]
    message_type: String,
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    response: bool,
    #[serde(default)]
    response_code: i64,
    #[serde(default)]
    body: WireBody,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireBody {
    channel_id: Option<String>,
    cause_code: Option<i64>,
    cause: Option<String>,
}

/// One device of a slot: its connection and what it received and has not consumed yet.
struct Party {
    conn: Conn,
    inbox: VecDeque<Msg>,
    /// The SDK's session uuid (body.uuid).
    uuid: String,
    /// `deviceId`, `userId`, `ip`, `token` of every request body, as JSON members.
    common: String,
    /// The ACK body for server requests.
    ack_body: String,
    /// The members of the SDK's userInfo object.
    user_info: String,
}

impl Party {
    async fn connect(mqtt: &str, account: Account) -> anyhow::Result<Party> {
        let mut conn = Conn::open(mqtt, account, 60).await?;
        conn.register().await?;
        conn.set_read_chunk(16 * 1024);
        let (rtc, token) = (&conn.acct.rtc_id, &conn.acct.token_json);
        let uuid = format!("{:032x}", rand_u128(rtc));
        let common = format!(r#""deviceId":"{rtc}","userId":"{rtc}","ip":"unknow","token":{token},"uuid":"{uuid}""#);
        let ack_body = format!(
            r#"{{"alicomRtcType":"voip2voip","uuid":"{uuid}","deviceId":"{rtc}","userId":"{rtc}","ip":"unknow"}}"#
        );
        let user_info = format!(
            r#""platform":"web","os":"linux","osVersion":"x86_64","model":"alicom-emu-bench","appkey":"__alicom_appkey","deviceId":"{rtc}","userId":"{uuid}""#
        );
        Ok(Party { conn, inbox: VecDeque::new(), uuid, common, ack_body, user_info })
    }

    /// Queues a request; returns its requestId.
    fn request(&mut self, message_type: &str, body_members: &str, signal: Option<&str>) -> String {
        self.conn.seq += 1;
        let id = format!("{}-{}", self.conn.acct.rtc_id, self.conn.seq);
        let mut body = format!("{{{},{body_members}", self.common);
        if let Some(s) = signal {
            let _ = write!(body, r#","mediaSignal":"{}""#, media_signal(s));
        }
        body.push('}');
        debug_assert!(serde_json::from_str::<Value>(&body).is_ok(), "{body}");
        debug_assert!(signal.is_none_or(|s| serde_json::from_str::<Value>(s).is_ok()), "{signal:?}");
        self.conn.push_request(message_type, &id, &body);
        id
    }

    /// Parses what arrived; ACKs every server request at once (as the SDK does).
    /// A `cs_disconnect` is returned as an error (after it is ACKed).
    fn drain(&mut self) -> anyhow::Result<Option<String>> {
        let mut disconnect = None;
        while let Some(frame) = self.conn.next_frame()? {
            let Frame::Publish { payload, .. } = frame else { continue };
            let received = Instant::now();
            let w: Wire = serde_json::from_slice(&payload)
                .with_context(|| format!("unparseable message: {}", String::from_utf8_lossy(&payload)))?;
            if !w.response {
                self.conn.push_ack(&w.message_type, &w.request_id, &self.ack_body);
                if w.message_type == "cs_disconnect" {
                    disconnect.get_or_insert(format!(
                        "cs_disconnect {} ({}) to {} in {}",
                        w.body.cause_code.unwrap_or_default(),
                        w.body.cause.as_deref().unwrap_or_default(),
                        self.conn.acct.rtc_id,
                        w.body.channel_id.as_deref().unwrap_or_default(),
                    ));
                }
            }
            self.inbox.push_back(Msg {
                response: w.response,
                message_type: w.message_type,
                request_id: w.request_id,
                code: w.response_code,
                channel_id: w.body.channel_id,
                received,
            });
        }
        Ok(disconnect)
    }

    /// The first message that is `want` (a server request only if it is for `channel_id`).
    fn take(&mut self, want: &Want, channel_id: &str) -> Option<Msg> {
        let at = self.inbox.iter().position(|m| match want {
            Want::Ack(id) => m.response && m.request_id == *id,
            Want::Request(t) => {
                !m.response && m.message_type == *t && m.channel_id.as_deref().is_none_or(|c| c == channel_id)
            }
        })?;
        self.inbox.remove(at)
    }
}

/// Not a real random number: distinct per device and run, which is all a session uuid needs.
fn rand_u128(seed: &str) -> u128 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    seed.bytes().fold(t, |h, b| h.wrapping_mul(0x100_0000_01b3).wrapping_add(u128::from(b)))
}

enum Want {
    Ack(String),
    Request(&'static str),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    Caller,
    Callee,
}

/// One call in progress at a time: a caller and (VoIP) its callee.
struct Slot {
    index: usize,
    caller: Party,
    callee: Option<Party>,
    tag: String,
    /// The channelId of the call in progress.
    channel_id: String,
    out: Outcome,
}

async fn read_opt(p: &mut Option<Party>) -> std::io::Result<()> {
    match p {
        Some(p) => p.conn.read_more().await,
        None => std::future::pending().await,
    }
}

impl Slot {
    async fn run(mut self, kind: Kind, deadline: Instant) -> Outcome {
        let mut n = 0u64;
        while Instant::now() < deadline {
            n += 1;
            let channel_id = format!("bc{}-{}-{n}", self.tag, self.index);
            self.channel_id.clone_from(&channel_id);
            self.out.started += 1;
            let result = match kind {
                Kind::Voip => self.voip(&channel_id).await,
                Kind::Pstn => self.pstn(&channel_id).await,
            };
            match result {
                Ok(setup_us) => self.out.latencies_us.push(setup_us),
                Err(e) => {
                    self.out.errors += 1;
                    self.out.first_error.get_or_insert_with(|| format!("{e:#}"));
                    if self.recover(&channel_id).await.is_err() {
                        break;
                    }
                }
            }
        }
        self.out
    }

    /// Sends what is queued on both connections, then waits for `want` on one of them.
    async fn wait(&mut self, who: Who, want: Want) -> anyhow::Result<Msg> {
        let until = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            let party = match who {
                Who::Caller => Some(&mut self.caller),
                Who::Callee => self.callee.as_mut(),
            }
            .context("no callee in this call kind")?;
            if let Some(m) = party.take(&want, &self.channel_id) {
                return Ok(m);
            }
            self.caller.conn.flush().await?;
            if let Some(c) = &mut self.callee {
                c.conn.flush().await?;
            }
            let Slot { caller, callee, .. } = self;
            let disconnect = tokio::select! {
                r = caller.conn.read_more() => { r?; caller.drain()? }
                r = read_opt(callee) => { r?; callee.as_mut().map(Party::drain).transpose()?.flatten() }
                _ = tokio::time::sleep_until(until) => {
                    let what = match &want { Want::Ack(id) => format!("the ACK of {id}"), Want::Request(t) => (*t).to_string() };
                    bail!("no {what} within {STEP_TIMEOUT:?}");
                }
            };
            if let Some(d) = disconnect {
                bail!("unexpected {d}");
            }
        }
    }

    async fn ack_ok(&mut self, who: Who, id: String) -> anyhow::Result<()> {
        let ack = self.wait(who, Want::Ack(id)).await?;
        if ack.code != 200 {
            bail!("{} answered {}", ack.message_type, ack.code);
        }
        Ok(())
    }

    /// The caller's joinChannel (ACK and joinChannel result), then `call`.
    async fn join_and_call(
        &mut self,
        channel_id: &str,
        rtc_type: &str,
        callee_info: &str,
        call_data: &str,
    ) -> anyhow::Result<()> {
        let c = &mut self.caller;
        let signal = format!(
            r#"{{"api":"joinChannel","data":{{"channelConfig":{{"callType":"chat","outerBizId":"alicom","allowVideo":0,"creator":1,"sigVersion":1}},"userInfo":{{{}}},"channelId":"{channel_id}"}}}}"#,
            c.user_info
        );
        let body = format!(
            r#""channelId":"{channel_id}","isCaller":true,"needRecord":false,"alicomRtcType":"{rtc_type}","calleeInfo":{callee_info}"#
        );
        let id = c.request("joinChannel", &body, Some(&signal));
        self.ack_ok(Who::Caller, id).await?;
        self.wait(Who::Caller, Want::Request("joinChannel")).await?;
        let c = &mut self.caller;
        let signal = format!(
            r#"{{"api":"call","data":{{"channelId":"{channel_id}","callerUserInfo":{{{},"role":1}},{call_data}}}}}"#,
            c.user_info
        );
        let id =
            c.request("call", &format!(r#""channelId":"{channel_id}","alicomRtcType":"{rtc_type}""#), Some(&signal));
        self.ack_ok(Who::Caller, id).await
    }

    /// One VoIP→VoIP call; returns the setup time (caller's first request → `answered`).
    async fn voip(&mut self, channel_id: &str) -> anyhow::Result<u32> {
        let t0 = Instant::now();
        let callee = self.callee.as_ref().context("no callee")?;
        let (callee_rtc, callee_uuid) = (callee.conn.acct.rtc_id.clone(), callee.uuid.clone());
        let callee_info = format!(r#"{{"isPstn":false,"rtcId":"{callee_rtc}","uuid":"{callee_uuid}"}}"#);
        let call_data = format!(
            r#""calleeDeviceInfo":{{"deviceList":[{{"deviceId":"{callee_rtc}","appkey":"__alicom_appkey"}}]}},"channelConfig":{{"allowVideo":0,"callType":"chat","outerBizId":"alicom"}}"#
        );
        self.join_and_call(channel_id, "voip2voip", &callee_info, &call_data).await?;

        let called = self.wait(Who::Callee, Want::Request("called")).await?;
        if called.channel_id.as_deref() != Some(channel_id) {
            bail!("called for {:?}, expected {channel_id}", called.channel_id);
        }
        let b = self.callee.as_mut().context("no callee")?;
        let signal = format!(
            r#"{{"api":"answer","data":{{"callId":"{channel_id}","channelId":"{channel_id}","callResult":1,"calleeUserInfo":{{{}}},"ext":"{{\"rtcId\":\"{callee_rtc}\"}}"}}}}"#,
            b.user_info
        );
        let body = format!(r#""channelId":"{channel_id}","alicomRtcType":"voip2voip""#);
        let id = b.request("answer", &body, Some(&signal));
        self.ack_ok(Who::Callee, id).await?;
        // The SDK joins the channel once its answer is ACKed.
        let b = self.callee.as_mut().context("no callee")?;
        let signal = format!(
            r#"{{"api":"joinChannel","data":{{"channelConfig":{{"callType":"chat","outerBizId":"{channel_id}","allowVideo":0,"creator":0,"queryUser":1,"sigVersion":1}},"userInfo":{{{}}},"channelId":"{channel_id}"}}}}"#,
            b.user_info
        );
        let body = format!(r#""channelId":"{channel_id}","isCaller":false,"alicomRtcType":"voip2voip""#);
        let join = b.request("joinChannel", &body, Some(&signal));

        let answered = self.wait(Who::Caller, Want::Request("answered")).await?;
        let setup_us = u32::try_from(answered.received.duration_since(t0).as_micros()).unwrap_or(u32::MAX);
        self.wait(Who::Caller, Want::Request("ringing")).await?;
        self.ack_ok(Who::Callee, join).await?;
        self.wait(Who::Callee, Want::Request("joinChannel")).await?;
        self.wait(Who::Caller, Want::Request("peerJoinedChannel")).await?;

        // Teardown (not timed): the caller hangs up, the callee hears it.
        let leave = self.leave(Who::Caller, channel_id);
        self.ack_ok(Who::Caller, leave).await?;
        self.wait(Who::Callee, Want::Request("peerLeftChannel")).await?;
        self.clear_inboxes();
        Ok(setup_us)
    }

    /// One VoIP→PSTN call to the slot's phone; returns the setup time.
    async fn pstn(&mut self, channel_id: &str) -> anyhow::Result<u32> {
        let t0 = Instant::now();
        let phone = phone_of(self.index);
        let callee_uuid = format!("{}-callee", self.caller.uuid);
        let callee_info = format!(
            r#"{{"isPstn":true,"phoneNumber":"{phone}","showNumber":"{DISPLAY_NUMBER}","uuid":"{callee_uuid}"}}"#
        );
        let call_data =
            format!(r#""calleePstnInfo":{{"mcuPhone":"{DISPLAY_NUMBER}","phone":"{phone}","userId":"{callee_uuid}"}}"#);
        self.join_and_call(channel_id, "voip2pstn", &callee_info, &call_data).await?;
        let answered = self.wait(Who::Caller, Want::Request("answered")).await?;
        let setup_us = u32::try_from(answered.received.duration_since(t0).as_micros()).unwrap_or(u32::MAX);
        self.wait(Who::Caller, Want::Request("ringing")).await?;
        self.wait(Who::Caller, Want::Request("peerJoinedChannel")).await?;
        let leave = self.leave(Who::Caller, channel_id);
        self.ack_ok(Who::Caller, leave).await?;
        self.clear_inboxes();
        Ok(setup_us)
    }

    fn leave(&mut self, who: Who, channel_id: &str) -> String {
        let p = match who {
            Who::Caller => &mut self.caller,
            Who::Callee => self.callee.as_mut().expect("callee"),
        };
        let signal =
            format!(r#"{{"api":"leaveChannel","data":{{"channelId":"{channel_id}","userInfo":{{{}}}}}}}"#, p.user_info);
        p.request("leaveChannel", &format!(r#""channelId":"{channel_id}""#), Some(&signal))
    }

    fn clear_inboxes(&mut self) {
        self.caller.inbox.clear();
        if let Some(c) = &mut self.callee {
            c.inbox.clear();
        }
    }

    /// After a failed call: both leave the channel, and whatever arrives in the next 500 ms is
    /// ACKed and dropped. Err when a connection is gone.
    async fn recover(&mut self, channel_id: &str) -> anyhow::Result<()> {
        self.leave(Who::Caller, channel_id);
        if self.callee.is_some() {
            self.leave(Who::Callee, channel_id);
        }
        let until = tokio::time::Instant::now() + Duration::from_millis(500);
        loop {
            self.caller.conn.flush().await?;
            if let Some(c) = &mut self.callee {
                c.conn.flush().await?;
            }
            let Slot { caller, callee, .. } = self;
            tokio::select! {
                r = caller.conn.read_more() => { r?; let _ = caller.drain()?; }
                r = read_opt(callee) => { r?; if let Some(c) = callee.as_mut() { let _ = c.drain()?; } }
                _ = tokio::time::sleep_until(until) => break,
            }
        }
        self.clear_inboxes();
        Ok(())
    }
}
