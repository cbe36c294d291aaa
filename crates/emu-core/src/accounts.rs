//! RTC accounts (rtcIds), the tokens issued for them, and the phone-number bookkeeping of the
//! Dyvmsapi number actions. Pure state: the POP API writes it, the gateway reads tokens from it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::clock::Millis;
use crate::retention::{Bounded, Limit, Retained, json_weight};
use crate::tenants::{TenantId, random_alnum};

/// First rtcId handed out (the vendor's ids look like `2000000000000001`).
pub const FIRST_RTC_ID: u64 = 2_000_000_000_000_001;
/// Live tokens kept per account; older ones stop being valid (bounds memory under load).
pub const TOKENS_PER_ACCOUNT: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RtcAccount {
    pub tenant: TenantId,
    #[serde(rename = "rtcId")]
    pub rtc_id: String,
    #[serde(rename = "deviceId")]
    pub device_id: String,
    #[serde(rename = "createdMs")]
    pub created_ms: Millis,
}

/// Everything the gateway needs to authenticate a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    pub tenant: TenantId,
    #[serde(rename = "tokenData")]
    pub token_data: String,
    #[serde(rename = "rtcId")]
    pub rtc_id: String,
    #[serde(rename = "deviceId")]
    pub device_id: String,
    #[serde(rename = "clientId")]
    pub client_id: String,
    #[serde(rename = "isCustomAccount")]
    pub custom: bool,
    #[serde(rename = "issuedMs")]
    pub issued_ms: Millis,
    #[serde(rename = "expiresMs")]
    pub expires_ms: Millis,
}

/// The parts of the token JSON that depend on the emulator's deployment.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `host` handed to the SDK: `127.0.0.1:PORT/mqtt`.
    pub mqtt_host: String,
    pub mqtt_ws_port: u16,
    pub mqtt_tcp_port: u16,
    pub conference_topic: String,
    /// `GID_VOIP@@@` + base64 of the public host, like the vendor's.
    pub server_id: String,
    pub lifetime_ms: Millis,
}

impl TokenSettings {
    pub fn server_id_for(public_host: &str) -> String {
        format!("GID_VOIP@@@{}", base64::engine::general_purpose::STANDARD.encode(public_host))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token invalid")]
    Invalid,
    #[error("token expired")]
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("the account limit of {0} is reached")]
    LimitReached(u64),
    #[error("the account does not exist")]
    NotExists,
}

/// `add_account_with_id`: the rtcId or the DeviceId already belongs to another account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rtcId {rtc_id} or DeviceId {device_id} already belongs to another account")]
pub struct AccountTaken {
    pub rtc_id: String,
    pub device_id: String,
}

/// Announcements for the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryEvent {
    /// The account fetched a token with another DeviceId: logins of `old_device` are to be kicked.
    DeviceSuperseded { tenant: TenantId, rtc_id: String, old_device: String, new_device: String },
    /// Everything was reset.
    Reset,
}

#[derive(Debug, Clone, Serialize)]
pub struct NumberBinding {
    #[serde(rename = "phoneNumber")]
    pub phone_number: String,
    #[serde(rename = "voipId")]
    pub voip_id: String,
    #[serde(rename = "bindTime")]
    pub bound_ms: Millis,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProblemReport {
    pub id: String,
    pub tenant: TenantId,
    #[serde(rename = "voipId")]
    pub voip_id: String,
    pub title: String,
    pub desc: String,
    #[serde(rename = "channelId")]
    pub channel_id: String,
    #[serde(rename = "reportedMs")]
    pub reported_ms: Millis,
}

type Key = (TenantId, String);

pub struct Directory {
    next_rtc_id: AtomicU64,
    next_client_seq: AtomicU64,
    by_device: DashMap<Key, String>,
    accounts: DashMap<Key, RtcAccount>,
    counts: DashMap<TenantId, u64>,
    tokens: DashMap<String, TokenRecord>,
    /// Per account: its live tokens, oldest first, and the DeviceId of the newest one.
    account_tokens: DashMap<Key, (VecDeque<String>, String)>,
    authed_numbers: DashMap<Key, Millis>,
    bindings: DashMap<Key, Vec<NumberBinding>>,
    /// The newest reports, oldest first, within `retention.problems` / `problem_bytes`.
    problems: parking_lot::Mutex<Bounded<ProblemReport>>,
    events: broadcast::Sender<DirectoryEvent>,
}

impl Default for Directory {
    fn default() -> Self {
        Self::new()
    }
}

impl Directory {
    pub fn new() -> Self {
        let r = crate::config::RetentionConfig::default();
        Self::with_problem_limit(Limit::new(r.problems, r.problem_bytes))
    }

