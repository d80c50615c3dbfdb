//! Figure 7, resume: a ticker prints the wall-clock time every 10 ms in a catty session;
//! `ss -K` destroys the client's TCP connection to the runtime (the runtime keeps listening,
//! so the link is back at once). Every tick printed after the cut is stamped when it reaches
//! our terminal; the largest delay of any is how long output stood still, which is how long
//! after the cut it flows again. ssh has no resume, nor has a bare PTY.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::daemon::{Daemon, Session};
use crate::report::{Goal, Row, Unit, max, median};
use crate::{Ctx, ms};

const TRIALS: usize = 10;
/// Longer than the client's backoffs and reconnect many times over.
const WINDOW: Duration = Duration::from_secs(2);
/// Output keeps flowing this long between two cuts.
const SETTLE: Duration = Duration::from_millis(700);
/// A trial slower than this is shown in detail.
const SLOW_MS: f64 = 150.0;
/// bash's `$EPOCHREALTIME` is seconds and microseconds, without a process per tick.
const TICKER: &[u8] = b"while :; do echo \"tick $EPOCHREALTIME\"; sleep 0.01; done\r";

pub fn run(ctx: &Ctx) -> Vec<Row> {
    let mut stats = [[None; 4]; 2];
    for (col, daemon) in ctx.daemons().into_iter().enumerate() {
        let times = measure(daemon, ctx);
        println!(
            "resume    {:<20} p50 {:.1} ms  max {:.1} ms  ({})",
            daemon.name(),
            median(&times),
            max(&times),
            times
                .iter()
                .map(|t| format!("{t:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        stats[0][col] = Some(median(&times));
        stats[1][col] = Some(max(&times));
    }
    let [p50, worst] = stats;
    vec![
        Row::new(
            "resume after a link cut (`ss -K`), median of 10",
            Unit::Ms,
            p50,
            Goal::Below(100.0),
        ),
        Row::new(
            "resume after a link cut, max of 10",
            Unit::Ms,
            worst,
            Goal::Below(100.0),
        ),
    ]
}

fn measure(daemon: &Daemon, ctx: &Ctx) -> Vec<f64> {
    let mut session = Session::new(daemon, &ctx.scratch);
    let port = daemon.runtime_port(&session.label);
    let term = &mut session.term;
    term.write(TICKER);
    term.wait_for(b"\r\ntick 1", Duration::from_secs(10));
    let attaches = daemon.attaches(&session.label);
    let times = (0..TRIALS)
        .map(|_| {
            term.arrivals(SETTLE);
            let (cut, cut_wall) = cut(port);
            let after = term.arrivals(WINDOW);
            stood_still(&after, cut, cut_wall)
        })
        .collect();
    println!(
        "resume    {:<20} {TRIALS} cuts, {} attaches seen by the runtime",
        daemon.name(),
        daemon.attaches(&session.label) - attaches
    );
    times
}

/// Destroys every connection to the runtime's port; returns when `ss` is done, on both clocks.
fn cut(port: u16) -> (Instant, f64) {
    let out = Command::new("ss")
        .args(["-K", "dst", "127.0.0.1", "dport", "=", &format!(":{port}")])
        .output()
        .expect("ss (iproute2)");
    let at = (Instant::now(), wall_seconds(SystemTime::now()));
    let killed = String::from_utf8_lossy(&out.stdout)
        .matches("ESTAB")
        .count();
    assert!(killed > 0, "ss -K cut nothing: {out:?}");
    at
}

/// The largest delay, in milliseconds, between a tick being printed and reaching our
/// terminal, over the ticks printed after the cut. A slow trial is shown in detail: when
/// output came, and whether the client's status line did.
fn stood_still(after: &[(Instant, Vec<u8>)], cut: Instant, cut_wall: f64) -> f64 {
    let ticks = ticks(after, cut, cut_wall);
    assert!(!ticks.is_empty(), "no tick within {WINDOW:?} of the cut");
    let worst = ticks
        .iter()
        .map(|&(printed, arrived)| arrived - printed)
        .fold(0.0, f64::max);
    if worst > SLOW_MS {
        let timeline: Vec<String> = after
            .iter()
            .filter(|(at, _)| *at > cut)
            .map(|(at, bytes)| format!("{:.0}ms:{}B", ms(at.duration_since(cut)), bytes.len()))
            .take(12)
            .collect();
        let text: Vec<u8> = after.iter().flat_map(|(_, b)| b.iter().copied()).collect();
        let status = String::from_utf8_lossy(&text).contains("connection lost");
        println!(
            "resume    slow trial: {worst:.0} ms; status line shown: {status}; output after the cut: {}",
            timeline.join(" ")
        );
    }
    worst
}

/// Each tick line printed after the cut: (printed, arrived) in milliseconds after the cut.
/// A line's arrival is that of the chunk that completed it.
fn ticks(after: &[(Instant, Vec<u8>)], cut: Instant, cut_wall: f64) -> Vec<(f64, f64)> {
    let mut line = Vec::new();
    let mut out = Vec::new();
    for (at, bytes) in after {
        for &b in bytes {
            if b != b'\n' {
                line.push(b);
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            let printed = text
                .trim_end()
                .strip_prefix("tick ")
                .and_then(|t| t.parse::<f64>().ok());
            if let Some(printed) = printed.map(|s| (s - cut_wall) * 1e3).filter(|p| *p > 0.0) {
                out.push((printed, ms(at.saturating_duration_since(cut))));
            }
            line.clear();
        }
    }
    out
}

fn wall_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}
