//! The soak's devices and calls: idle heartbeating devices, slots of call devices paced by
//! [`Pools::pace`], and the POP load.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use emu_testkit::load_device::Conn;
use emu_testkit::media::{ClientOptions, MediaClient};
use emu_testkit::{Device, Inbound, PopClient};
use tokio::sync::Mutex;

use super::Tally;
use crate::common::{Target, authority_of, connect, provision};

/// The bought number VoIP→PSTN calls display (the default tenant's, fixtures/default.toml).
const DISPLAY_NUMBER: &str = "02160000001";
/// Audio packets (20 ms each) a media call must receive before it is held, and the share of the
/// hold's packets it must have received by the hang-up.
const FIRST_PACKETS: u64 = 25;
const HOLD_SHARE: f64 = 0.5;
const MEDIA_WAIT: Duration = Duration::from_secs(10);

/// `--devices` registered devices that only heartbeat.
pub(super) async fn idle_devices(target: &Target, mqtt: &str, n: usize, tag: &str) -> anyhow::Result<Vec<Conn>> {
    let addr = authority_of(mqtt)?;
    let mut out = Vec::with_capacity(n);
    for acct in provision(target, n, 8, &format!("{tag}-idle")).await? {
        let mut conn = Conn::open(&addr, acct, 60).await?;
        conn.register().await?;
        out.push(conn);
    }
    Ok(out)
}

/// Heartbeats the idle devices round-robin, each every `period`, until `stop`.
pub(super) async fn heartbeat_idle(mut conns: Vec<Conn>, period: Duration, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    if conns.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval(period / conns.len() as u32);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let (mut i, n) = (0, conns.len());
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let c = &mut conns[i % n];
        match tokio::time::timeout(Duration::from_secs(10), c.register()).await {
            Ok(Ok(())) => {
                tally.heartbeats.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => tally.error(format!("heartbeat of idle device {}: {e:#}", c.acct.rtc_id)),
            Err(_) => tally.error(format!("heartbeat of idle device {}: no ACK within 10 s", c.acct.rtc_id)),
        }
        i += 1;
    }
}

/// Signed GetRtcToken requests at `per_sec`, round-robin over `accounts` (made by
/// [`provision`] with `tag`, so their DeviceIds are `bench-<tag>-<i>`), until `stop`.
pub(super) async fn pop_load(
    target: Target,
    accounts: Vec<emu_testkit::load_device::Account>,
    tag: String,
    per_sec: f64,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    if per_sec <= 0.0 || accounts.is_empty() {
        return;
    }
    let mut sender = None;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        n += 1;
        let i = n as usize % accounts.len();
        let acct = &accounts[i];
        let device_id = format!("bench-{tag}-{i}");
        let result = async {
            if sender.is_none() {
                sender = Some(connect(&target.authority).await?);
            }
            let s = sender.as_mut().context("connected")?;
            let params = [
                ("Action", "GetRtcToken"),
                ("UserId", acct.rtc_id.as_str()),
                ("DeviceId", device_id.as_str()),
                ("IsCustomAccount", "false"),
            ];
            target.call(s, &params, &format!("soak-pop-{n}-{}", acct.rtc_id)).await
        }
        .await;
        match result {
            Ok(reply) if reply["Module"].as_str().is_some_and(|m| m.contains("tokenData")) => {
                tally.pop_ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(reply) => tally.error(format!("GetRtcToken without a token: {reply}")),
            Err(e) => {
                sender = None;
                tally.error(format!("GetRtcToken: {e:#}"));
            }
        }
    }
}

/// One call at a time: a caller and, for VoIP→VoIP, its callee; for VoIP→PSTN, its own phone.
pub(super) struct Slot {
    a: Device,
    b: Option<Device>,
    phone: String,
    last_heartbeat: Instant,
}

/// The free slots of each kind (a call takes one out and puts it back).
pub(super) struct Pools {
    voip: Mutex<VecDeque<Slot>>,
    pstn: Mutex<VecDeque<Slot>>,
    in_flight: AtomicU64,
}

/// What [`Pools::pace`] starts.
pub(super) struct Plan {
    pub(super) tag: String,
    pub(super) calls_per_sec: f64,
    pub(super) hold: Duration,
    pub(super) media_every: u64,
}

