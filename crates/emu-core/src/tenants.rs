//! Tenants (cloud accounts), their AccessKeys, and the temporary STS credentials the emulator
//! issues. Everything else the emulator keeps is keyed by [`TenantId`], which is how one tenant's
//! accounts, numbers, queues and calls stay invisible to the others.

use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::RwLock;
use serde::Serialize;

pub use crate::account_state::AccountState;
use crate::clock::Millis;
use crate::config::TenantConfig;
pub use crate::ids::random_alnum;

/// Index of a tenant in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
pub struct TenantId(pub usize);

#[derive(Debug)]
pub struct Tenant {
    pub id: TenantId,
    /// Shared by every event and record that names the tenant (a reference count, no copy).
    pub name: Arc<str>,
    pub uid: String,
    pub account_limit: u64,
    state: RwLock<AccountState>,
}

impl Tenant {
    pub fn state(&self) -> AccountState {
        *self.state.read()
    }
}

/// What an AccessKeyId resolves to.
#[derive(Debug, Clone)]
pub struct ResolvedKey {
    pub tenant: TenantId,
    pub secret: String,
    pub fault: AccountState,
    /// Set for temporary (STS) credentials: the token that must come with them.
    pub sts: Option<StsCredential>,
}

#[derive(Debug, Clone)]
struct KeyEntry {
    tenant: TenantId,
    secret: String,
    fault: AccountState,
}

/// Temporary credentials issued by the emulator (QueryTokenForMnsQueue, the admin API).
#[derive(Debug, Clone, Serialize)]
pub struct StsCredential {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub security_token: String,
    pub tenant: TenantId,
    pub created_ms: Millis,
    pub expires_ms: Millis,
    /// What the credential was issued for (e.g. a queue name); empty = anything of the tenant.
    pub scope: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("unknown access key")]
    Unknown,
    #[error("the security token is missing or does not belong to this access key")]
    BadSecurityToken,
    #[error("the security token has expired")]
    Expired,
}

pub struct Tenants {
    tenants: Vec<Tenant>,
    keys: DashMap<String, KeyEntry>,
    sts: DashMap<String, StsCredential>,
}

