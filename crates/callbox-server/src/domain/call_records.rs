//! Call records for the operator (docs/calls.md section 5): an application's recent calls, optionally those one
//! user placed or received. The records themselves are written by the call registry (`realtime::calls`) behind
//! the signaling; this module only reads them, for the admin API, the CLI and the dashboard's Calls tab.

use super::{Callbox, DomainError, DomainResult};
use crate::store::CallRecord;
use chrono::Duration;

/// How many calls a listing returns when the caller names no limit.
pub const DEFAULT_CALL_LIST_LIMIT: u32 = 50;
/// The most calls one listing returns, whatever the caller asks for.
pub const MAX_CALL_LIST_LIMIT: u32 = 500;

/// How long `call` was connected: from the answer to the end. `None` unless it was both answered and ended (a
/// call still going on, or never answered, has no talk time; one whose home node died never got an end).
pub fn talk_time(call: &CallRecord) -> Option<Duration> {
    let (answered, ended) = (call.answered_at?, call.ended_at?);
    // Both times come from the home node's clock, so the end is never before the answer; a record edited by
    // hand could say otherwise, and a negative duration would only mislead.
    Some((ended - answered).max(Duration::zero()))
}

impl Callbox {
    /// Admin: `app_key`'s calls, newest first, at most `limit` (clamped to 1..=[`MAX_CALL_LIST_LIMIT`]); with
    /// `user_id`, only the calls that user placed or received. Unknown application → `not_found`; a user id that
    /// no user could have (empty, over 255 bytes, control characters) → `malformed_request`.
    pub async fn list_calls(&self, app_key: &str, user_id: Option<&str>, limit: u32) -> DomainResult<Vec<CallRecord>> {
        if let Some(user_id) = user_id {
            if !callbox_core::is_valid_user_id(user_id) {
                return Err(DomainError::invalid("user must be a user id: 1-255 bytes without control characters"));
            }
        }
        self.store.get_app(app_key).await?;
        Ok(self.store.list_calls(app_key, user_id, limit.clamp(1, MAX_CALL_LIST_LIMIT)).await?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::{DateTime, Utc};

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_764_748_800_000 + millis).unwrap()
    }

    fn call(answered: Option<i64>, ended: Option<i64>) -> CallRecord {
        CallRecord {
            id: "c".into(),
            app_key: "k".into(),
            caller_id: "alice".into(),
            callee_id: "bob".into(),
            legacy_call_id: None,
            started_at: at(0),
            answered_at: answered.map(at),
            ended_at: ended.map(at),
            end_cause: ended.map(|_| "hung_up".into()),
            ended_by: ended.map(|_| "caller".into()),
        }
    }

    #[test]
    fn talk_time_runs_from_the_answer_to_the_end_and_only_when_both_happened() {
        assert_eq!(talk_time(&call(Some(1_500), Some(64_250))), Some(Duration::milliseconds(62_750)));
        assert_eq!(talk_time(&call(None, Some(45_000))), None, "never answered");
        assert_eq!(talk_time(&call(Some(1_500), None)), None, "still going on, or its home node died");
        assert_eq!(talk_time(&call(None, None)), None);
        assert_eq!(talk_time(&call(Some(2_000), Some(1_000))), Some(Duration::zero()), "never negative");
    }
}
