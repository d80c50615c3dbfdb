//! Figure 7, resume: a counter prints every 10 ms in a catty session; `ss -K` destroys the
//! client's TCP connection to the runtime (the runtime keeps listening, so the link is back
//! at once). The time from the cut to the first output after the longest silence that
//! follows it: when output flows again. ssh has no resume, nor has a bare PTY.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, Session};
use crate::report::{Goal, Row, Unit, max, median};
use crate::{Ctx, ms};

const TRIALS: usize = 10;
/// Longer than the client's first backoff and reconnect many times over.
const WINDOW: Duration = Duration::from_secs(2);
/// Output keeps flowing this long between two cuts.
const SETTLE: Duration = Duration::from_millis(700);
/// A trial slower than this is shown in detail.
const SLOW_MS: f64 = 150.0;
const COUNTER: &[u8] = b"i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.01; done\r";

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
    term.write(COUNTER);
    term.wait_for(b"tick 10\r\n", Duration::from_secs(10));
    let attaches = daemon.attaches(&session.label);
    let times = (0..TRIALS)
        .map(|_| {
            let before = term.arrivals(SETTLE);
            let last = before.last().expect("the counter stopped").0;
            let cut = cut(port);
            let after = term.arrivals(WINDOW);
            flowing_again(last, &after, cut)
        })
        .collect();
    println!(
        "resume    {:<20} {TRIALS} cuts, {} attaches seen by the runtime",
        daemon.name(),
        daemon.attaches(&session.label) - attaches
    );
    times
}

/// Destroys every connection to the runtime's port; returns when `ss` is done.
fn cut(port: u16) -> Instant {
    let out = Command::new("ss")
        .args(["-K", "dst", "127.0.0.1", "dport", "=", &format!(":{port}")])
        .output()
        .expect("ss (iproute2)");
    let at = Instant::now();
    let killed = String::from_utf8_lossy(&out.stdout)
        .matches("ESTAB")
        .count();
    assert!(killed > 0, "ss -K cut nothing: {out:?}");
    at
}

/// Milliseconds from `cut` to the arrival ending the longest silence after `last`. A slow
/// one is shown in detail: when output came, and whether the client's status line did.
fn flowing_again(last: Instant, after: &[(Instant, Vec<u8>)], cut: Instant) -> f64 {
    assert!(!after.is_empty(), "no output within {WINDOW:?} of the cut");
    let mut previous = last;
    let mut longest = (Duration::ZERO, last);
    for (at, _) in after {
        let gap = at.saturating_duration_since(previous);
        if gap > longest.0 {
            longest = (gap, *at);
        }
        previous = *at;
    }
    let resumed = ms(longest.1.saturating_duration_since(cut));
    if resumed > SLOW_MS {
        let timeline: Vec<String> = after
            .iter()
            .filter(|(at, _)| *at > cut)
            .map(|(at, bytes)| format!("{:.0}ms:{}B", ms(at.duration_since(cut)), bytes.len()))
            .take(12)
            .collect();
        let text: Vec<u8> = after.iter().flat_map(|(_, b)| b.iter().copied()).collect();
        let status = String::from_utf8_lossy(&text).contains("connection lost");
        println!(
            "resume    slow trial: {resumed:.0} ms; status line shown: {status}; output after the cut: {}",
            timeline.join(" ")
        );
    }
    resumed
}
