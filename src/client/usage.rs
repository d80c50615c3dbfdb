//! `catty usage`: what this month's requests through the hosted gateway cost, against the
//! plan's budget, and by model (`GET /v1/usage`; `--json` prints the wire object). Only a
//! hosted API meters: without a login there is nothing to ask.

use super::daemon_client::DaemonClient;
use super::login::logged_in;
use crate::clock::month_and_year;
use crate::config::ClientConfig;
use crate::protocol::api::{ModelUsage, USAGE_PATH, UsageReport};

/// `catty usage [--json]`.
pub async fn usage(config: &ClientConfig, json: bool) -> anyhow::Result<i32> {
    let Some((url, token)) = logged_in(config) else {
        match &config.hosted {
            Some(hosted) => say!("catty: not logged in to {}: run catty login", hosted.url),
            None => say!(
                "catty: usage is metered by a hosted API only: log in to one first \
                 (catty login --api URL)"
            ),
        }
        return Ok(1);
    };
    let report: UsageReport = DaemonClient::hosted(&url, &token).get(USAGE_PATH).await?;
    if json {
        out!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(0);
    }
    out!("{}", summary(&report));
    if report.models.is_empty() {
        out!("no requests this month");
        return Ok(0);
    }
    for line in table(&report.models) {
        out!("{}", line.trim_end());
    }
    Ok(0)
}

/// `free plan · December 2026 · $1.23 of $5.00 used (24%), $0.40 held by requests in flight`.
fn summary(report: &UsageReport) -> String {
    let percent = match report.limit_micro_usd {
        0 => 100,
        limit => report.used_micro_usd.saturating_mul(100) / limit,
    };
    let mut line = format!(
        "{} plan · {} · {} of {} used ({percent}%)",
        report.plan,
        month_and_year(report.period_start),
        dollars(report.used_micro_usd),
        dollars(report.limit_micro_usd),
    );
    if report.reserved_micro_usd > 0 {
        let held = dollars(report.reserved_micro_usd);
        line.push_str(&format!(", {held} held by requests in flight"));
    }
    line
}

const HEADERS: [&str; 7] = [
    "MODEL",
    "REQUESTS",
    "INPUT",
    "CACHE WRITE",
    "CACHE READ",
    "OUTPUT",
    "COST",
];

/// The models' lines under a header, columns aligned (the model's to the left).
fn table(models: &[ModelUsage]) -> Vec<String> {
    let mut rows = vec![HEADERS.map(String::from)];
    rows.extend(models.iter().map(|m| {
        [
            match &m.model {
                Some(model) => model.clone(),
                None => format!("{} (unnamed)", m.provider),
            },
            thousands(m.requests),
            thousands(m.input_tokens),
            thousands(m.cache_write_tokens),
            thousands(m.cache_read_tokens),
            thousands(m.output_tokens),
            dollars(m.cost_micro_usd),
        ]
    }));
    let widths: Vec<usize> = (0..HEADERS.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let cells = row.iter().zip(&widths).enumerate().map(|(c, (cell, &w))| {
                if c == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            });
            cells.collect::<Vec<_>>().join("  ")
        })
        .collect()
}

/// Micro-dollars as dollars and cents, a part of a cent counted as a cent (never less than
/// what was spent): `1_230_001` is `$1.24`.
fn dollars(micro: i64) -> String {
    let cents = (micro.max(0) as u64).div_ceil(10_000);
    format!("${}.{:02}", thousands(cents / 100), cents % 100)
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_dollars_and_cents_rounded_up() {
        assert_eq!(dollars(0), "$0.00");
        assert_eq!(dollars(1), "$0.01");
        assert_eq!(dollars(1_230_000), "$1.23");
        assert_eq!(dollars(1_230_001), "$1.24");
        assert_eq!(dollars(1_234_500_000_000), "$1,234,500.00");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(30_433), "30,433");
    }
}
