//! The configuration model. Loading (embedded defaults, TOML file, environment) lives in the
//! binary; this module only says what a configuration is and checks that it makes sense.

use serde::{Deserialize, Serialize};

use crate::account_state::AccountState;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub ports: PortsConfig,
    pub clock: ClockConfig,
    pub pop: PopConfig,
    pub tokens: TokenConfig,
    pub gateway: GatewayConfig,
    pub pstn: PstnConfig,
    pub calls: CallsConfig,
    #[serde(default)]
    pub media: MediaSettings,
    #[serde(default)]
    pub mns: MnsConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub voip: VoipConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
}

/// Caps of what is kept for the admin API, by count and bytes (docs/admin-api.md#what-is-retained-and-how-much).
/// The event log's and the POP request log's caps live in `[server]` and `[pop]`, the recent
/// calls' count in `[calls]`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Ended calls (`GET /admin/calls`): their weight (the call view as JSON) together.
    pub recent_call_bytes: usize,
    /// CDRs (`GET /admin/cdrs`).
    pub cdrs: usize,
    pub cdr_bytes: usize,
    /// Problem reports (`ReportVoipProblems`, `GET /admin/problems`).
    pub problems: usize,
    pub problem_bytes: usize,
    /// SLS log uploads (`GET /admin/sls`).
    pub sls_uploads: usize,
    pub sls_bytes: usize,
    /// Final media statistics of released channels (`GET /admin/media/{channelId}`).
    pub finished_channels: usize,
    pub finished_channel_bytes: usize,
    /// The recordings index (`GET /admin/recordings`; the files stay on disk).
    pub recordings: usize,
    pub recording_bytes: usize,
    /// requestIds remembered per MQTT client to drop retransmitted requests, and their ACKs'
    /// bytes per client.
    pub dedupe_window: usize,
    pub dedupe_client_bytes: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        const MIB: usize = 1 << 20;
        RetentionConfig {
            recent_call_bytes: 16 * MIB,
            cdrs: 1000,
            cdr_bytes: 8 * MIB,
            problems: 1000,
            problem_bytes: 8 * MIB,
            sls_uploads: 200,
            sls_bytes: 16 * MIB,
            finished_channels: 1000,
            finished_channel_bytes: 8 * MIB,
            recordings: 10_000,
            recording_bytes: 4 * MIB,
            dedupe_window: 256,
            dedupe_client_bytes: 256 * 1024,
        }
    }
}

/// Virtual VoIP devices made at start and by every reset (docs/voip-devices.md). Behaviours are
/// interpreted by `emu-voip`; kept as JSON here, like phones'.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoipConfig {
    #[serde(default)]
    pub devices: Vec<VirtualDeviceConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualDeviceConfig {
    /// The account's rtcId (made with this id if it does not exist).
    pub rtc_id: String,
    /// The account's DeviceId; default `virtual-<rtc_id>`.
    #[serde(default)]
    pub device_id: String,
    /// The tenant's name; empty: every tenant has this device.
    #[serde(default)]
    pub tenant: String,
    #[serde(default = "empty_object")]
    pub behavior: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    #[serde(default)]
    pub public_host: String,
    pub log_format: LogFormat,
    pub log_level: String,
    /// Events kept for `GET /admin/events`.
    #[serde(default = "default_event_log_size")]
    pub event_log_size: usize,
    /// ... and at most about this many bytes of them (envelopes weigh their wire size).
    #[serde(default = "default_event_log_max_bytes")]
    pub event_log_max_bytes: usize,
    /// Where durable state goes (MNS messages, recordings); empty = everything in memory.
    #[serde(default)]
    pub data_dir: String,
    /// HTTP listeners (POP, admin, MNS): from a request's first byte to its complete head.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// HTTP listeners: a keep-alive connection without a request is closed after this.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
}

fn default_event_log_size() -> usize {
    20_000
}

fn default_event_log_max_bytes() -> usize {
    32 << 20
}

fn default_header_read_timeout_ms() -> u64 {
    10_000
}

