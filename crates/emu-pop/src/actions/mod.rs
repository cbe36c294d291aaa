//! The POP actions, one function each, dispatched by `Action` (Dyvmsapi and Dybaseapi share the
//! version string 2017-05-25, so the action name alone picks the product).

mod dybaseapi;
mod dyvmsapi;

use axum::http::StatusCode;
use emu_core::{Millis, Shared};
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::params::Params;
use crate::reply::PopError;

pub const VERSION: &str = "2017-05-25";

/// Everything an action may look at.
pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub caller: &'a Caller,
    pub params: &'a Params,
    pub now: Millis,
    pub queue_hook: Option<&'a crate::QueueHook>,
}

/// The fields an action adds to a successful response (`Module`, `MessageTokenDTO`, …).
pub type Fields = Map<String, Value>;

type Handler = fn(&Ctx<'_>) -> Result<Fields, PopError>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Product {
    Dyvmsapi,
    Dybaseapi,
}

const ACTIONS: &[(&str, Product, Handler)] = &[
    ("AddRtcAccount", Product::Dyvmsapi, dyvmsapi::add_rtc_account),
    ("VoipAddAccount", Product::Dyvmsapi, dyvmsapi::add_rtc_account),
    ("GetRtcToken", Product::Dyvmsapi, dyvmsapi::get_rtc_token),
    ("VoipGetToken", Product::Dyvmsapi, dyvmsapi::voip_get_token),
    ("QueryRtcNumberAuthStatus", Product::Dyvmsapi, dyvmsapi::query_rtc_number_auth_status),
    ("DoRtcNumberAuth", Product::Dyvmsapi, dyvmsapi::do_rtc_number_auth),
    ("UndoRtcNumberAuth", Product::Dyvmsapi, dyvmsapi::undo_rtc_number_auth),
    ("BindNumberAndVoipId", Product::Dyvmsapi, dyvmsapi::bind_number_and_voip_id),
    ("UnbindNumberAndVoipId", Product::Dyvmsapi, dyvmsapi::unbind_number_and_voip_id),
    ("QueryVoipNumberBindInfos", Product::Dyvmsapi, dyvmsapi::query_voip_number_bind_infos),
    ("ReportVoipProblems", Product::Dyvmsapi, dyvmsapi::report_voip_problems),
    ("QueryTokenForMnsQueue", Product::Dybaseapi, dybaseapi::query_token_for_mns_queue),
];

/// The names of every action the emulator serves.
pub fn names() -> impl Iterator<Item = &'static str> {
    ACTIONS.iter().map(|(n, _, _)| *n)
}

pub fn dispatch(action: &str, ctx: &Ctx<'_>) -> Result<Fields, PopError> {
    let Some((_, product, handler)) = ACTIONS.iter().find(|(n, _, _)| *n == action) else {
        return Err(PopError::new(
            StatusCode::NOT_FOUND,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        ));
    };
    if *product == Product::Dyvmsapi {
        // A faulty key wins over the tenant's state: it is the narrower setting.
        let state = match ctx.caller.key.fault {
            emu_core::tenants::AccountState::Normal => ctx.shared.tenants.get(ctx.caller.key.tenant).state(),
            fault => fault,
        };
        if let Some((code, message)) = state.error() {
            return Err(PopError::business(code, message));
        }
    }
    handler(ctx)
}

/// A module-only success.
fn module(value: impl Into<Value>) -> Fields {
    let mut f = Map::new();
    f.insert("Module".into(), value.into());
    f
}

/// Longest accepted id (DeviceId, UserId, VoipId, ChannelId).
const MAX_ID_LEN: usize = 256;

fn required<'p>(ctx: &'p Ctx<'_>, name: &str) -> Result<&'p str, PopError> {
    let v = ctx.params.non_empty(name).ok_or_else(|| PopError::missing(name))?;
    if v.chars().count() > MAX_ID_LEN {
        return Err(PopError::invalid_parameters(format!("{name} is longer than {MAX_ID_LEN} characters.")));
    }
    Ok(v)
}

/// Booleans arrive as `true`/`false` (Node, Java) or `True`/`False` (Python).
fn required_bool(ctx: &Ctx<'_>, name: &str) -> Result<bool, PopError> {
    let v = required(ctx, name)?;
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(PopError::invalid_parameters(format!("{name} must be true or false, not {v:?}.")))
    }
}

/// Phone numbers as the vendor's APIs take them: digits, optionally a leading `+`, 3 to 20 long.
fn phone_number<'p>(ctx: &'p Ctx<'_>, name: &str) -> Result<&'p str, PopError> {
    let v = required(ctx, name)?;
    let digits = v.strip_prefix('+').unwrap_or(v);
    if (3..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(v)
    } else {
        Err(PopError::invalid_parameters(format!("{name} {v:?} is not a valid phone number.")))
    }
}
