//! ISO-8601 timestamps as the ticket generators in the wild write them.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

/// Parses the `created` / `X-Timestamp` forms of PROTOCOL §2:
/// `2014-06-04T13:41:58.000Z` (JS), `2014-06-04T13:41:58.123456` (Python, no offset means UTC),
/// `2014-06-04T13:41:58+00:00` (PHP), `2014-06-04T13:41:58Z` (Ruby), and 7 fractional digits (C#), with any
/// offset. Returns `None` for anything else.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    // RFC 3339 allows at most a few dozen characters; refuse long input before any parsing work.
    if text.len() > 40 {
        return None;
    }
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        return Some(with_offset.with_timezone(&Utc));
    }
    // No offset at all (Python's isoformat(), C#'s DateTimeKind.Unspecified): UTC by contract.
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|naive| naive.and_utc())
}

/// Formats like JavaScript's `Date.prototype.toISOString()`: milliseconds and `Z`. This is what the published
/// Node generator writes into `created`.
pub fn format_js_iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Formats with whole seconds and `Z`, the `X-Timestamp` and `serverTime` form.
pub fn format_iso_seconds(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `at` with its sub-millisecond part dropped: the precision Callbox stores times at, so that a time sent live and
/// the same time read back from the store compare equal.
pub fn to_millisecond(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn every_generator_form_parses_to_the_same_instant() {
        let expected = Utc.with_ymd_and_hms(2014, 6, 4, 13, 41, 58).unwrap();
        for text in [
            "2014-06-04T13:41:58.000Z",
            "2014-06-04T13:41:58",
            "2014-06-04T13:41:58.000000",
            "2014-06-04T13:41:58+00:00",
            "2014-06-04T13:41:58Z",
            "2014-06-04T13:41:58.0000000Z",
            "2014-06-04T13:41:58.0000000+00:00",
            "2014-06-04T13:41:58.0000000",
            "2014-06-04T15:41:58+02:00",
        ] {
            assert_eq!(parse_timestamp(text), Some(expected), "{text}");
        }
        assert_eq!(parse_timestamp("2014-06-04T13:41:58.123456").unwrap().timestamp_subsec_micros(), 123_456);
    }

    #[test]
    fn refuses_what_is_not_a_timestamp() {
        for text in ["", "yesterday", "2014-06-04", "2014-13-04T13:41:58Z", "2014-06-04T13:41:58Zjunk", &"9".repeat(50)]
        {
            assert_eq!(parse_timestamp(text), None, "{text}");
        }
    }

    #[test]
    fn formats_like_javascript() {
        let at = Utc.with_ymd_and_hms(2014, 6, 4, 13, 41, 58).unwrap();
        assert_eq!(format_js_iso(at), "2014-06-04T13:41:58.000Z");
        assert_eq!(format_iso_seconds(at), "2014-06-04T13:41:58Z");
    }

    #[test]
    fn to_millisecond_drops_only_the_sub_millisecond_part() {
        let at = DateTime::<Utc>::from_timestamp(1_764_748_800, 123_456_789).unwrap();
        let truncated = to_millisecond(at);
        assert_eq!(truncated.timestamp_millis(), at.timestamp_millis());
        assert_eq!(truncated.timestamp_subsec_nanos(), 123_000_000);
    }
}
