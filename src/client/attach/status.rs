//! The one status line shown while the link is silent ("catty: no contact for 4 s…"), and
//! what a reconnect skips: which gaps are too large to replay, and the notice it prints then.
//! Text and decisions are pure logic; drawing goes through `tty`.
//!
//! Where it is drawn: the bottom row, between a save and a restore of the cursor (`tty::status`),
//! and it is erased before any byte of the session is written again. Nothing of the session is
//! written while it shows (the link is silent), so the session's own picture is only touched
//! on that row; line-by-line output (a shell, a counter) has its cursor on a blank bottom row,
//! so erasing leaves no trace. A full-screen program's last row stays blank until it draws it
//! again: the client keeps no model of the screen, which would cost a parse of every byte.

use std::time::Duration;

use super::super::tty;

/// Silence this long (no frame, while pings go out every second) shows the status line.
pub(super) const STATUS_AFTER: Duration = Duration::from_secs(2);

/// The status line, when shown: what it says, so it is redrawn only when that changes.
#[derive(Default)]
pub(super) struct Status {
    drawn: Option<String>,
}

impl Status {
    /// Shows or updates the line once the runtime has been silent for [`STATUS_AFTER`].
    pub(super) fn update(&mut self, silent: Duration, reconnecting: bool) {
        if silent < STATUS_AFTER {
            return;
        }
        let line = text(silent, reconnecting);
        if self.drawn.as_ref() != Some(&line) {
            tty::status(&line);
            self.drawn = Some(line);
        }
    }

    /// Erases the line, if shown: call before writing anything of the session's.
    pub(super) fn clear(&mut self) {
        if self.drawn.take().is_some() {
            tty::clear_status();
        }
    }
}

/// The status line's words, mosh-like: how long since the runtime was last heard from.
fn text(silent: Duration, reconnecting: bool) -> String {
    let secs = silent.as_secs();
    match reconnecting {
        true => format!("catty: no contact for {secs} s, reconnecting… (Enter ~ . to detach)"),
        false => format!("catty: no contact for {secs} s (Enter ~ . to detach)"),
    }
}

/// After an outage, the bytes to skip for a repaint instead of replaying them: a gap from our
/// offset `expected` to the stream's `end` larger than `max`, or one the runtime no longer
/// holds whole (`truncated`: a replay would start mid-stream and garble the screen). `None`:
/// replay (also on a fresh attach, and with an older runtime that does not say `end`).
pub(super) fn gap_to_skip(
    expected: Option<u64>,
    end: Option<u64>,
    truncated: bool,
    max: u64,
) -> Option<u64> {
    let gap = end?.saturating_sub(expected?);
    (gap > max || truncated).then_some(gap)
}

/// The line printed when a reconnect repaints instead of replaying `skipped` bytes.
pub(super) fn skipped_notice(skipped: u64, label: &str) -> String {
    format!(
        "catty: skipped {} of output while away; catty logs {label} has all of it",
        human_bytes(skipped)
    )
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} bytes"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_says_how_long_and_whether_reconnecting() {
        let four = Duration::from_millis(4900);
        assert_eq!(
            text(four, false),
            "catty: no contact for 4 s (Enter ~ . to detach)"
        );
        assert_eq!(
            text(Duration::from_secs(12), true),
            "catty: no contact for 12 s, reconnecting… (Enter ~ . to detach)"
        );
    }

    #[test]
    fn a_short_silence_shows_nothing() {
        let mut status = Status::default();
        status.update(STATUS_AFTER - Duration::from_millis(1), true);
        assert!(status.drawn.is_none());
    }

    #[test]
    fn gaps_past_the_limit_or_truncated_are_skipped() {
        assert_eq!(gap_to_skip(Some(100), Some(1100), false, 1000), None);
        assert_eq!(gap_to_skip(Some(100), Some(1101), false, 1000), Some(1001));
        assert_eq!(gap_to_skip(Some(100), Some(200), true, 1000), Some(100));
        // A fresh attach, and an older runtime without `end`: nothing to decide.
        assert_eq!(gap_to_skip(None, Some(5000), false, 1000), None);
        assert_eq!(gap_to_skip(Some(0), None, true, 1000), None);
    }

    #[test]
    fn skipped_bytes_are_counted_for_humans() {
        assert_eq!(human_bytes(999), "999 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(20 * 1024 * 1024 + 300 * 1024), "20.3 MiB");
        assert_eq!(
            skipped_notice(2048, "brave-tiger-1234"),
            "catty: skipped 2.0 KiB of output while away; catty logs brave-tiger-1234 has all of it"
        );
    }
}
