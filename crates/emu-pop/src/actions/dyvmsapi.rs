//! Dyvmsapi: RTC accounts, tokens, number authorisation and binding, problem reports.

use emu_core::accounts::{AccountError, ProblemReport};
use serde_json::json;

use super::{Ctx, Fields, module, phone_number, required, required_bool};
use crate::reply::PopError;

fn account_error(e: AccountError) -> PopError {
    match e {
        AccountError::NotExists => PopError::business("isv.ACCOUNT_NOT_EXISTS", "The account does not exist."),
        // The manual names no code for the 5,000,000-account limit; ACCOUNT_ABNORMAL is the
        // documented code closest to "this cloud account can have no more RTC accounts".
        AccountError::LimitReached(n) => PopError::business(
            "isv.ACCOUNT_ABNORMAL",
            format!("The number of RTC accounts has reached the limit of {n}."),
        ),
    }
}

pub fn add_rtc_account(ctx: &Ctx<'_>) -> Result<Fields, PopError> {
    let device_id = required(ctx, "DeviceId")?;
    let tenant = ctx.shared.tenants.get(ctx.caller.key.tenant);
    let account =
        ctx.shared.directory.add_account(tenant.id, device_id, tenant.account_limit, ctx.now).map_err(account_error)?;
    tracing::info!(tenant = %tenant.name, rtc_id = %account.rtc_id, device_id, "RTC account");
    Ok(module(account.rtc_id))
}

fn token(ctx: &Ctx<'_>, id_param: &str) -> Result<Fields, PopError> {
    let user_id = required(ctx, id_param)?;
    let device_id = required(ctx, "DeviceId")?;
    let custom = required_bool(ctx, "IsCustomAccount")?;
    let tenant = ctx.caller.key.tenant;
    let (record, json) = ctx
        .shared
        .directory
        .issue_token(tenant, user_id, device_id, custom, &ctx.shared.token_settings, ctx.now)
        .map_err(account_error)?;
    tracing::debug!(rtc_id = %record.rtc_id, device_id, client_id = %record.client_id, "token issued");
    Ok(module(json.to_string()))
}

pub fn get_rtc_token(ctx: &Ctx<'_>) -> Result<Fields, PopError> {
    token(ctx, "UserId")
}

pub fn voip_get_token(ctx: &Ctx<'_>) -> Result<Fields, PopError> {
    token(ctx, "VoipId")
}

pub fn query_rtc_number_auth_status(ctx: &Ctx<'_>) -> Result<Fields, PopError> {
    let number = phone_number(ctx, "PhoneNumber")?;
    let authed = ctx.shared.directory.number_authed_at(ctx.caller.key.tenant, number);
    let status = if authed.is_some() { "AUTHED" } else { "UNAUTHED" };
    Ok(module(json!({"phoneNumber": number, "status": status}).to_string()))
}

pub fn do_rtc_number_auth(ctx: &Ctx<'_>) -> Result<Fields, PopError> {
    let number = phone_number(ctx, "PhoneNumber")?;
    ctx.shared.directory.auth_number(ctx.caller.key.tenant, number, ctx.now);
    Ok(module("true"))
}

pub fn undo_rtc_number_auth(ctx: &Ctx<'_>) -> Result<Fields, PopError> {
    let number = phone_number(ctx, "PhoneNumber")?;
    ctx.shared.directory.unauth_number(ctx.caller.key.tenant, number);
    Ok(module("true"))
}

/// The account must exist in the caller's tenant (binding someone else's id is refused).
fn existing_voip_id<'p>(ctx: &'p Ctx<'_>) -> Result<&'p str, PopError> {
    let voip_id = required(ctx, "VoipId")?;
    match ctx.shared.directory.account(ctx.caller.key.tenant, voip_id) {
        Some(_) => Ok(voip_id),
        None => Err(account_error(AccountError::NotExists)),
    }
}

pub fn bind_number_and_voip_id(ctx: &Ctx<'_>) -> Result<Fields, PopError> {
    let number = phone_number(ctx, "PhoneNumber")?;
    let voip_id = existing_voip_id(ctx)?;
    ctx.shared.directory.bind_number(ctx.caller.key.tenant, number, voip_id, ctx.now);
    Ok(module("true"))
}

pub fn unbind_number_and_voip_id(ctx: &Ctx<'_>) -> Result<Fields, PopError> {
    let number = phone_number(ctx, "PhoneNumber")?;
    let voip_id = required(ctx, "VoipId")?;
    ctx.shared.directory.unbind_number(ctx.caller.key.tenant, number, voip_id);
    Ok(module("true"))
}

/// Either filter may be given; at least one must be.
pub fn query_voip_number_bind_infos(ctx: &Ctx<'_>) -> Result<Fields, PopError> {
    let number = match ctx.params.non_empty("PhoneNumber") {
        Some(_) => Some(phone_number(ctx, "PhoneNumber")?),
        None => None,
    };
    let voip_id = ctx.params.non_empty("VoipId");
    if number.is_none() && voip_id.is_none() {
        return Err(PopError::invalid_parameters("PhoneNumber or VoipId is mandatory for this action."));
    }
    let list = ctx.shared.directory.bindings(ctx.caller.key.tenant, number, voip_id);
    Ok(module(serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())))
}

pub fn report_voip_problems(ctx: &Ctx<'_>) -> Result<Fields, PopError> {
    let voip_id = required(ctx, "VoipId")?;
    let title = required(ctx, "Title")?;
    let desc = ctx.params.get("Desc").unwrap_or_default();
    let channel_id = ctx.params.get("ChannelId").unwrap_or_default();
    if desc.chars().count() > 4096 {
        return Err(PopError::invalid_parameters("Desc is longer than 4096 characters."));
    }
    let id = ctx.shared.directory.report_problem(ProblemReport {
        id: String::new(),
        tenant: ctx.caller.key.tenant,
        voip_id: voip_id.into(),
        title: title.into(),
        desc: desc.into(),
        channel_id: channel_id.into(),
        reported_ms: ctx.now,
    });
    tracing::info!(voip_id, channel_id, title, "problem reported");
    Ok(module(id))
}
