//! Figure 3, Ctrl-C under flood: `yes` at the shell, and once its output flows, Ctrl-C; the
//! time until the prompt is back on our terminal, every byte of the flood before it read.
//! The contenders take turns, one trial each.

use std::time::Duration;

use crate::contender::Shell;
use crate::pty::Term;
use crate::report::{Goal, Row, Unit, max, median, percentile};
use crate::{Ctx, PROMPT, ms};

const TRIALS: usize = 50;
/// "Flowing": this much of `yes` came through before Ctrl-C.
const FLOWING_BYTES: usize = 256 * 1024;
const TIMEOUT: Duration = Duration::from_secs(60);
/// Ctrl-C is pressed again if the prompt is not back by then.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Presses, in all, before the Ctrl-C counts as lost.
const PRESSES: usize = 3;

pub fn run(ctx: &Ctx) -> Vec<Row> {
    let contenders = ctx.contenders();
    let mut shells: Vec<Shell> = contenders
        .iter()
        .map(|c| Shell::new(c, &ctx.scratch))
        .collect();
    let mut trials = vec![Vec::new(); shells.len()];
    // Contenders take turns, one trial each.
    for _ in 0..TRIALS {
        for ((shell, trials), contender) in shells.iter_mut().zip(&mut trials).zip(&contenders) {
            let result = trial(shell.term(), contender.name());
            if result.is_none() {
                // A shell that lost one Ctrl-C has lost every later one: start afresh.
                *shell = Shell::new(contender, &ctx.scratch);
            }
            trials.push(result);
        }
    }
    let mut stats = [[None; 4]; 2];
    for (col, trials) in trials.iter().enumerate() {
        let lost = trials.iter().filter(|t| t.is_none()).count();
        let (times, drained): (Vec<f64>, Vec<f64>) = trials.iter().flatten().copied().unzip();
        let (p50, p99) = (percentile(&times, 50.0), percentile(&times, 99.0));
        println!(
            "ctrl-c    {:<20} p50 {p50:.1} ms  p90 {:.1} ms  p99 {p99:.1} ms  ({TRIALS} trials, {lost} lost); output after Ctrl-C: median {:.0} KiB, max {:.0} KiB",
            contenders[col].name(),
            percentile(&times, 90.0),
            median(&drained),
            max(&drained),
        );
        stats[0][col] = Some(p50);
        stats[1][col] = Some(p99);
    }
    let [p50, p99] = stats;
    vec![
        Row::new(
            "Ctrl-C under `yes` to the prompt, p50 (50 trials)",
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

/// `yes`, Ctrl-C once it flows: milliseconds to the prompt, and KiB read in between. `None`
/// when the Ctrl-C is lost: `yes` goes on through every press (seen on the bare PTY alone,
/// when the bench had inherited SIGINT ignored; `main` now resets it), and is killed so the
/// run can go on.
fn trial(term: &mut Term, name: &str) -> Option<(f64, f64)> {
    term.write(b"yes\r");
    term.wait_bytes(FLOWING_BYTES, TIMEOUT);
    let received = term.received();
    let pressed = term.write(b"\x03");
    let mut presses = 1;
    let prompt = loop {
        if let Some(at) = term.try_wait_for(PROMPT.as_bytes(), RETRY_AFTER) {
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
            "ctrl-c    {name}: no prompt {RETRY_AFTER:?} after Ctrl-C ({kib} KiB since); pressing it again"
        );
        term.write(b"\x03");
        presses += 1;
    };
    let kib = (term.received() - received) as f64 / 1024.0;
    std::thread::sleep(Duration::from_millis(20));
    prompt.map(|at| (ms(at.duration_since(pressed)), kib))
}
