//! The end codes the engine gives the SDK (docs/protocol.md#codes). The SDK passes a
//! `cs_disconnect`'s `causeCode` through verbatim, so where the manual names no code for a
//! situation the emulator picks one from the documented list and docs/calls.md says which.

/// `peerLeftChannel` → the SDK reports it itself.
pub const REMOTE_HANGUP: i64 = 2000099;
/// `answered{callResult:2}` → the SDK reports it itself.
pub const REJECTED: i64 = 2000106;
/// `canceledCall` → the SDK reports it itself (callee side).
pub const CANCELLED: i64 = 2000107;
pub const NO_ANSWER: i64 = 2000108;
pub const BUSY: i64 = 2000109;
pub const TOO_MANY_CALLEES: i64 = 2000118;
pub const EMPTY_NUMBER: i64 = 2000101;
pub const ANSWERED_ELSEWHERE: i64 = 2000132;
/// A callee of a multi-callee call: another callee rejected it (the default cancel rule).
pub const REJECTED_ELSEWHERE: i64 = 2000133;
pub const NOT_REGISTERED: i64 = 3100000;
pub const CALL_ERROR: i64 = 3100001;
pub const BAD_PARAMETERS: i64 = 3100002;
pub const INVALID_DISPLAY_NUMBER: i64 = 3100006;
pub const NO_PERMISSION: i64 = 3100007;
pub const INVALID_CALLEE: i64 = 3100020;
/// The manual has no code for "the time limit of the outbound callback was reached"; this one is
/// in the server range (3000000–3300000) and documented in docs/calls.md.
pub const TIME_LIMIT: i64 = 3100010;
pub const SERVER_ERROR: i64 = 3999999;
