//! The `ArtcCdrReport` of a call (docs/calls.md#cdrs-artccdrreport) as a typed value: built once
//! when the call ends (`engine::cdr`) and shared, not copied, by the call, its `cdr` event, the
//! `/admin/cdrs` row and the MNS receipt; each writes it as JSON only when it is read or sent.
//! A JSON tree built for every call's report was a measurable share of a call's CPU
//! (docs/benchmarks.md#per-call-cpu).
//!
//! A leaf module: the event log holds reports without depending on the call engine.

use serde::Serialize;

/// How a leg ended, in the words the CDR and the admin API use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = LegOutcome)]
pub enum Outcome {
    Completed,
    Rejected,
    Busy,
    NoAnswer,
    Offline,
    Unreachable,
    Invalid,
    Cancelled,
    AnsweredElsewhere,
    /// Still ringing when another callee rejected the call (the default cancel rule).
    RejectedElsewhere,
    /// Never rung: the call was refused before (callback, invalid number, limits).
    NotDialled,
}

/// The report's fields in the order of the vendor's; `startTime` only for an answered call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CdrReport {
    pub channel_id: String,
    pub caller: String,
    pub callee: String,
    pub alicom_rtc_type: &'static str,
    pub end_time: String,
    pub duration: String,
    pub extend: String,
    pub call_in_info: CallIn,
    pub call_out_info: Vec<CallOut>,
    pub detail: CdrDetail,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
}

/// The caller's side of the call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallIn {
    pub caller: String,
    pub callee: String,
    pub start_time: String,
    pub end_time: String,
    pub duration: String,
}

/// One rung leg, or (`ring_start_time` absent) one callee that was never dialled.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallOut {
    pub caller: String,
    pub callee: String,
    pub end_time: String,
    pub duration: String,
    pub outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring_start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
}

/// Why and how the call ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CdrDetail {
    pub end_reason: Option<String>,
    pub cause_code: Option<i64>,
    pub display_number: Option<String>,
    pub need_record: bool,
}
