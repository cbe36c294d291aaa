//! The key of a registration: the account, `(tenant, rtcId)`. Every message the platform sends
//! looks its device's registration up; a key holding a `String` would need one built for each
//! lookup. Through [`AccountKey`], a `(TenantId, &str)` finds an [`Account`] with no allocation
//! (the map hashes and compares both the same way).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use emu_core::TenantId;

/// An account as the registrations map keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) tenant: TenantId,
    /// Shared with what a message to the account keeps of it (its pending request, its log event).
    pub(crate) rtc_id: Arc<str>,
}

impl Account {
    pub(crate) fn new(tenant: TenantId, rtc_id: &str) -> Account {
        Account { tenant, rtc_id: rtc_id.into() }
    }
}

/// What a lookup needs of a key: the tenant and the rtcId.
pub(crate) trait AccountKey {
    fn tenant(&self) -> TenantId;
    fn rtc_id(&self) -> &str;
}

impl AccountKey for Account {
    fn tenant(&self) -> TenantId {
        self.tenant
    }
    fn rtc_id(&self) -> &str {
        &self.rtc_id
    }
}

impl AccountKey for (TenantId, &str) {
    fn tenant(&self) -> TenantId {
        self.0
    }
    fn rtc_id(&self) -> &str {
        self.1
    }
}

impl Hash for dyn AccountKey + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.tenant().hash(h);
        self.rtc_id().hash(h);
    }
}

impl PartialEq for dyn AccountKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.tenant() == other.tenant() && self.rtc_id() == other.rtc_id()
    }
}

impl Eq for dyn AccountKey + '_ {}

// Hashed exactly as its `dyn AccountKey` view, as `Borrow` requires.
impl Hash for Account {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self as &dyn AccountKey).hash(h);
    }
}

impl<'a> Borrow<dyn AccountKey + 'a> for Account {
    fn borrow(&self) -> &(dyn AccountKey + 'a) {
        self
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn a_borrowed_pair_finds_the_account() {
        let mut m: HashMap<Account, u8> = HashMap::new();
        m.insert(Account::new(TenantId(1), "alice"), 1);
        m.insert(Account::new(TenantId(2), "alice"), 2);
        assert_eq!(m.get(&(TenantId(1), "alice") as &dyn AccountKey), Some(&1));
        assert_eq!(m.get(&(TenantId(2), "alice") as &dyn AccountKey), Some(&2));
        assert_eq!(m.get(&(TenantId(1), "bob") as &dyn AccountKey), None);
        assert_eq!(m.get(&Account::new(TenantId(2), "alice")), Some(&2));
    }
}
