//! Custom messages between accounts (docs/protocol.md#custom-messages): a device's
//! `cs_custom_message_send` becomes a `cs_custom_message_push` to the target account's device,
//! and the target's ACK (or its absence) a `cs_custom_message_receipt` to the sender. The gateway
//! does it alone: no call is involved, and the ACK and retransmission machinery for server
//! requests is the delivery guarantee.

use serde_json::{Value, json};

use super::*;

/// The vendor's limit, counted as the iOS SDK counts (`NSString.length`: UTF-16 code units).
pub const MAX_CONTENT_UNITS: usize = 1024;
/// Empty content, or longer than [`MAX_CONTENT_UNITS`].
pub const CODE_MESSAGE_INVALID: i64 = 2_000_120;
/// The target did not receive it: unknown account, offline, refused or never ACKed.
pub const CODE_DELIVERY_FAILED: i64 = 2_000_122;

/// Why a custom message was not delivered; each maps to the code its receipt carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomMessageError {
    #[error("content is empty")]
    Empty,
    #[error("content is {0} characters (UTF-16 units); at most {MAX_CONTENT_UNITS}")]
    TooLong(usize),
    #[error("no targetRtcId")]
    NoTarget,
    #[error("the sender logged in in custom-account mode; custom messages need account mode")]
    CustomAccount,
    #[error("{0} is not an account of this tenant")]
    UnknownTarget(String),
    #[error("{0} is offline")]
    Offline(String),
    #[error("{0} did not ACK the message (responseCode {1})")]
    Refused(String, i64),
    #[error("{0} never ACKed the message")]
    NeverAcked(String),
}

impl CustomMessageError {
    pub fn code(&self) -> i64 {
        match self {
            CustomMessageError::Empty | CustomMessageError::TooLong(_) => CODE_MESSAGE_INVALID,
            _ => CODE_DELIVERY_FAILED,
        }
    }
}

/// A custom message to deliver: from an account (a device, or the admin API speaking for one).
#[derive(Debug, Clone)]
pub struct CustomMessage {
    pub tenant: TenantId,
    pub source: String,
    pub target: String,
    pub content: String,
    /// The sender's sequence number, echoed as sent (a number or a string).
    pub sequence: Value,
}

/// What a pushed message waits for: the sender to tell when the target ACKs or never does.
#[derive(Debug, Clone)]
pub(super) struct AwaitingAck {
    message: CustomMessage,
    /// The device that sent it; `None` when the admin API did.
    reply_to: Option<String>,
}

impl Hub {
    /// `cs_custom_message_send` from a device (already ACKed): validate, push, or answer the
    /// sender with a failed receipt at once.
    pub(super) fn custom_message_from_device(&self, who: &Identity, body: &Value) {
        let message = CustomMessage {
            tenant: who.tenant,
            source: who.rtc_id.to_string(),
            target: body.get("targetRtcId").and_then(Value::as_str).unwrap_or_default().to_string(),
            content: body.get("content").and_then(Value::as_str).unwrap_or_default().to_string(),
            sequence: body.get("sequence").cloned().unwrap_or(Value::Null),
        };
        let result = if who.custom_account {
            Err(CustomMessageError::CustomAccount)
        } else {
            self.push_custom(&message, Some(who.rtc_id.to_string()))
        };
        if let Err(e) = result {
            self.custom_failed(&AwaitingAck { message, reply_to: Some(who.rtc_id.to_string()) }, &e);
        }
    }

    /// Pushes a custom message to the target's device; the receipt follows its ACK. Returns the
    /// push's requestId. Used by devices and by `POST /admin/messages`.
    pub fn send_custom_message(&self, message: CustomMessage) -> Result<String, CustomMessageError> {
        self.push_custom(&message, None)
    }