    /// A directory keeping at most `limit` of problem reports.
    pub fn with_problem_limit(limit: Limit) -> Self {
        Directory {
            next_rtc_id: AtomicU64::new(FIRST_RTC_ID),
            next_client_seq: AtomicU64::new(1),
            by_device: DashMap::new(),
            accounts: DashMap::new(),
            counts: DashMap::new(),
            tokens: DashMap::new(),
            account_tokens: DashMap::new(),
            authed_numbers: DashMap::new(),
            bindings: DashMap::new(),
            problems: parking_lot::Mutex::new(Bounded::new(limit)),
            events: broadcast::channel(1024).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DirectoryEvent> {
        self.events.subscribe()
    }

    /// AddRtcAccount: one DeviceId, one account; asking again returns the same account.
    pub fn add_account(
        &self,
        tenant: TenantId,
        device_id: &str,
        limit: u64,
        now: Millis,
    ) -> Result<RtcAccount, AccountError> {
        match self.by_device.entry((tenant, device_id.to_string())) {
            Entry::Occupied(e) => {
                let rtc_id = e.get().clone();
                drop(e);
                self.accounts.get(&(tenant, rtc_id)).map(|a| a.clone()).ok_or(AccountError::NotExists)
            }
            Entry::Vacant(e) => {
                {
                    let mut count = self.counts.entry(tenant).or_insert(0);
                    if *count >= limit {
                        return Err(AccountError::LimitReached(limit));
                    }
                    *count += 1;
                }
                let rtc_id = self.next_rtc_id.fetch_add(1, Ordering::Relaxed).to_string();
                let account =
                    RtcAccount { tenant, rtc_id: rtc_id.clone(), device_id: device_id.to_string(), created_ms: now };
                self.accounts.insert((tenant, rtc_id.clone()), account.clone());
                e.insert(rtc_id);
                Ok(account)
            }
        }
    }

    /// An account with a chosen rtcId (virtual devices' well-known accounts, docs/voip-devices.md),
    /// outside the tenant's account limit. Asking again for the same pair returns the account.
    pub fn add_account_with_id(
        &self,
        tenant: TenantId,
        rtc_id: &str,
        device_id: &str,
        now: Millis,
    ) -> Result<RtcAccount, AccountTaken> {
        let key = (tenant, rtc_id.to_string());
        if let Some(a) = self.accounts.get(&key) {
            return if a.device_id == device_id {
                Ok(a.clone())
            } else {
                Err(AccountTaken { rtc_id: rtc_id.into(), device_id: device_id.into() })
            };
        }
        match self.by_device.entry((tenant, device_id.to_string())) {
            Entry::Occupied(_) => Err(AccountTaken { rtc_id: rtc_id.into(), device_id: device_id.into() }),
            Entry::Vacant(e) => {
                let account = RtcAccount {
                    tenant,
                    rtc_id: rtc_id.to_string(),
                    device_id: device_id.to_string(),
                    created_ms: now,
                };
                self.accounts.insert(key, account.clone());
                e.insert(rtc_id.to_string());
                Ok(account)
            }
        }
    }

    pub fn account(&self, tenant: TenantId, rtc_id: &str) -> Option<RtcAccount> {
        self.accounts.get(&(tenant, rtc_id.to_string())).map(|a| a.clone())
    }

    /// Accounts of one tenant (or all), ordered by rtcId.
    pub fn accounts(&self, tenant: Option<TenantId>) -> Vec<RtcAccount> {
        let mut v: Vec<_> =
            self.accounts.iter().filter(|a| tenant.is_none_or(|t| a.tenant == t)).map(|a| a.clone()).collect();
        v.sort_by(|a, b| (a.tenant, a.rtc_id.len(), &a.rtc_id).cmp(&(b.tenant, b.rtc_id.len(), &b.rtc_id)));
        v
    }

    /// GetRtcToken: a fresh token for an account. `custom` accepts any caller-chosen id.
    /// A token for another DeviceId than the account's previous token supersedes that device.
    pub fn issue_token(
        &self,
        tenant: TenantId,
        rtc_id: &str,
        device_id: &str,
        custom: bool,
        settings: &TokenSettings,
        now: Millis,
    ) -> Result<(TokenRecord, serde_json::Value), AccountError> {
        if !custom && !self.accounts.contains_key(&(tenant, rtc_id.to_string())) {
            return Err(AccountError::NotExists);
        }
        let seq = self.next_client_seq.fetch_add(1, Ordering::Relaxed);
        let record = TokenRecord {
            tenant,
            token_data: random_alnum(48),
            rtc_id: rtc_id.to_string(),
            device_id: device_id.to_string(),
            client_id: format!("GID_VOIP@@@ClientId_{rtc_id}_{seq}"),
            custom,
            issued_ms: now,
            expires_ms: now + settings.lifetime_ms,
        };
        let superseded = {
            let mut entry = self
                .account_tokens
                .entry((tenant, rtc_id.to_string()))
                .or_insert_with(|| (VecDeque::new(), device_id.to_string()));
            let (live, last_device) = &mut *entry;
            let superseded = (last_device != device_id).then(|| std::mem::replace(last_device, device_id.to_string()));
            live.push_back(record.token_data.clone());
            while live.len() > TOKENS_PER_ACCOUNT {
                if let Some(old) = live.pop_front() {
                    self.tokens.remove(&old);
                }
            }
            superseded
        };
        self.tokens.insert(record.token_data.clone(), record.clone());
        if let Some(old_device) = superseded {
            let _ = self.events.send(DirectoryEvent::DeviceSuperseded {
                tenant,
                rtc_id: rtc_id.to_string(),
                old_device,
                new_device: device_id.to_string(),
            });
        }
        let json = serde_json::json!({
            "cleansession": true,
            "clientId": record.client_id,
            "conferenceTopic": settings.conference_topic,
            "host": settings.mqtt_host,
            "meetingEventKeepAliveInterval": 0,
            "phoneTopic": "alicom_voip_phone",
            "port": settings.mqtt_tcp_port,
            "reconnectTimeout": 2000,
            "registerTime": now,
            "sdkClientPort": settings.mqtt_tcp_port,
            "serverId": settings.server_id,
            "sgwServerTopic": "alicom_voip_server_pre",
            "tlsport": settings.mqtt_ws_port,
            "tokenData": record.token_data,
            "useTLS": false,
        });
        Ok((record, json))
    }

    /// Checks a token the way the gateway must: known, not expired.
    pub fn validate_token(&self, token_data: &str, now: Millis) -> Result<TokenRecord, TokenError> {
        let t = self.tokens.get(token_data).ok_or(TokenError::Invalid)?;
        if now >= t.expires_ms {
            return Err(TokenError::Expired);
        }
        Ok(t.clone())
    }

    /// The DeviceId of the newest token of an account: logins of other devices are stale.
    pub fn current_device(&self, tenant: TenantId, rtc_id: &str) -> Option<String> {
        self.account_tokens.get(&(tenant, rtc_id.to_string())).map(|e| e.1.clone())
    }

    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// Drops expired tokens (called now and then; validation never trusts an expired one anyway).
    pub fn purge_expired_tokens(&self, now: Millis) {
        self.tokens.retain(|_, t| t.expires_ms > now);
    }

    pub fn auth_number(&self, tenant: TenantId, number: &str, now: Millis) {
        self.authed_numbers.entry((tenant, number.to_string())).or_insert(now);
    }

    pub fn unauth_number(&self, tenant: TenantId, number: &str) -> bool {
        self.authed_numbers.remove(&(tenant, number.to_string())).is_some()
    }

    pub fn number_authed_at(&self, tenant: TenantId, number: &str) -> Option<Millis> {
        self.authed_numbers.get(&(tenant, number.to_string())).map(|v| *v)
    }

    /// Binds a phone number to an account; binding the same pair twice is one binding.
    pub fn bind_number(&self, tenant: TenantId, number: &str, voip_id: &str, now: Millis) {
        let mut list = self.bindings.entry((tenant, number.to_string())).or_default();
        if !list.iter().any(|b| b.voip_id == voip_id) {
            list.push(NumberBinding { phone_number: number.into(), voip_id: voip_id.into(), bound_ms: now });
        }
    }

    pub fn unbind_number(&self, tenant: TenantId, number: &str, voip_id: &str) -> bool {
        let mut removed = false;
        if let Some(mut list) = self.bindings.get_mut(&(tenant, number.to_string())) {
            let before = list.len();
            list.retain(|b| b.voip_id != voip_id);
            removed = list.len() != before;
        }
        self.bindings.remove_if(&(tenant, number.to_string()), |_, l| l.is_empty());
        removed
    }

    /// Bindings of a tenant matching the number and/or the account (empty filter = any).
    pub fn bindings(&self, tenant: TenantId, number: Option<&str>, voip_id: Option<&str>) -> Vec<NumberBinding> {
        let mut v: Vec<NumberBinding> = self
            .bindings
            .iter()
            .filter(|e| e.key().0 == tenant && number.is_none_or(|n| e.key().1 == n))
            .flat_map(|e| e.value().clone())
            .filter(|b| voip_id.is_none_or(|id| b.voip_id == id))
            .collect();
        v.sort_by(|a, b| (&a.phone_number, &a.voip_id).cmp(&(&b.phone_number, &b.voip_id)));
        v
    }

    pub fn report_problem(&self, mut report: ProblemReport) -> String {
        report.id = format!("problem-{}", random_alnum(16));
        let id = report.id.clone();
        // A client that reports in a loop costs a bounded amount: the oldest reports go first.
        let weight = json_weight(&report);
        self.problems.lock().push(report, weight);
        id
    }

    /// The problem reports kept, for `/metrics`.
    pub fn problems_retained(&self) -> Retained {
        self.problems.lock().retained("problems")
    }

    /// The retained reports (the newest, within the caps), oldest first.
    pub fn problems(&self, tenant: Option<TenantId>) -> Vec<ProblemReport> {
        self.problems.lock().iter().filter(|p| tenant.is_none_or(|t| p.tenant == t)).cloned().collect()
    }

    /// Forgets every account, token, number and report; ids start again from the first.
    pub fn reset(&self) {
        self.by_device.clear();
        self.accounts.clear();
        self.counts.clear();
        self.tokens.clear();
        self.account_tokens.clear();
        self.authed_numbers.clear();
        self.bindings.clear();
        self.problems.lock().clear();
        self.next_rtc_id.store(FIRST_RTC_ID, Ordering::Relaxed);
        self.next_client_seq.store(1, Ordering::Relaxed);
        let _ = self.events.send(DirectoryEvent::Reset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_with_a_chosen_id() {
        let d = Directory::new();
        let a = d.add_account_with_id(TenantId(0), "9000000000000001", "echo", 5).unwrap();
        assert_eq!((a.rtc_id.as_str(), a.device_id.as_str()), ("9000000000000001", "echo"));
        assert_eq!(d.add_account_with_id(TenantId(0), "9000000000000001", "echo", 6).unwrap().created_ms, 5);
        assert!(matches!(d.add_account_with_id(TenantId(0), "9000000000000001", "x", 6), Err(AccountTaken { .. })));
        assert!(matches!(d.add_account_with_id(TenantId(0), "9000000000000009", "echo", 6), Err(AccountTaken { .. })));
        assert!(d.add_account_with_id(TenantId(1), "9000000000000001", "echo", 6).is_ok(), "tenants are separate");
        assert_eq!(d.add_account(TenantId(0), "echo", 10, 7).unwrap().rtc_id, "9000000000000001");
        assert_eq!(d.account(TenantId(0), "9000000000000001").unwrap().device_id, "echo");
    }

    #[test]
    fn problem_reports_are_capped_oldest_first() {
        const PROBLEMS_KEPT: usize = 1000;
        let d = Directory::with_problem_limit(Limit::new(PROBLEMS_KEPT, usize::MAX));
        let report = |i: u64| ProblemReport {
            id: String::new(),
            tenant: TenantId((i % 2) as usize),
            voip_id: format!("v{i}"),
            title: "t".into(),
            desc: "d".into(),
            channel_id: String::new(),
            reported_ms: i,
        };
        for i in 0..(PROBLEMS_KEPT as u64 + 10) {
            d.report_problem(report(i));
        }
        let all = d.problems(None);
        assert_eq!(all.len(), PROBLEMS_KEPT);
        assert_eq!((all[0].reported_ms, all.last().unwrap().reported_ms), (10, PROBLEMS_KEPT as u64 + 9));
        assert!(d.problems(Some(TenantId(1))).iter().all(|p| p.tenant == TenantId(1)));
        d.reset();
        assert!(d.problems(None).is_empty());
        // By bytes: 100 reports of ~1 KiB in 20 KiB keep the newest ~20.
        let d = Directory::with_problem_limit(Limit::new(1000, 20 * 1024));
        for i in 0..100 {
            d.report_problem(ProblemReport { desc: "x".repeat(1000), ..report(i) });
        }
        let r = d.problems_retained();
        assert!(r.bytes <= 20 * 1024 && r.items >= 15 && r.items <= 20, "{r:?}");
        assert_eq!(d.problems(None).last().unwrap().reported_ms, 99);
    }

    fn settings() -> TokenSettings {
        TokenSettings {
            mqtt_host: "127.0.0.1:18083/mqtt".into(),
            mqtt_ws_port: 18083,
            mqtt_tcp_port: 11883,
            conference_topic: "cs_alicom_voip_conference".into(),
            server_id: TokenSettings::server_id_for("127.0.0.1"),
            lifetime_ms: 60_000,
        }
    }
    const T: TenantId = TenantId(0);

    #[test]
    fn one_device_one_account() {
        let d = Directory::new();
        let a = d.add_account(T, "dev1", 10, 0).unwrap();
        let b = d.add_account(T, "dev1", 10, 5).unwrap();
        assert_eq!(a.rtc_id, b.rtc_id);
        assert_eq!(a.rtc_id, FIRST_RTC_ID.to_string());
        let c = d.add_account(T, "dev2", 10, 0).unwrap();
        assert_ne!(a.rtc_id, c.rtc_id);
        // Same device id in another tenant is another account.
        let other = d.add_account(TenantId(1), "dev1", 10, 0).unwrap();
        assert_ne!(other.rtc_id, a.rtc_id);
        assert!(d.account(TenantId(1), &a.rtc_id).is_none());
    }

    #[test]
    fn account_limit() {
        let d = Directory::new();
        d.add_account(T, "a", 1, 0).unwrap();
        assert_eq!(d.add_account(T, "b", 1, 0), Err(AccountError::LimitReached(1)));
        assert!(d.add_account(T, "a", 1, 0).is_ok(), "an existing device is not a new account");
    }

    #[test]
    fn token_fields_and_types() {
        let d = Directory::new();
        let a = d.add_account(T, "dev", 10, 0).unwrap();
        let (rec, json) = d.issue_token(T, &a.rtc_id, "dev", false, &settings(), 1000).unwrap();
        let obj = json.as_object().unwrap();
        assert_eq!(obj.len(), 15);
        for b in ["cleansession", "useTLS"] {
            assert!(obj[b].is_boolean(), "{b}");
        }
        for i in
            ["meetingEventKeepAliveInterval", "port", "reconnectTimeout", "registerTime", "sdkClientPort", "tlsport"]
        {
            assert!(obj[i].is_u64(), "{i}");
        }
        assert_eq!(obj["host"], "127.0.0.1:18083/mqtt");
        assert!(rec.client_id.starts_with(&format!("GID_VOIP@@@ClientId_{}_", a.rtc_id)));
        assert_eq!(d.validate_token(&rec.token_data, 1000).unwrap().rtc_id, a.rtc_id);
        assert_eq!(d.validate_token(&rec.token_data, 61_000), Err(TokenError::Expired));
        assert_eq!(d.validate_token("nope", 0), Err(TokenError::Invalid));
    }

    #[test]
    fn unknown_account_unless_custom() {
        let d = Directory::new();
        assert_eq!(d.issue_token(T, "42", "dev", false, &settings(), 0).unwrap_err(), AccountError::NotExists);
        assert!(d.issue_token(T, "my-user", "dev", true, &settings(), 0).is_ok());
    }

    #[test]
    fn another_device_supersedes() {
        let d = Directory::new();
        let mut rx = d.subscribe();
        let a = d.add_account(T, "dev1", 10, 0).unwrap();
        let (t1, _) = d.issue_token(T, &a.rtc_id, "dev1", false, &settings(), 0).unwrap();
        let (t2, _) = d.issue_token(T, &a.rtc_id, "dev1", false, &settings(), 0).unwrap();
        assert_ne!(t1.client_id, t2.client_id, "clientId unique per token");
        assert!(rx.try_recv().is_err(), "same device supersedes nothing");
        d.issue_token(T, &a.rtc_id, "phone2", false, &settings(), 0).unwrap();
        assert_eq!(
            rx.try_recv().unwrap(),
            DirectoryEvent::DeviceSuperseded {
                tenant: T,
                rtc_id: a.rtc_id.clone(),
                old_device: "dev1".into(),
                new_device: "phone2".into()
            }
        );
        assert_eq!(d.current_device(T, &a.rtc_id).as_deref(), Some("phone2"));
    }

    #[test]
    fn tokens_per_account_are_bounded() {
        let d = Directory::new();
        let a = d.add_account(T, "dev", 10, 0).unwrap();
        let first = d.issue_token(T, &a.rtc_id, "dev", false, &settings(), 0).unwrap().0;
        for _ in 0..TOKENS_PER_ACCOUNT {
            d.issue_token(T, &a.rtc_id, "dev", false, &settings(), 0).unwrap();
        }
        assert_eq!(d.token_count(), TOKENS_PER_ACCOUNT);
        assert_eq!(d.validate_token(&first.token_data, 0), Err(TokenError::Invalid));
    }

    #[test]
    fn bindings() {
        let d = Directory::new();
        d.bind_number(T, "13800000000", "2000000000000001", 0);
        d.bind_number(T, "13800000000", "2000000000000001", 0);
        d.bind_number(T, "13800000000", "2000000000000002", 0);
        assert_eq!(d.bindings(T, Some("13800000000"), None).len(), 2);
        assert_eq!(d.bindings(T, None, Some("2000000000000002")).len(), 1);
        assert!(d.bindings(TenantId(1), None, None).is_empty());
        assert!(d.unbind_number(T, "13800000000", "2000000000000001"));
        assert!(!d.unbind_number(T, "13800000000", "2000000000000001"));
    }
}
