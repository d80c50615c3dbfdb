//! Wall-clock time as unix seconds, the unit of every timestamp catty stores or sends, and
//! RFC 3339 in UTC where people or other tools read it (Fly.io's `created_at`, a machine's
//! `expires_at` metadata, `catty list --json`), and a month's name (`catty usage`). No
//! calendar crate for three functions.

/// Seconds since the unix epoch (0 if the clock is set before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

const DAY_SEC: i64 = 86_400;

/// `2026-11-22T15:04:05Z`.
pub fn rfc3339(unix: u64) -> String {
    let unix = unix as i64;
    let (y, m, d) = civil_from_days(unix.div_euclid(DAY_SEC));
    let secs = unix.rem_euclid(DAY_SEC);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `December 2026`: the month `unix` falls in, in UTC.
pub fn month_and_year(unix: u64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let (y, m, _) = civil_from_days((unix as i64).div_euclid(DAY_SEC));
    format!("{} {y}", MONTHS[(m - 1) as usize])
}

/// Unix seconds of `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, or of plain unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(unix) = text.parse::<u64>() {
        return Some(unix);
    }
    let (date, rest) = text.split_at_checked(10)?;
    let mut date = date.split('-').map(|n| n.parse::<i64>().ok());
    let (y, m, d) = (date.next()??, date.next()??, date.next()??);
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (clock, zone) = rest.split_at_checked(8)?;
    let mut clock = clock.split(':').map(|n| n.parse::<i64>().ok());
    let (hh, mm, ss) = (clock.next()??, clock.next()??, clock.next()??);
    let zone = zone.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = match zone.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = zone[1..].split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    let valid = (1..=12).contains(&m) && (1..=31).contains(&d) && hh < 24 && mm < 60 && ss < 61;
    if !valid {
        return None;
    }
    let unix = days_from_civil(y, m, d) * DAY_SEC + hh * 3600 + mm * 60 + ss - offset;
    u64::try_from(unix).ok()
}

// Howard Hinnant's algorithms (proleptic Gregorian calendar, days since 1970-01-01).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_by_name() {
        assert_eq!(month_and_year(1_700_000_000), "November 2023");
        assert_eq!(month_and_year(951_782_400), "February 2000");
        // 2026-12-31T23:59:59Z, then the next second.
        assert_eq!(month_and_year(1_798_761_599), "December 2026");
        assert_eq!(month_and_year(1_798_761_600), "January 2027");
    }

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-15T00:13:20+02:00"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T21:13:20-01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("1700000000"), Some(1_700_000_000));
    }

    #[test]
    fn round_trips() {
        for unix in (0..4_000_000_000u64).step_by(7_777_777) {
            assert_eq!(
                parse_rfc3339(&rfc3339(unix)),
                Some(unix),
                "{}",
                rfc3339(unix)
            );
        }
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        for bad in [
            "",
            "soon",
            "2023-11-14",
            "2023-13-01T00:00:00Z",
            "2023-11-14T22:13:20",
            "2023-11-14T25:00:00Z",
            "-5",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