async fn device(pop: &PopClient, mqtt: &str, name: &str) -> anyhow::Result<Device> {
    let rtc_id = pop.add_rtc_account(name).await?;
    let token = pop.get_rtc_token(&rtc_id, name).await?;
    let mut d = Device::connect(mqtt, &rtc_id, token).await?;
    d.register().await?;
    Ok(d)
}

impl Pools {
    /// `size` VoIP pairs and `size` PSTN callers, registered.
    pub(super) async fn new(pop: &PopClient, mqtt: &str, size: usize, tag: &str) -> anyhow::Result<Pools> {
        let (mut voip, mut pstn) = (VecDeque::new(), VecDeque::new());
        for i in 0..size {
            let a = device(pop, mqtt, &format!("soak-{tag}-v{i}a")).await?;
            let b = device(pop, mqtt, &format!("soak-{tag}-v{i}b")).await?;
            voip.push_back(Slot { a, b: Some(b), phone: String::new(), last_heartbeat: Instant::now() });
            let a = device(pop, mqtt, &format!("soak-{tag}-p{i}")).await?;
            // Not a magic number (those are 138000000xx); one per slot, since a phone in a call is busy.
            let phone = format!("139{i:08}");
            pstn.push_back(Slot { a, b: None, phone, last_heartbeat: Instant::now() });
        }
        Ok(Pools { voip: Mutex::new(voip), pstn: Mutex::new(pstn), in_flight: AtomicU64::new(0) })
    }

    fn pool(&self, voip: bool) -> &Mutex<VecDeque<Slot>> {
        if voip { &self.voip } else { &self.pstn }
    }

