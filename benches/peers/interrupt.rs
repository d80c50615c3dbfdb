//! Figure 3, Ctrl-C under flood: `yes` at the shell, and once its output flows, Ctrl-C; the
//! time until the prompt is back on our terminal, every byte of the flood before it read.
//! Two terminals: one that reads as fast as output comes (`interrupt`), and a slow one
//! (`interrupt-slow`) that reads at a bounded rate for the whole trial, like an emulator that
//! draws R bytes a second (`CATTY_BENCH_TERMINAL_RATE`, default 4 MB/s). What arrives after
//! the Ctrl-C is what the contender had in flight between the program and the terminal; at a
//! bounded rate each byte of it costs 1/R, so the slow figure shows how much that is. The
//! contenders take turns, one trial each.

use std::time::Duration;

use crate::contender::{Contender, Shell};
use crate::pty::Term;
use crate::report::{Goal, Row, Unit, max, median, percentile};
use crate::{Ctx, PROMPT, ms};

const TRIALS: usize = 50;
/// "Flowing": this much of `yes` came through before Ctrl-C.
const FLOWING_BYTES: usize = 256 * 1024;
/// A slow terminal then reads on this long before Ctrl-C, so every buffer between it and
/// `yes` has filled (they fill at the pipeline's speed, far above the terminal's).
const SLOW_SETTLE: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_secs(60);
/// Ctrl-C is pressed again if the prompt is not back by then...
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// ...plus, on a slow terminal, the time to read this much.
const RETRY_IN_FLIGHT_BYTES: f64 = 16.0 * 1024.0 * 1024.0;
/// Presses, in all, before the Ctrl-C counts as lost.
const PRESSES: usize = 3;

/// As fast as output comes.
pub fn run(ctx: &Ctx) -> Vec<Row> {
    let trials = ctx.trials(TRIALS);
    let [p50, _, p99] = measure(ctx, None, trials);
    vec![
        Row::new(
            format!("Ctrl-C under `yes` to the prompt, p50 ({trials} trials)"),
            Unit::Ms,
            p50,
            Goal::None,
        ),
        Row::new(
            "Ctrl-C under `yes` to the prompt, p99",
            Unit::Ms,
            p99,
            Goal::Below(100.0),
        ),
    ]
}

/// At the slow terminal's rate.
pub fn run_slow(ctx: &Ctx) -> Vec<Row> {
    let trials = ctx.trials(TRIALS);
    let rate = ctx.terminal_rate;
    let stats = measure(ctx, Some(rate), trials);
    let mbps = rate as f64 / 1e6;
    ["p50", "p90", "p99"]
        .into_iter()
        .zip(stats)
        .map(|(p, values)| {
            let figure = format!(
                "Ctrl-C under `yes` to the prompt, our terminal reading {mbps} MB/s, {p} ({trials} trials)"
            );
            Row::new(figure, Unit::Ms, values, Goal::None)
        })
        .collect()
}

/// p50, p90 and p99 of each contender's trials, our terminals reading at `rate` bytes a
/// second (as fast as output comes without).
fn measure(ctx: &Ctx, rate: Option<u64>, trials: usize) -> [[Option<f64>; 4]; 3] {
    let contenders = ctx.contenders();
    let mut shells: Vec<Shell> = contenders.iter().map(|c| start(c, ctx, rate)).collect();
    let mut results = vec![Vec::new(); shells.len()];
    // Contenders take turns, one trial each.
    for _ in 0..trials {
        for ((shell, results), contender) in shells.iter_mut().zip(&mut results).zip(&contenders) {
            let result = trial(shell.term(), contender.name(), rate);
            if result.is_none() {
                // A shell that lost one Ctrl-C has lost every later one: start afresh.
                *shell = start(contender, ctx, rate);
            }
            results.push(result);
        }
    }
    let tag = match rate {
        None => "ctrl-c".to_string(),
        Some(rate) => format!("ctrl-c at {} MB/s", rate as f64 / 1e6),
    };
    let mut stats = [[None; 4]; 3];
    for (col, results) in results.iter().enumerate() {
        let lost = results.iter().filter(|t| t.is_none()).count();
        let (times, drained): (Vec<f64>, Vec<f64>) = results.iter().flatten().copied().unzip();
        let p = [50.0, 90.0, 99.0].map(|p| percentile(&times, p));
        println!(
            "{tag:<10} {:<20} p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({trials} trials, {lost} lost); output after Ctrl-C: median {:.0} KiB, max {:.0} KiB",
            contenders[col].name(),
            p[0],
            p[1],
            p[2],
            max(&times),
            median(&drained),
            max(&drained),
        );
        for (stat, p) in stats.iter_mut().zip(p) {
            stat[col] = Some(p);
        }
    }
    stats
}

/// A shell of `contender` at its prompt, our terminal reading at `rate`.
fn start<'a>(contender: &Contender<'a>, ctx: &Ctx, rate: Option<u64>) -> Shell<'a> {
    let mut shell = Shell::new(contender, &ctx.scratch);
    shell.term().set_rate(rate);
    shell
}

/// `yes`, Ctrl-C once it flows: milliseconds to the prompt, and KiB read in between. `None`
/// when the Ctrl-C is lost: `yes` goes on through every press (seen on the bare PTY alone,
/// when the bench had inherited SIGINT ignored; `main` now resets it), and is killed so the
/// run can go on.
fn trial(term: &mut Term, name: &str, rate: Option<u64>) -> Option<(f64, f64)> {
    term.write(b"yes\r");
    term.wait_bytes(FLOWING_BYTES, TIMEOUT);
    let mut retry_after = RETRY_AFTER;
    if let Some(rate) = rate {
        term.discard_for(SLOW_SETTLE);
        retry_after += Duration::from_secs_f64(RETRY_IN_FLIGHT_BYTES / rate as f64);
    }
    let received = term.received();
    let pressed = term.write(b"\x03");
    let mut presses = 1;
    let prompt = loop {
        if let Some(at) = term.try_wait_for(PROMPT.as_bytes(), retry_after) {
            break Some(at);
        }
        let kib = (term.received() - received) / 1024;
        if presses == PRESSES {
            println!(
                "ctrl-c    {name}: Ctrl-C lost ({presses} presses, {kib} KiB since); killing `yes`"
            );
            term.kill_foreground();
            term.wait_for(PROMPT.as_bytes(), TIMEOUT);
            break None;
        }
        println!(
            "ctrl-c    {name}: no prompt {retry_after:?} after Ctrl-C ({kib} KiB since); pressing it again"
        );
        term.write(b"\x03");
        presses += 1;
    };
    let kib = (term.received() - received) as f64 / 1024.0;
    std::thread::sleep(Duration::from_millis(20));
    prompt.map(|at| (ms(at.duration_since(pressed)), kib))
}