fn default_idle_timeout_ms() -> u64 {
    75_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortsConfig {
    pub pop: u16,
    pub admin: u16,
    pub mqtt_ws: u16,
    pub mqtt_tcp: u16,
    pub mns: u16,
    pub turn: u16,
    /// The one UDP port of all call media (0 = a free port).
    #[serde(default = "default_media_port")]
    pub media: u16,
}

fn default_media_port() -> u16 {
    40000
}

/// The media server (docs/media.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    /// The embedded TURN server (UDP, `ports.turn`): the Web SDK's default mode needs it.
    pub turn: bool,
    pub turn_realm: String,
    pub turn_credential_ttl_secs: u64,
    /// Empty: `<server.data_dir>/recordings`, or a temporary directory.
    pub recordings_dir: String,
    /// Base of relative WAV paths of phone audio.
    pub audio_dir: String,
    pub record_voip2pstn: bool,
    pub record_voip2voip: bool,
    pub record_pstn2voip: bool,
    /// Media I/O tasks, each on its own UDP port (`ports.media`, `+1`, …) with its share of
    /// the calls. 1 (the default): one port for every leg.
    pub workers: usize,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            turn: true,
            turn_realm: "alicom-emu".into(),
            turn_credential_ttl_secs: 86_400,
            recordings_dir: String::new(),
            audio_dir: ".".into(),
            record_voip2pstn: true,
            record_voip2voip: false,
            record_pstn2voip: false,
            workers: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {
    pub mode: ClockMode,
    #[serde(default = "one")]
    pub scale: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClockMode {
    Real,
    Scaled,
    Manual,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopConfig {
    pub signature: SignatureMode,
    #[serde(default)]
    pub timestamp_window_secs: u64,
    #[serde(default)]
    pub nonce_check: bool,
    pub max_body_bytes: usize,
    pub request_log_size: usize,
    /// Bytes of text the request log may hold in all; the oldest entries go first.
    #[serde(default = "default_request_log_max_bytes")]
    pub request_log_max_bytes: usize,
}

fn default_request_log_max_bytes() -> usize {
    4 << 20
}

/// What the POP endpoint does with a signature that does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureMode {
    Enforce,
    Log,
    Off,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub lifetime_secs: u64,
    pub conference_topic: String,
}

/// The MQTT gateway. Its timeouts pair with the SDK's own real-time timers (30 s heartbeats,
/// 4 s reconnects, 2 s retransmissions), so they run on real time, not on the emulator clock.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// A connection that has not uploaded a valid token by then is closed.
    pub auth_timeout_ms: u64,
    /// A registration with no `cs_register` heartbeat for this long is expired.
    pub heartbeat_timeout_ms: u64,
    /// A dropped connection keeps its registration (and calls) this long for the SDK to reconnect.
    pub disconnect_grace_ms: u64,
    /// Server requests not ACKed are re-sent at this interval …
    pub retransmit_interval_ms: u64,
    /// … this many times, then reported as undelivered.
    pub retransmit_attempts: u32,
    /// After `$SYS/tokenExpireNotice`, how long the SDK has to upload a fresh token.
    pub token_refresh_timeout_ms: u64,
    /// Largest MQTT packet accepted.
    pub max_packet_bytes: usize,
    /// Largest inflated `mediaSignal` accepted (zip bombs stop here).
    pub max_media_signal_bytes: usize,
    /// How often timeouts are checked.
    pub sweep_interval_ms: u64,
}

/// The MNS queue service (docs/mns.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MnsConfig {
    /// VisibilityTimeout (s) of the alicom queues created on demand.
    pub alicom_visibility_timeout_secs: u32,
    /// PollingWaitSeconds (0–30) of the alicom queues created on demand.
    pub alicom_polling_wait_secs: u32,
    /// Besides each tenant's uid, the account id accepted in a `<id>.mns.…` Host header.
    pub alicom_account_id: String,
    /// Refuse requests whose `Date` is further than this from now (408 TimeExpired); 0 = off.
    pub date_skew_secs: u64,
    /// HTTP push of receipts.
    pub push: Vec<PushTarget>,
    pub push_max_attempts: u32,
    pub push_backoff_ms: u64,
    pub push_timeout_ms: u64,
}

impl Default for MnsConfig {
    fn default() -> Self {
        MnsConfig {
            alicom_visibility_timeout_secs: 30,
            alicom_polling_wait_secs: 0,
            alicom_account_id: "1943695596114318".into(),
            date_skew_secs: 0,
            push: vec![],
            push_max_attempts: 5,
            push_backoff_ms: 1000,
            push_timeout_ms: 5000,
        }
    }
}