    /// Starts calls at the plan's pace until `until`; returns when the last one has started.
    pub(super) async fn pace(self: Arc<Self>, plan: Plan, until: Instant, tally: Arc<Tally>) {
        let plan = Arc::new(plan);
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / plan.calls_per_sec));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut n = 0u64;
        loop {
            tick.tick().await;
            if Instant::now() >= until {
                return;
            }
            let voip = n.is_multiple_of(2);
            let of_kind = n / 2;
            let media = plan.media_every > 0 && of_kind.is_multiple_of(plan.media_every);
            n += 1;
            let Some(slot) = self.pool(voip).lock().await.pop_front() else {
                tally.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let call = Call {
                channel_id: format!("soak-{}-{n}", plan.tag),
                voip,
                media,
                callee_hangs_up: voip && of_kind % 4 >= 2,
                hold: plan.hold,
            };
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            let (pools, tally) = (self.clone(), tally.clone());
            tokio::spawn(async move {
                let slot = call.run(slot, &tally).await;
                if let Some(slot) = slot {
                    pools.pool(voip).lock().await.push_back(slot);
                }
                pools.in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }

    /// Waits until no call is in progress (or `within` passed).
    pub(super) async fn wait_idle(&self, within: Duration) {
        let until = Instant::now() + within;
        while self.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Heartbeats free slots whose devices are due (a slot in a call is due at most a call's
    /// length later), until `stop`.
    pub(super) async fn heartbeat(self: Arc<Self>, period: Duration, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for voip in [true, false] {
                loop {
                    let due = {
                        let mut pool = self.pool(voip).lock().await;
                        let at = pool.iter().position(|s| s.last_heartbeat.elapsed() >= period);
                        at.and_then(|i| pool.remove(i))
                    };
                    let Some(mut slot) = due else { break };
                    slot.last_heartbeat = Instant::now();
                    let mut ok = true;
                    for d in std::iter::once(&mut slot.a).chain(slot.b.as_mut()) {
                        match d.register().await {
                            Ok(()) => {
                                tally.heartbeats.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                ok = false;
                                tally.error(format!("heartbeat of call device {}: {e:#}", d.rtc_id));
                            }
                        }
                        d.drain();
                    }
                    if ok {
                        self.pool(voip).lock().await.push_back(slot);
                    }
                }
            }
        }
    }
}

/// One call of the mix.
struct Call {
    channel_id: String,
    voip: bool,
    media: bool,
    callee_hangs_up: bool,
    hold: Duration,
}

impl Call {
    /// Runs the call and accounts for it; the slot comes back unless its devices lost their
    /// connection.
    async fn run(self, mut slot: Slot, tally: &Tally) -> Option<Slot> {
        tally.expected_cdrs.lock().expect("tally").insert(self.channel_id.clone());
        let result = if self.voip { self.voip(&mut slot).await } else { self.pstn(&mut slot, tally).await };
        let kind = usize::from(!self.voip) * 2 + usize::from(self.media);
        match result {
            Ok(()) => {
                tally.calls_ok[kind].fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tally.calls_failed.fetch_add(1, Ordering::Relaxed);
                tally.error(format!("{} call {}: {e:#}", if self.voip { "VoIP" } else { "PSTN" }, self.channel_id));
                // Both leave; whatever follows is dropped.
                let _ = slot.a.leave(&self.channel_id).await;
                if let Some(b) = &mut slot.b {
                    let _ = b.leave(&self.channel_id).await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        let mut alive = true;
        for d in std::iter::once(&mut slot.a).chain(slot.b.as_mut()) {
            for inbound in d.drain() {
                if let Inbound::Closed(why) = inbound {
                    tally.error(format!("device {} lost its connection: {why}", d.rtc_id));
                    alive = false;
                }
            }
        }
        alive.then_some(slot)
    }

    async fn voip(&self, slot: &mut Slot) -> anyhow::Result<()> {
        let ch = self.channel_id.as_str();
        let Slot { a, b, .. } = slot;
        let b = b.as_mut().context("no callee")?;
        let callee = b.rtc_id.clone();
        let join_a = a.call_voip(ch, &[callee.as_str()]).await?;
        let called = b.expect("called").await?;
        let options = |hz| ClientOptions::default().tone(hz);
        let mut ma =
            if self.media { Some(MediaClient::connect_device(a, ch, &join_a, options(440.0)).await?) } else { None };
        let join_b = b.answer(&called, true).await?.context("an answer joins")?;
        let mut mb =
            if self.media { Some(MediaClient::connect_device(b, ch, &join_b, options(880.0)).await?) } else { None };
        a.expect("answered").await?;
        self.hold_with_media([ma.as_mut(), mb.as_mut()]).await?;
        if self.callee_hangs_up {
            b.leave(ch).await?;
            a.expect("peerLeftChannel").await?;
        } else {
            a.leave(ch).await?;
            b.expect("peerLeftChannel").await?;
        }
        for m in [ma, mb].into_iter().flatten() {
            m.close().await;
        }
        Ok(())
    }

    async fn pstn(&self, slot: &mut Slot, tally: &Tally) -> anyhow::Result<()> {
        let ch = self.channel_id.as_str();
        let a = &mut slot.a;
        let join = a.call_pstn(ch, DISPLAY_NUMBER, &slot.phone).await?;
        let mut ma = if self.media {
            Some(MediaClient::connect_device(a, ch, &join, ClientOptions::default()).await?)
        } else {
            None
        };
        a.expect("answered").await?;
        // Recorded by default (media.record_voip2pstn): a VoiceRecordReport is due.
        tally.expected_recordings.lock().expect("tally").insert(ch.to_string());
        self.hold_with_media([ma.as_mut(), None]).await?;
        a.leave(ch).await?;
        if let Some(m) = ma {
            m.close().await;
        }
        Ok(())
    }

    /// Audio arrives at every media client, the call is held, and audio kept arriving.
    async fn hold_with_media(&self, clients: [Option<&mut MediaClient>; 2]) -> anyhow::Result<()> {
        let mut clients: Vec<&mut MediaClient> = clients.into_iter().flatten().collect();
        let mut before = Vec::new();
        for c in &mut clients {
            before.push(c.wait_rtp(FIRST_PACKETS, MEDIA_WAIT).await?.rtp_rx);
        }
        tokio::time::sleep(self.hold).await;
        let want = (self.hold.as_secs_f64() * 50.0 * HOLD_SHARE) as u64;
        for (c, before) in clients.iter().zip(before) {
            let got = c.stats().rtp_rx - before;
            if got < want {
                bail!("{got} audio packets received while held {:?} (at least {want} expected)", self.hold);
            }
        }
        Ok(())
    }
}
