//! A session's deadline in words: the attached terminal's warning before the TTL ends it,
//! and what `catty extend` prints. Pure text from unix seconds, in UTC.

use crate::protocol::ENDING_NOTICE;

/// What the attached terminal shows when the runtime says the session ends in `in_sec`: a
/// warning with the command that gives it more time when that is near, else the new time.
pub(super) fn ending_note(label: &str, in_sec: u64, now: u64) -> String {
    let at = clock(now + in_sec, now);
    match in_sec <= ENDING_NOTICE.as_secs() {
        true => format!(
            "catty: this session ends in {} (at {at}); give it more time with: catty extend {label} 1h",
            time_left(in_sec)
        ),
        false => format!(
            "catty: this session now ends at {at} (in {})",
            time_left(in_sec)
        ),
    }
}

/// What `catty extend` prints once the deadline moved.
pub(super) fn extended(label: &str, expires_at: u64, now: u64) -> String {
    format!(
        "catty: {label} now ends at {} (in {})",
        clock(expires_at, now),
        time_left(expires_at.saturating_sub(now))
    )
}

/// `16:05 UTC` within a day of `now`, else with the date: `2026-12-09 16:05 UTC`.
fn clock(unix: u64, now: u64) -> String {
    let stamp = crate::clock::rfc3339(unix);
    let (date, time) = stamp.split_once('T').unwrap_or((&stamp, ""));
    let hh_mm = time.get(..5).unwrap_or(time);
    match unix.saturating_sub(now) < 86_400 {
        true => format!("{hh_mm} UTC"),
        false => format!("{date} {hh_mm} UTC"),
    }
}

/// `40 s`, `5 min`, `1 h 55 min`, `3 h`: rounded to the minute past one.
fn time_left(secs: u64) -> String {
    if secs < 60 {
        return format!("{secs} s");
    }
    let mins = (secs + 30) / 60;
    match (mins / 60, mins % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2023-11-14T22:13:20Z.
    const NOW: u64 = 1_700_000_000;

    #[test]
    fn a_near_end_warns_with_the_command_that_extends() {
        assert_eq!(
            ending_note("brave-tiger-1234", 300, NOW),
            "catty: this session ends in 5 min (at 22:18 UTC); give it more time with: catty extend brave-tiger-1234 1h"
        );
        assert!(ending_note("x", 42, NOW).starts_with("catty: this session ends in 42 s"));
    }

    #[test]
    fn a_moved_end_says_when() {
        assert_eq!(
            ending_note("x", 3600 + 55 * 60, NOW),
            "catty: this session now ends at 00:08 UTC (in 1 h 55 min)"
        );
    }

    #[test]
    fn extend_names_the_session_and_the_date_when_it_is_days_away() {
        assert_eq!(
            extended("brave-tiger-1234", NOW + 7200, NOW),
            "catty: brave-tiger-1234 now ends at 00:13 UTC (in 2 h)"
        );
        assert_eq!(
            extended("x", NOW + 3 * 86_400, NOW),
            "catty: x now ends at 2023-11-17 22:13 UTC (in 72 h)"
        );
    }

    #[test]
    fn time_left_rounds_to_the_minute() {
        assert_eq!(time_left(0), "0 s");
        assert_eq!(time_left(59), "59 s");
        assert_eq!(time_left(299), "5 min");
        assert_eq!(time_left(3599), "1 h");
        assert_eq!(time_left(3600 + 150), "1 h 3 min");
    }
}
