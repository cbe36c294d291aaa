//! The calls driver's side of virtual VoIP devices (docs/voip-devices.md): the configured ones made
//! at start and by every reset, and the admin requests that create, inspect and drive them. The
//! devices themselves are in the switch (`Switch::voip`).

use emu_core::signalling::CalleeRequest;
use emu_core::{Millis, TenantId};
use emu_voip::{Behavior, CallOrder, DeviceView, VoipError};
use serde::Serialize;

use crate::driver::Driver;
use crate::requests::CallsError;

/// A virtual device as the admin API shows it: with its tenant's name and whether the gateway
/// has it online.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VirtualDeviceInfo {
    pub tenant: String,
    #[serde(flatten)]
    pub device: DeviceView,
    pub online: bool,
}

/// `PUT /admin/voip/devices/{rtcId}`.
#[derive(Debug, Clone)]
pub struct PutDevice {
    pub tenant: Option<String>,
    pub rtc_id: String,
    /// Makes the account with this DeviceId when it does not exist.
    pub device_id: Option<String>,
    pub behavior: Behavior,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAction {
    Answer,
    Reject,
    HangUp,
}

/// `POST /admin/voip/calls`.
#[derive(Debug, Clone)]
pub struct PlaceCall {
    pub tenant: Option<String>,
    pub from: String,
    pub callee: CalleeRequest,
    pub channel_id: Option<String>,
    pub extend: Option<String>,
    pub need_record: bool,
    pub cancel_on_reject: bool,
}

/// A new channelId for a virtual device's call, in the style of the SDK's (32 hex digits).
fn new_channel_id() -> String {
    emu_core::ids::random_hex_upper(32).to_ascii_lowercase()
}

impl Driver {
    /// Makes the `[voip] devices` of the configuration (their accounts too, with the given
    /// rtcIds): at start and after every reset.
    pub(crate) fn make_configured_devices(&mut self) -> Result<(), CallsError> {
        let now = self.now();
        let configured = self.shared.config.voip.devices.clone();
        for d in configured {
            let behavior = Behavior::from_json(d.behavior.clone())
                .map_err(|e| CallsError::Config(format!("[voip] device {}: {e}", d.rtc_id)))?;
            let device_id = if d.device_id.is_empty() { format!("virtual-{}", d.rtc_id) } else { d.device_id.clone() };
            let tenants: Vec<TenantId> = if d.tenant.is_empty() {
                self.shared.tenants.all().iter().map(|t| t.id).collect()
            } else {
                let t = self.shared.tenants.by_name(&d.tenant).ok_or_else(|| {
                    CallsError::Config(format!("[voip] device {}: no tenant named {:?}", d.rtc_id, d.tenant))
                })?;
                vec![t.id]
            };
            for tenant in tenants {
                self.shared
                    .directory
                    .add_account_with_id(tenant, &d.rtc_id, &device_id, now)
                    .map_err(|e| CallsError::Config(format!("[voip] device {}: {e}", d.rtc_id)))?;
                self.put_device(tenant, &d.rtc_id, Some(&device_id), behavior.clone(), now);
            }
        }
        Ok(())
    }

    fn put_device(
        &mut self,
        tenant: TenantId,
        rtc_id: &str,
        device_id: Option<&str>,
        b: Behavior,
        now: Millis,
    ) -> bool {
        let (created, effects) = self.switch.with_voip(now, |v| v.put(tenant, rtc_id, device_id, b, now));
        self.apply(effects);
        created
    }

    pub(crate) fn virtual_device_info(&self, tenant: TenantId, rtc_id: &str) -> Option<VirtualDeviceInfo> {
        let device = self.switch.voip.view(tenant, rtc_id)?;
        Some(self.info(device))
    }

    fn info(&self, device: DeviceView) -> VirtualDeviceInfo {
        let online = self.hub.virtual_conn(device.tenant, &device.rtc_id).is_some();
        VirtualDeviceInfo { tenant: self.switch.tenant_name(device.tenant).to_string(), device, online }
    }

