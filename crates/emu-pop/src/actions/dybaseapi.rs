//! Dybaseapi: `QueryTokenForMnsQueue`, the temporary MNS credentials of the receipt pullers.

use emu_core::clock::format_shanghai;
use serde_json::{Map, json};

use super::{Ctx, Fields, required};
use crate::reply::PopError;

/// Lifetime of the issued credentials: the vendor's pullers refresh 2 minutes before expiry,
/// and 8 hours is what docs/pop-api.md#actions documents.
pub const MNS_TOKEN_LIFETIME_MS: u64 = 8 * 3600 * 1000;

pub fn query_token_for_mns_queue(ctx: &Ctx<'_>) -> Result<Fields, PopError> {
    let message_type = required(ctx, "MessageType")?;
    let tenant = ctx.shared.tenants.get(ctx.caller.key.tenant);
    let queue = match ctx.params.non_empty("QueueName") {
        Some(q) => q.to_string(),
        None => format!("Alicom-Queue-{}-{}", tenant.uid, message_type),
    };
    if let Some(create) = ctx.queue_hook {
        create(tenant.id, &queue);
    }
    let cred = ctx.shared.tenants.issue_sts(tenant.id, ctx.now, MNS_TOKEN_LIFETIME_MS, vec![queue]);
    let mut f = Map::new();
    f.insert(
        "MessageTokenDTO".into(),
        json!({
            "AccessKeyId": cred.access_key_id,
            "AccessKeySecret": cred.access_key_secret,
            "SecurityToken": cred.security_token,
            "CreateTime": format_shanghai(cred.created_ms),
            "ExpireTime": format_shanghai(cred.expires_ms),
        }),
    );
    Ok(f)
}