impl Tenants {
    pub fn new(configs: &[TenantConfig]) -> Self {
        let keys = DashMap::new();
        let tenants = configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                for k in &c.access_keys {
                    keys.insert(
                        k.id.clone(),
                        KeyEntry { tenant: TenantId(i), secret: k.secret.clone(), fault: k.fault.unwrap_or_default() },
                    );
                }
                Tenant {
                    id: TenantId(i),
                    name: c.name.as_str().into(),
                    uid: c.uid.clone(),
                    account_limit: c.account_limit,
                    state: RwLock::new(c.state),
                }
            })
            .collect();
        Tenants { tenants, keys, sts: DashMap::new() }
    }

    pub fn all(&self) -> &[Tenant] {
        &self.tenants
    }

    pub fn get(&self, id: TenantId) -> &Tenant {
        &self.tenants[id.0]
    }

    pub fn by_name(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| *t.name == *name)
    }

    pub fn set_state(&self, id: TenantId, state: AccountState) {
        *self.tenants[id.0].state.write() = state;
    }

    /// Marks an AccessKey as faulty (or healthy again with `Normal`). False if the key is unknown.
    pub fn set_key_fault(&self, key_id: &str, fault: AccountState) -> bool {
        match self.keys.get_mut(key_id) {
            Some(mut k) => {
                k.fault = fault;
                true
            }
            None => false,
        }
    }

    /// The AccessKeys of a tenant with their faults (secrets included: this is a local emulator).
    pub fn keys_of(&self, id: TenantId) -> Vec<(String, String, AccountState)> {
        let mut v: Vec<_> =
            self.keys.iter().filter(|e| e.tenant == id).map(|e| (e.key().clone(), e.secret.clone(), e.fault)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Looks up an AccessKeyId; STS keys must come with their security token and be unexpired.
    pub fn resolve(&self, key_id: &str, security_token: Option<&str>, now: Millis) -> Result<ResolvedKey, KeyError> {
        if let Some(k) = self.keys.get(key_id) {
            return Ok(ResolvedKey { tenant: k.tenant, secret: k.secret.clone(), fault: k.fault, sts: None });
        }
        let cred = self.sts.get(key_id).ok_or(KeyError::Unknown)?;
        if security_token != Some(cred.security_token.as_str()) {
            return Err(KeyError::BadSecurityToken);
        }
        if now >= cred.expires_ms {
            return Err(KeyError::Expired);
        }
        Ok(ResolvedKey {
            tenant: cred.tenant,
            secret: cred.access_key_secret.clone(),
            fault: AccountState::Normal,
            sts: Some(cred.clone()),
        })
    }

    /// Issues temporary credentials for a tenant.
    pub fn issue_sts(&self, tenant: TenantId, now: Millis, lifetime_ms: Millis, scope: Vec<String>) -> StsCredential {
        let cred = StsCredential {
            access_key_id: format!("STS.{}", random_alnum(24)),
            access_key_secret: random_alnum(40),
            security_token: format!("CAIS{}", random_alnum(200)),
            tenant,
            created_ms: now,
            expires_ms: now + lifetime_ms,
            scope,
        };
        // Expired credentials are of no use to anyone: drop them while we are here.
        self.sts.retain(|_, c| c.expires_ms > now);
        self.sts.insert(cred.access_key_id.clone(), cred.clone());
        cred
    }

    /// Forgets run-time state: STS credentials, tenant states and key faults go back to config.
    pub fn reset(&self, configs: &[TenantConfig]) {
        self.sts.clear();
        for (i, c) in configs.iter().enumerate() {
            self.set_state(TenantId(i), c.state);
            for k in &c.access_keys {
                self.set_key_fault(&k.id, k.fault.unwrap_or_default());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AccessKeyConfig;

    fn two() -> Vec<TenantConfig> {
        let t = |name: &str, uid: &str, ak: &str| TenantConfig {
            name: name.into(),
            uid: uid.into(),
            state: AccountState::Normal,
            account_limit: 10,
            access_keys: vec![AccessKeyConfig { id: ak.into(), secret: format!("{ak}-secret"), fault: None }],
            callbacks: Default::default(),
            numbers: vec![],
            self_lines: vec![],
        };
        vec![t("a", "1", "akA"), t("b", "2", "akB")]
    }

    #[test]
    fn keys_resolve_to_their_tenant() {
        let t = Tenants::new(&two());
        assert_eq!(t.resolve("akB", None, 0).unwrap().tenant, TenantId(1));
        assert_eq!(t.resolve("nope", None, 0).unwrap_err(), KeyError::Unknown);
    }

    #[test]
    fn sts_needs_its_token_and_expires() {
        let t = Tenants::new(&two());
        let c = t.issue_sts(TenantId(0), 1000, 60_000, vec![]);
        assert!(c.access_key_id.starts_with("STS."));
        assert_eq!(t.resolve(&c.access_key_id, None, 1000).unwrap_err(), KeyError::BadSecurityToken);
        let ok = t.resolve(&c.access_key_id, Some(&c.security_token), 1000).unwrap();
        assert_eq!(ok.secret, c.access_key_secret);
        assert_eq!(t.resolve(&c.access_key_id, Some(&c.security_token), 61_000).unwrap_err(), KeyError::Expired);
    }

    #[test]
    fn state_and_fault_reset_to_config() {
        let cfg = two();
        let t = Tenants::new(&cfg);
        t.set_state(TenantId(0), AccountState::OutOfService);
        assert!(t.set_key_fault("akB", AccountState::SystemError));
        t.reset(&cfg);
        assert_eq!(t.get(TenantId(0)).state(), AccountState::Normal);
        assert_eq!(t.resolve("akB", None, 0).unwrap().fault, AccountState::Normal);
    }

    #[test]
    fn state_names_are_vendor_codes() {
        let s: AccountState = serde_json::from_str("\"isv.OUT_OF_SERVICE\"").unwrap();
        assert_eq!(s, AccountState::OutOfService);
        assert_eq!(s.to_string(), "isv.OUT_OF_SERVICE");
    }
}
