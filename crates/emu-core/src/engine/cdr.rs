//! The `ArtcCdrReport` of a call (docs/calls.md#cdrs-artccdrreport): one per call, answered or not.

use serde::Serialize;
use serde_json::Value;

use super::call::{Call, Caller, Outcome, Target};
use crate::clock::{Millis, format_shanghai};

fn secs(from: Millis, to: Millis) -> String {
    (to.saturating_sub(from) / 1000).to_string()
}

/// The report's fields in the order of the vendor's; `startTime` only for an answered call.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    channel_id: &'a str,
    caller: &'a str,
    callee: String,
    alicom_rtc_type: &'static str,
    end_time: String,
    duration: String,
    extend: &'a str,
    call_in_info: CallIn<'a>,
    call_out_info: Vec<CallOut<'a>>,
    detail: Detail<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CallIn<'a> {
    caller: &'a str,
    callee: String,
    start_time: String,
    end_time: String,
    duration: String,
}

/// One rung leg, or (`ring_start_time` absent) one callee that was never dialled.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CallOut<'a> {
    caller: &'a str,
    callee: &'a str,
    end_time: String,
    duration: String,
    outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ring_start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Detail<'a> {
    end_reason: &'a Option<String>,
    cause_code: Option<i64>,
    display_number: &'a Option<String>,
    need_record: bool,
}

/// Who was called, whatever stopped the call: the answered leg, else the first rung, else the
/// first callee asked for (a call refused before dialling), else the number a phone dialled.
fn callee_label(call: &Call) -> String {
    call.answered_leg()
        .or(call.legs.first())
        .map(|l| l.target.label().to_string())
        .or_else(|| call.requested.first().map(|t| t.label().to_string()))
        .or_else(|| matches!(call.caller, Caller::Phone { .. }).then(|| call.display_number.clone()).flatten())
        .unwrap_or_default()
}

/// Builds the report; `startTime` is absent and `duration` "0" for whatever was never answered.
/// Typed, and turned into JSON once (it was a `json!` tree of `json!` trees, each copied into
/// the next).
pub fn report(call: &Call) -> Value {
    let ended = call.ended_ms.unwrap_or(call.created_ms);
    let caller = call.caller_label();
    let callee = callee_label(call);
    let call_in = CallIn {
        caller,
        callee: match &call.caller {
            Caller::Phone { .. } => call.display_number.clone().unwrap_or_default(),
            Caller::Device { .. } => callee.clone(),
        },
        start_time: format_shanghai(call.created_ms),
        end_time: format_shanghai(ended),
        duration: secs(call.created_ms, ended),
    };
    // A leg's caller: the display number towards a phone, the caller's label otherwise.
    fn from<'a>(t: &'a Target, caller: &'a str) -> &'a str {
        match t {
            Target::Phone { display, .. } => display,
            _ => caller,
        }
    }
    let call_out: Vec<CallOut> = if call.legs.is_empty() {
        // Refused before anyone was rung: one entry per callee asked for, never dialled.
        call.requested
            .iter()
            .map(|t| CallOut {
                caller: from(t, caller),
                callee: t.label(),
                end_time: String::new(),
                duration: "0".into(),
                outcome: Some(Outcome::NotDialled),
                ring_start_time: None,
                start_time: None,
            })
            .collect()
    } else {
        call.legs
            .iter()
            .map(|l| {
                let end = l.ended_ms.unwrap_or(ended);
                CallOut {
                    caller: from(&l.target, caller),
                    callee: l.target.label(),
                    end_time: if l.answered_ms.is_some() { format_shanghai(end) } else { String::new() },
                    duration: l.answered_ms.map(|a| secs(a, end)).unwrap_or_else(|| "0".into()),
                    outcome: l.outcome,
                    ring_start_time: Some(format_shanghai(l.start_ms)),
                    start_time: l.answered_ms.map(format_shanghai),
                }
            })
            .collect()
    };
    let report = Report {
        channel_id: &call.channel_id,
        caller,
        callee,
        alicom_rtc_type: call.reported_type(),
        end_time: if call.answered_ms.is_some() { format_shanghai(ended) } else { String::new() },
        duration: call.answered_ms.map(|a| secs(a, ended)).unwrap_or_else(|| "0".into()),
        extend: &call.extend,
        call_in_info: call_in,
        call_out_info: call_out,
        detail: Detail {
            end_reason: &call.end_reason,
            cause_code: call.cause_code,
            display_number: &call.display_number,
            need_record: call.need_record,
        },
        start_time: call.answered_ms.map(format_shanghai),
    };
    serde_json::to_value(report).unwrap_or_default()
}

#[cfg(test)]
/// The report as it was built before it was typed, with `json!`: the typed report must be the same,
/// key order included.
///
/// Builds the report; `startTime` is absent and `duration` "0" for whatever was never answered.
pub(super) fn json_report(call: &Call) -> Value {
    let ended = call.ended_ms.unwrap_or(call.created_ms);
    let caller = call.caller_label().to_string();
    let callee = callee_label(call);
    use serde_json::json;
    let call_in = json!({
        "caller": caller,
        "callee": match &call.caller { Caller::Phone { .. } => call.display_number.clone().unwrap_or_default(), Caller::Device { .. } => callee.clone() },
        "startTime": format_shanghai(call.created_ms),
        "endTime": format_shanghai(ended),
        "duration": secs(call.created_ms, ended),
    });
    let mut call_out: Vec<Value> = call
        .legs
        .iter()
        .map(|l| {
            let end = l.ended_ms.unwrap_or(ended);
            let mut leg = json!({
                "caller": match &l.target { Target::Phone { display, .. } => display.clone(), _ => caller.clone() },
                "callee": l.target.label(),
                "endTime": if l.answered_ms.is_some() { format_shanghai(end) } else { String::new() },
                "duration": l.answered_ms.map(|a| secs(a, end)).unwrap_or_else(|| "0".into()),
                "outcome": l.outcome,
                "ringStartTime": format_shanghai(l.start_ms),
            });
            if let Some(a) = l.answered_ms {
                leg["startTime"] = format_shanghai(a).into();
            }
            leg
        })
        .collect();
    if call.legs.is_empty() {
        // Refused before anyone was rung: one entry per callee asked for, never dialled.
        call_out = call
            .requested
            .iter()
            .map(|t| {
                json!({
                    "caller": match t { Target::Phone { display, .. } => display.clone(), _ => caller.clone() },
                    "callee": t.label(),
                    "endTime": "",
                    "duration": "0",
                    "outcome": Outcome::NotDialled,
                })
            })
            .collect();
    }
    let mut r = json!({
        "channelId": call.channel_id,
        "caller": caller,
        "callee": callee,
        "alicomRtcType": call.reported_type(),
        "endTime": if call.answered_ms.is_some() { format_shanghai(ended) } else { String::new() },
        "duration": call.answered_ms.map(|a| secs(a, ended)).unwrap_or_else(|| "0".into()),
        "extend": call.extend,
        "callInInfo": call_in,
        "callOutInfo": call_out,
        "detail": {
            "endReason": call.end_reason,
            "causeCode": call.cause_code,
            "displayNumber": call.display_number,
            "needRecord": call.need_record,
        },
    });
    if let Some(a) = call.answered_ms {
        r["startTime"] = format_shanghai(a).into();
    }
    r
}