    fn push_custom(&self, m: &CustomMessage, reply_to: Option<String>) -> Result<String, CustomMessageError> {
        let units = m.content.encode_utf16().count();
        if units == 0 {
            return Err(CustomMessageError::Empty);
        }
        if units > MAX_CONTENT_UNITS {
            return Err(CustomMessageError::TooLong(units));
        }
        if m.target.is_empty() {
            return Err(CustomMessageError::NoTarget);
        }
        if self.shared.directory.account(m.tenant, &m.target).is_none() {
            return Err(CustomMessageError::UnknownTarget(m.target.clone()));
        }
        if !self.online(m.tenant, &m.target) {
            return Err(CustomMessageError::Offline(m.target.clone()));
        }
        self.log(
            "message.sent",
            Some(m.tenant),
            Some(m.source.as_str()),
            None,
            json!({"source": m.source, "target": m.target, "sequence": m.sequence, "length": units,
                   "from": if reply_to.is_some() { "device" } else { "admin" }}),
        );
        let body = json!({
            "sourceRtcId": m.source,
            "content": m.content,
            "sequence": m.sequence,
            "timestamp": self.shared.clock.now_ms(),
        });
        let awaiting = AwaitingAck { message: m.clone(), reply_to };
        let request_id = self
            .send_request_awaiting(m.tenant, &m.target, "cs_custom_message_push", body, Some(awaiting))
            .map_err(|_| CustomMessageError::Offline(m.target.clone()))?;
        // A virtual device takes every custom message (docs/voip-devices.md).
        if self.virtual_conn(m.tenant, &m.target).is_some() {
            self.virtual_ack(m.tenant, &m.target, &request_id);
        }
        Ok(request_id)
    }

    /// The target answered the push (`code` 200: received).
    pub(super) fn custom_acked(&self, awaiting: &AwaitingAck, request_id: &str, code: i64) {
        if code != 200 {
            self.custom_failed(awaiting, &CustomMessageError::Refused(awaiting.message.target.clone(), code));
            return;
        }
        let m = &awaiting.message;
        self.log(
            "message.delivered",
            Some(m.tenant),
            Some(m.target.as_str()),
            None,
            json!({"source": m.source, "target": m.target, "sequence": m.sequence, "requestId": request_id}),
        );
        self.send_receipt(awaiting, None);
    }

    /// The push was never ACKed (the retransmissions ran out), or could not be sent.
    pub(super) fn custom_failed(&self, awaiting: &AwaitingAck, why: &CustomMessageError) {
        let m = &awaiting.message;
        tracing::info!(source = %m.source, target = %m.target, code = why.code(), "custom message failed: {why}");
        self.log(
            "message.failed",
            Some(m.tenant),
            Some(m.source.as_str()),
            None,
            json!({"source": m.source, "target": m.target, "sequence": m.sequence, "code": why.code(), "reason": why.to_string()}),
        );
        self.send_receipt(awaiting, Some(why));
    }

    fn send_receipt(&self, awaiting: &AwaitingAck, failure: Option<&CustomMessageError>) {
        let Some(sender) = &awaiting.reply_to else { return };
        let m = &awaiting.message;
        let body = json!({
            "sequence": m.sequence,
            "targetRtcId": m.target,
            "success": failure.is_none(),
            "errorCode": failure.map_or(0, CustomMessageError::code),
            "errorMessage": failure.map(ToString::to_string).unwrap_or_default(),
            "timestamp": self.shared.clock.now_ms(),
        });
        self.log(
            "message.receipt",
            Some(m.tenant),
            Some(sender.as_str()),
            None,
            json!({"target": m.target, "sequence": m.sequence, "success": failure.is_none(),
                   "errorCode": failure.map_or(0, CustomMessageError::code)}),
        );
        // A sender gone offline since gets nothing; the event log still says what happened.
        let _ = self.send_request(m.tenant, sender, "cs_custom_message_receipt", body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(CustomMessageError::Empty.code(), 2_000_120);
        assert_eq!(CustomMessageError::TooLong(1025).code(), 2_000_120);
        assert_eq!(CustomMessageError::Offline("x".into()).code(), 2_000_122);
        assert_eq!(CustomMessageError::NeverAcked("x".into()).code(), 2_000_122);
    }
}