/// Where to push one tenant's receipts of one type (`[[mns.push]]`, `PUT /admin/mns/push`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushTarget {
    /// Tenant name.
    pub tenant: String,
    /// `ArtcCdrReport`, `VoiceRecordReport`, … or `*` for every type.
    #[serde(alias = "messageType")]
    pub message_type: String,
    pub url: String,
}

impl PushTarget {
    pub fn matches(&self, tenant: &str, message_type: &str) -> bool {
        self.tenant == tenant && (self.message_type == "*" || self.message_type == message_type)
    }
}

/// Optional TLS listeners for POP and MNS (the vendor's Java puller insists on HTTPS).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub enabled: bool,
    pub pop_port: u16,
    pub mns_port: u16,
    /// A PEM certificate and key to use instead of the generated self-signed one.
    pub cert_file: String,
    pub key_file: String,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: false,
            pop_port: 18443,
            mns_port: 18444,
            cert_file: String::new(),
            key_file: String::new(),
        }
    }
}

/// Who may use the admin listener (docs/admin-api.md, "Security").
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// When not empty, `/admin/*` (and the secrets in the admin `/health`) need this token.
    #[serde(skip_serializing_if = "String::is_empty", serialize_with = "redacted", deserialize_with = "token")]
    pub token: String,
    /// Origins (`http://host:port`) besides the admin listener's own whose pages may change
    /// state; `*` allows any.
    #[serde(deserialize_with = "string_or_list")]
    pub allowed_origins: Vec<String>,
    /// Host names accepted in the `Host` header besides loopback names, the bind address and
    /// `server.public_host`; `*` accepts any.
    #[serde(deserialize_with = "string_or_list")]
    pub allowed_hosts: Vec<String>,
}

/// The token never leaves the process (`GET /admin/config`, `alicom-emu config`).
fn redacted<S: serde::Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
}

/// A string; digits too (an environment variable of digits arrives as a number).
fn token<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Token {
        Text(String),
        Number(u64),
    }
    Ok(match Token::deserialize(d)? {
        Token::Text(s) => s,
        Token::Number(n) => n.to_string(),
    })
}

/// A list, or one string of comma-separated items (what an environment variable holds).
fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::to_string).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(items.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

/// The call engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsConfig {
    /// How long one leg rings before the server gives up on it (emulator clock).
    pub ring_timeout_ms: u64,
    /// How long the customer's callbacks may take (emulator clock).
    pub callback_timeout_ms: u64,
    /// Ended calls kept for `GET /admin/calls`.
    pub recent_calls: usize,
}

