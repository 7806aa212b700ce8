//! What the admin commands print: aligned tables and settings for people, the server's JSON for `--json`.

use callbox_wire::admin::{AppView, CallView, UserView};
use serde_json::Value;
use std::fmt::Display;

/// Prints a JSON answer, pretty.
pub(crate) fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows under headers, each column as wide as its widest cell.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.chars().count()).collect();
    for row in rows {
        for (width, value) in widths.iter_mut().zip(row) {
            *width = (*width).max(value.chars().count());
        }
    }
    let line = |values: Vec<String>| {
        let cells: Vec<String> = values.iter().zip(&widths).map(|(value, width)| format!("{value:<width$}")).collect();
        println!("{}", cells.join("  ").trim_end());
    };
    line(headers.iter().map(|header| (*header).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// A switch as a cell: `on` or `off`.
pub(crate) fn on_off(on: bool) -> String {
    if on { "on" } else { "off" }.to_owned()
}

/// A list as a cell: comma-separated, `(none)` when empty.
pub(crate) fn list_cell<T: Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "(none)".into();
    }
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// A user's status word.
pub(crate) fn user_status(user: &UserView) -> &'static str {
    if user.disabled {
        "disabled"
    } else {
        "enabled"
    }
}

/// `{verb} user ID (TYPE, STATUS)`.
pub(crate) fn print_user_line(verb: &str, user: &UserView) {
    println!("{verb} user {} ({}, {})", user.user_id, user.identity_type, user_status(user));
}

/// The headers of `callbox call list`.
pub(crate) const CALL_HEADERS: [&str; 8] =
    ["STARTED", "CALLER", "CALLEE", "DURATION", "END CAUSE", "ENDED BY", "CALL ID", "LEGACY CALL ID"];

/// One call as a row under [`CALL_HEADERS`]: `-` where the call has no such thing yet (not answered, not ended).
pub(crate) fn call_row(call: &CallView) -> Vec<String> {
    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    vec![
        call.started_at.clone(),
        call.caller_id.clone(),
        call.callee_id.clone(),
        call.duration_ms.map_or_else(|| "-".into(), talk_time),
        // A call without an end is going on, or its node died before it could write one (docs/calls.md).
        call.end_cause.clone().unwrap_or_else(|| if call.ended_at.is_none() { "(no end yet)" } else { "-" }.into()),
        or_dash(&call.ended_by),
        call.call_id.clone(),
        // The legacy SDK's own id, for the calls it placed (docs/legacy-sdk.md section 6).
        or_dash(&call.legacy_call_id),
    ]
}

/// A talk time for people: `12.3 s` under a minute, then `4m 05s` and `1h 02m 03s`.
pub(crate) fn talk_time(milliseconds: u64) -> String {
    let seconds = milliseconds / 1000;
    match seconds {
        0..60 => format!("{seconds}.{} s", milliseconds % 1000 / 100),
        60..3600 => format!("{}m {:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h {:02}m {:02}s", seconds / 3600, seconds % 3600 / 60, seconds % 60),
    }
}

/// Warns on standard error while an application lets anyone sign up.
pub(crate) fn warn_platform_user_auth(app: &AppView) {
    if app.platform_user_auth {
        eprintln!(
            "WARNING: platform-managed users are ON: anyone who knows the application key can sign up and log in. \
             Switch it off before going live: callbox app set {} --platform-user-auth false",
            app.application_key
        );
    }
}

/// Prints an application's settings and its secrets (never a secret's value: the API does not send it).
pub(crate) fn print_app(app: &AppView) {
    let seconds = |value: u64| format!("{value} s");
    println!("{:<23}{}", "application key", app.application_key);
    println!("{:<23}{}", "name", app.name);
    println!("{:<23}{}", "created", app.created_at);
    println!("{:<23}{}", "platform-managed users", on_off(app.platform_user_auth));
    println!("{:<23}{}", "allowed origins", list_cell(&app.allowed_origins));
    println!("{:<23}{}", "capabilities", list_cell(&app.capabilities));
    println!("{:<23}{}", "default ticket TTL", seconds(app.default_ticket_ttl));
    println!("{:<23}{}", "max ticket TTL", seconds(app.max_ticket_ttl));
    println!("{:<23}{}", "session TTL", seconds(app.session_ttl));
    println!("{:<23}{}", "clock skew", seconds(app.clock_skew));
    println!("{:<23}{}", "secrets", app.secrets.len());
    for secret in &app.secrets {
        let last_used = secret.last_used_at.as_deref().unwrap_or("never");
        println!(
            "  {}  fingerprint {}  created {}  last used {last_used}",
            secret.id, secret.fingerprint, secret.created_at
        );
    }
    warn_platform_user_auth(app);
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbox_core::Capability;

    #[test]
    fn list_cells_join_with_commas_and_name_emptiness() {
        assert_eq!(list_cell::<String>(&[]), "(none)");
        assert_eq!(list_cell(&[Capability::Messaging, Capability::Video]), "messaging, video");
        assert_eq!(on_off(true), "on");
        assert_eq!(on_off(false), "off");
    }

    #[test]
    fn talk_times_read_in_the_unit_that_fits() {
        assert_eq!(talk_time(0), "0.0 s");
        assert_eq!(talk_time(12_345), "12.3 s");
        assert_eq!(talk_time(59_999), "59.9 s");
        assert_eq!(talk_time(60_000), "1m 00s");
        assert_eq!(talk_time(245_000), "4m 05s");
        assert_eq!(talk_time(3_723_000), "1h 02m 03s");
    }

    #[test]
    fn a_call_row_dashes_what_did_not_happen() {
        let call = CallView {
            call_id: "c1".into(),
            caller_id: "alice".into(),
            callee_id: "bob".into(),
            started_at: "2026-12-03T10:00:00.000Z".into(),
            answered_at: None,
            ended_at: Some("2026-12-03T10:00:45.000Z".into()),
            end_cause: Some("no_answer".into()),
            ended_by: Some("server".into()),
            duration_ms: None,
            legacy_call_id: None,
        };
        assert_eq!(call_row(&call)[3..6], ["-", "no_answer", "server"]);
        let going_on = CallView { ended_at: None, end_cause: None, ended_by: None, ..call };
        assert_eq!(call_row(&going_on)[3..6], ["-", "(no end yet)", "-"]);
        assert_eq!(call_row(&going_on)[7], "-", "a call of Callbox's own SDK has no legacy id");
        let legacy = CallView { legacy_call_id: Some("7f1d7a4e".into()), ..going_on };
        assert_eq!(call_row(&legacy)[7], "7f1d7a4e");
    }
}