    pub(crate) fn virtual_devices(&self, tenant: Option<&str>) -> Result<Vec<VirtualDeviceInfo>, CallsError> {
        let only = match tenant {
            Some(name) => Some(self.tenant_of(Some(name))?),
            None => None,
        };
        Ok(self
            .switch
            .voip
            .list()
            .into_iter()
            .filter(|d| only.is_none_or(|t| d.tenant == t))
            .map(|d| self.info(d))
            .collect())
    }

    /// Creates or changes a virtual device; `true` when created.
    pub(crate) fn put_virtual_device(&mut self, put: PutDevice) -> Result<(bool, VirtualDeviceInfo), CallsError> {
        let tenant = self.tenant_of(put.tenant.as_deref())?;
        let now = self.now();
        let account = self.shared.directory.account(tenant, &put.rtc_id);
        let device_id = match (account, put.device_id) {
            (Some(a), Some(id)) if a.device_id != id => {
                return Err(CallsError::Conflict(format!(
                    "account {} has DeviceId {}, not {id}",
                    put.rtc_id, a.device_id
                )));
            }
            (Some(a), _) => a.device_id,
            (None, Some(id)) => {
                self.shared
                    .directory
                    .add_account_with_id(tenant, &put.rtc_id, &id, now)
                    .map_err(|e| CallsError::Conflict(e.to_string()))?;
                id
            }
            (None, None) => {
                return Err(CallsError::NotFound(format!(
                    "no account {} in this tenant (give a deviceId to make it)",
                    put.rtc_id
                )));
            }
        };
        let created = self.put_device(tenant, &put.rtc_id, Some(&device_id), put.behavior, now);
        let info =
            self.virtual_device_info(tenant, &put.rtc_id).ok_or_else(|| VoipError::NotFound(put.rtc_id.clone()))?;
        Ok((created, info))
    }

    pub(crate) fn delete_virtual_device(&mut self, tenant: Option<&str>, rtc_id: &str) -> Result<(), CallsError> {
        let tenant = self.tenant_of(tenant)?;
        let now = self.now();
        let (result, effects) = self.switch.with_voip(now, |v| v.remove(tenant, rtc_id));
        self.apply(effects);
        Ok(result?)
    }

    pub(crate) fn virtual_device_action(
        &mut self,
        tenant: Option<&str>,
        rtc_id: &str,
        action: DeviceAction,
    ) -> Result<VirtualDeviceInfo, CallsError> {
        let tenant = self.tenant_of(tenant)?;
        let now = self.now();
        let (result, effects) = self.switch.with_voip(now, |v| match action {
            DeviceAction::Answer => v.answer(tenant, rtc_id, now),
            DeviceAction::Reject => v.reject(tenant, rtc_id, now),
            DeviceAction::HangUp => v.hangup(tenant, rtc_id, now),
        });
        self.apply(effects);
        result?;
        self.fire_due();
        self.virtual_device_info(tenant, rtc_id).ok_or_else(|| VoipError::NotFound(rtc_id.into()).into())
    }

    /// A call from a virtual device: the new channelId.
    pub(crate) fn place_virtual_call(&mut self, call: PlaceCall) -> Result<String, CallsError> {
        let tenant = self.tenant_of(call.tenant.as_deref())?;
        let now = self.now();
        let channel_id = call.channel_id.filter(|c| !c.is_empty()).unwrap_or_else(new_channel_id);
        if self.switch.engine.call(&channel_id).is_some() {
            return Err(CallsError::Conflict(format!("channel {channel_id} already exists")));
        }
        let order = CallOrder {
            channel_id: channel_id.clone(),
            callee: call.callee,
            extend: call.extend,
            need_record: call.need_record,
            cancel_on_reject: call.cancel_on_reject,
        };
        let (result, effects) = self.switch.with_voip(now, |v| v.call(tenant, &call.from, order, now));
        self.apply(effects);
        result?;
        self.fire_due();
        Ok(channel_id)
    }
}
