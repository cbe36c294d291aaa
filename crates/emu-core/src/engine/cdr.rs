//! The `ArtcCdrReport` of a call (docs/calls.md#cdrs-artccdrreport): one per call, answered or not.

#[cfg(test)]
use serde_json::Value;

use super::call::{Call, Caller, Outcome, Target};
use crate::cdr::{CallIn, CallOut, CdrDetail, CdrReport};
use crate::clock::{Millis, format_shanghai};

fn secs(from: Millis, to: Millis) -> String {
    (to.saturating_sub(from) / 1000).to_string()
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
/// Typed, and written as JSON only by whoever reads or sends it (`crate::cdr`).
pub fn report(call: &Call) -> CdrReport {
    let ended = call.ended_ms.unwrap_or(call.created_ms);
    let caller = call.caller_label();
    let callee = callee_label(call);
    let call_in = CallIn {
        caller: caller.to_string(),
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
                caller: from(t, caller).to_string(),
                callee: t.label().to_string(),
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
                    caller: from(&l.target, caller).to_string(),
                    callee: l.target.label().to_string(),
                    end_time: if l.answered_ms.is_some() { format_shanghai(end) } else { String::new() },
                    duration: l.answered_ms.map(|a| secs(a, end)).unwrap_or_else(|| "0".into()),
                    outcome: l.outcome,
                    ring_start_time: Some(format_shanghai(l.start_ms)),
                    start_time: l.answered_ms.map(format_shanghai),
                }
            })
            .collect()
    };
    CdrReport {
        channel_id: call.channel_id.clone(),
        caller: caller.to_string(),
        callee,
        alicom_rtc_type: call.reported_type(),
        end_time: if call.answered_ms.is_some() { format_shanghai(ended) } else { String::new() },
        duration: call.answered_ms.map(|a| secs(a, ended)).unwrap_or_else(|| "0".into()),
        extend: call.extend.clone(),
        call_in_info: call_in,
        call_out_info: call_out,
        detail: CdrDetail {
            end_reason: call.end_reason.clone(),
            cause_code: call.cause_code,
            display_number: call.display_number.clone(),
            need_record: call.need_record,
        },
        start_time: call.answered_ms.map(format_shanghai),
    }
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