/// The simulated PSTN. Behaviours are interpreted by `emu-pstn` (docs/pstn.md); they are kept
/// as JSON values here so the core does not need to know their shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PstnConfig {
    /// Whether the documented magic numbers behave their fixed way.
    #[serde(default = "yes")]
    pub magic_numbers: bool,
    /// What any other number does.
    pub default_behavior: serde_json::Value,
    /// Phones with a configured behaviour: `{ number = "...", behavior = { ... } }`.
    #[serde(default)]
    pub phones: Vec<serde_json::Value>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub name: String,
    pub uid: String,
    #[serde(default)]
    pub state: AccountState,
    #[serde(default = "default_account_limit")]
    pub account_limit: u64,
    #[serde(default)]
    pub access_keys: Vec<AccessKeyConfig>,
    /// The customer's HTTP callbacks (docs/calls.md#customer-callbacks); empty = not configured.
    #[serde(default)]
    pub callbacks: CallbacksConfig,
    /// Platform numbers the tenant bought (display numbers, inbound numbers).
    #[serde(default)]
    pub numbers: Vec<NumberConfig>,
    /// Own lines (自有线路), usable by name instead of a bought number.
    #[serde(default)]
    pub self_lines: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbacksConfig {
    #[serde(default)]
    pub outbound: String,
    #[serde(default)]
    pub inbound: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberConfig {
    pub number: String,
    /// Overrides the tenant's inbound callback for calls to this number.
    #[serde(default)]
    pub inbound_callback: String,
    /// Announcements (voice file names, as approved in the console) a calling phone hears:
    /// `{ not_connected = "closed.wav", no_answer = "…", busy = "…", rejected = "…",
    /// unreachable = "…", invalid_number = "…" }`; unset situations play the default.
    #[serde(default)]
    pub announcements: std::collections::BTreeMap<String, String>,
}

/// The situations a bought number can have its own announcement for.
pub const ANNOUNCEMENT_SITUATIONS: &[&str] =
    &["not_connected", "no_answer", "busy", "rejected", "unreachable", "invalid_number"];

fn default_account_limit() -> u64 {
    5_000_000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyConfig {
    pub id: String,
    pub secret: String,
    /// When set, every Dyvmsapi call signed with this key answers with this vendor code.
    #[serde(default)]
    pub fault: Option<AccountState>,
}

/// The longest duration any setting may have: ten years (in milliseconds).
pub const MAX_DURATION_MS: u64 = 10 * 365 * 86_400_000;

/// A configuration serde accepts but the emulator cannot run with: what is wrong, naming the
/// setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Checks what serde cannot: names and keys unique, at least one tenant with a key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tenants.is_empty() {
            return Err(ConfigError("the configuration defines no tenant ([[tenants]])".into()));
        }
        let mut names = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for t in &self.tenants {
            if t.name.is_empty() || !names.insert(t.name.as_str()) {
                return Err(ConfigError(format!("tenant name {:?} is empty or used twice", t.name)));
            }
            if t.uid.is_empty() || !t.uid.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ConfigError(format!("tenant {:?}: uid must be digits", t.name)));
            }
            for n in &t.numbers {
                let digits = n.number.strip_prefix('+').unwrap_or(&n.number);
                if digits.len() < 3 || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ConfigError(format!("tenant {:?}: {:?} is not a phone number", t.name, n.number)));
                }
                if let Some(bad) = n.announcements.keys().find(|k| !ANNOUNCEMENT_SITUATIONS.contains(&k.as_str())) {
                    return Err(ConfigError(format!(
                        "number {:?}: unknown announcement situation {bad:?} (one of {})",
                        n.number,
                        ANNOUNCEMENT_SITUATIONS.join(", ")
                    )));
                }
                if self.tenants.iter().filter(|o| o.numbers.iter().any(|m| m.number == n.number)).count() > 1 {
                    return Err(ConfigError(format!("number {:?} is bought by more than one tenant", n.number)));
                }
            }
            for k in &t.access_keys {
                if k.id.is_empty() || k.secret.is_empty() {
                    return Err(ConfigError(format!("tenant {:?}: an access key has an empty id or secret", t.name)));
                }
                if k.id.starts_with("STS.") {
                    return Err(ConfigError(format!("access key {:?}: ids starting with STS. are reserved", k.id)));
                }
                if !keys.insert(k.id.as_str()) {
                    return Err(ConfigError(format!("access key id {:?} is used twice", k.id)));
                }
            }
        }
        if self.clock.mode == ClockMode::Scaled && !(self.clock.scale > 0.0 && self.clock.scale.is_finite()) {
            return Err(ConfigError("clock.scale must be a positive number".into()));
        }
        if !(1..=43_200).contains(&self.mns.alicom_visibility_timeout_secs) {
            return Err(ConfigError("mns.alicom_visibility_timeout_secs must be 1-43200".into()));
        }
        if self.mns.alicom_polling_wait_secs > 30 {
            return Err(ConfigError("mns.alicom_polling_wait_secs must be 0-30".into()));
        }
        for p in &self.mns.push {
            if !self.tenants.iter().any(|t| t.name == p.tenant) {
                return Err(ConfigError(format!("mns.push: no tenant {:?}", p.tenant)));
            }
            if !p.url.starts_with("http://") {
                return Err(ConfigError(format!("mns.push: {:?} is not an http:// URL", p.url)));
            }
        }
        if self.tls.cert_file.is_empty() != self.tls.key_file.is_empty() {
            return Err(ConfigError("tls.cert_file and tls.key_file go together".into()));
        }
        if !(1..=64).contains(&self.media.workers) {
            return Err(ConfigError("media.workers must be 1 to 64".into()));
        }
        if self.media.turn_credential_ttl_secs == 0 {
            return Err(ConfigError("media.turn_credential_ttl_secs must be at least 1".into()));
        }
        if !self.admin.token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError("admin.token must be printable ASCII without spaces".into()));
        }
        if let Some(bad) = self
            .admin
            .allowed_origins
            .iter()
            .find(|o| *o != "*" && !o.starts_with("http://") && !o.starts_with("https://"))
        {
            return Err(ConfigError(format!("admin.allowed_origins: {bad:?} is not an http(s):// origin")));
        }
        if self.tokens.lifetime_secs == 0 {
            return Err(ConfigError("tokens.lifetime_secs must be at least 1".into()));
        }
        self.check_durations()
    }

    /// Every duration setting is at most [`MAX_DURATION_MS`]: timers, expiries and skew checks add
    /// them to the current time (or multiply seconds into milliseconds), which a value near
    /// `u64::MAX` overflows: a token that is expired when issued, a panic on every joinChannel.
    fn check_durations(&self) -> Result<(), ConfigError> {
        let (s, g, m) = (&self.server, &self.gateway, &self.mns);
        let ms = [
            ("server.header_read_timeout_ms", s.header_read_timeout_ms),
            ("server.idle_timeout_ms", s.idle_timeout_ms),
            ("gateway.auth_timeout_ms", g.auth_timeout_ms),
            ("gateway.heartbeat_timeout_ms", g.heartbeat_timeout_ms),
            ("gateway.disconnect_grace_ms", g.disconnect_grace_ms),
            ("gateway.retransmit_interval_ms", g.retransmit_interval_ms),
            ("gateway.token_refresh_timeout_ms", g.token_refresh_timeout_ms),
            ("gateway.sweep_interval_ms", g.sweep_interval_ms),
            ("mns.push_backoff_ms", m.push_backoff_ms),
            ("mns.push_timeout_ms", m.push_timeout_ms),
            ("calls.ring_timeout_ms", self.calls.ring_timeout_ms),
            ("calls.callback_timeout_ms", self.calls.callback_timeout_ms),
        ];
        let secs = [
            ("tokens.lifetime_secs", self.tokens.lifetime_secs),
            ("media.turn_credential_ttl_secs", self.media.turn_credential_ttl_secs),
            ("pop.timestamp_window_secs", self.pop.timestamp_window_secs),
            ("mns.date_skew_secs", m.date_skew_secs),
        ];
        let too_long = ms
            .into_iter()
            .find(|(_, v)| *v > MAX_DURATION_MS)
            .or_else(|| secs.into_iter().find(|(_, v)| *v > MAX_DURATION_MS / 1000));
        match too_long {
            Some((name, _)) => Err(ConfigError(format!(
                "{name} is longer than the longest duration a setting may have ({} days)",
                MAX_DURATION_MS / 86_400_000
            ))),
            None => Ok(()),
        }
    }

    /// The host name clients are told to use.
    pub fn public_host(&self) -> String {
        if !self.server.public_host.is_empty() {
            return self.server.public_host.clone();
        }
        match self.server.bind.as_str() {
            "0.0.0.0" | "::" | "[::]" => "127.0.0.1".into(),
            other => other.into(),
        }
    }

    /// The first access key of the first tenant: the documented default credentials.
    pub fn default_access_key(&self) -> Option<&AccessKeyConfig> {
        self.tenants.first().and_then(|t| t.access_keys.first())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Config {
        toml::from_str(include_str!("../../../fixtures/default.toml")).expect("the defaults parse")
    }

    /// Caught by the config_toml fuzz target's run phase (fuzz/), with the largest TOML integer
    /// as a duration: `tokens.lifetime_secs = 9223372036854775807` loaded, and then issuing a
    /// token overflowed `now + lifetime` (a token expired when issued, or a panic); the TURN
    /// credential lifetime panicked on every joinChannel; the call timers overflowed the same way.
    #[test]
    fn durations_are_bounded() {
        assert_eq!(defaults().validate(), Ok(()));
        let mut c = defaults();
        c.tokens.lifetime_secs = u64::MAX;
        assert!(c.validate().unwrap_err().0.starts_with("tokens.lifetime_secs is longer"));
        let mut c = defaults();
        c.media.turn_credential_ttl_secs = MAX_DURATION_MS / 1000 + 1;
        assert!(c.validate().unwrap_err().0.starts_with("media.turn_credential_ttl_secs"));
        let mut c = defaults();
        c.calls.ring_timeout_ms = u64::MAX;
        assert!(c.validate().unwrap_err().0.starts_with("calls.ring_timeout_ms"));
        let mut c = defaults();
        c.gateway.auth_timeout_ms = MAX_DURATION_MS;
        c.mns.date_skew_secs = MAX_DURATION_MS / 1000;
        assert_eq!(c.validate(), Ok(()), "ten years is allowed");
    }
}
