//! Figure 1, keystroke echo: `cat` in canonical mode, so the remote tty's line discipline
//! echoes each key. One key at a time, the next only after the echo of the last came back
//! on our terminal (and a short pause, as between a user's keys); a line is ended every 50
//! keys so the line buffer never fills. The contenders take turns, 500 keys at a time.

use std::time::Duration;

use crate::contender::{Contender, Shell};
use crate::pty::Term;
use crate::report::{Goal, Row, Unit, max, percentile};
use crate::{Ctx, PROMPT, ms};

const KEYSTROKES: usize = 2_000;
const WARMUP: usize = 20;
const PER_LINE: usize = 50;
/// Turns each contender takes: 4 x 10 lines of 50 keys.
const BLOCKS: usize = 4;
/// Between one echo and the next key.
const PAUSE: Duration = Duration::from_millis(2);
const ECHO_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(ctx: &Ctx) -> Vec<Row> {
    let contenders = ctx.contenders();
    let mut shells: Vec<Shell> = contenders.iter().map(|c| start_cat(c, ctx)).collect();
    let mut latencies = vec![Vec::with_capacity(KEYSTROKES); shells.len()];
    // Contenders take turns, a block each, so the machine's other load falls on all alike.
    for _ in 0..BLOCKS {
        for (shell, latencies) in shells.iter_mut().zip(&mut latencies) {
            for _ in 0..KEYSTROKES / BLOCKS / PER_LINE {
                latencies.extend(type_line(shell.term(), PER_LINE));
            }
        }
    }
    let mut stats = [[None; 4]; 3];
    for (col, (shell, latencies)) in shells.iter_mut().zip(&latencies).enumerate() {
        shell.term().write(b"\x04");
        shell.term().wait_for(PROMPT.as_bytes(), ECHO_TIMEOUT);
        let (p50, p99, worst) = (
            percentile(latencies, 50.0),
            percentile(latencies, 99.0),
            max(latencies),
        );
        println!(
            "echo      {:<20} p50 {p50:.3} ms  p99 {p99:.3} ms  max {worst:.3} ms  ({} keys)",
            contenders[col].name(),
            latencies.len()
        );
        for (stat, v) in stats.iter_mut().zip([p50, p99, worst]) {
            stat[col] = Some(v);
        }
    }
    let [p50, p99, worst] = stats;
    vec![
        Row::new(
            "keystroke echo p50 (2,000 keys into `cat`)",
            Unit::Ms,
            p50,
            Goal::EchoP50,
        ),
        Row::new("keystroke echo p99", Unit::Ms, p99, Goal::AtMostSsh),
        Row::new("keystroke echo max", Unit::Ms, worst, Goal::None),
    ]
}

/// A shell of `contender` running `cat`, warmed up by a few keys.
fn start_cat<'a>(contender: &Contender<'a>, ctx: &Ctx) -> Shell<'a> {
    let mut shell = Shell::new(contender, &ctx.scratch);
    let term = shell.term();
    term.write(b"cat\r");
    term.wait_for(b"cat\r\n", ECHO_TIMEOUT);
    // Let bash hand the terminal to `cat` (canonical mode, echo on) before typing.
    std::thread::sleep(Duration::from_millis(300));
    term.drain(Duration::from_millis(100));
    type_line(term, WARMUP);
    shell
}

/// Types `keys` letters, each after the echo of the one before, then Enter; the milliseconds
/// from each key written to its echo read.
fn type_line(term: &mut Term, keys: usize) -> Vec<f64> {
    let mut line = Vec::with_capacity(keys + 2);
    let mut latencies = Vec::with_capacity(keys);
    for k in 0..keys {
        let key = b'a' + (k % 26) as u8;
        std::thread::sleep(PAUSE);
        let typed = term.write(&[key]);
        let echoed = term.wait_for(&[key], ECHO_TIMEOUT);
        latencies.push(ms(echoed.saturating_duration_since(typed)));
        line.push(key);
    }
    // The echo of Enter, then `cat`'s copy of the line.
    term.write(b"\r");
    line.extend_from_slice(b"\r\n");
    term.wait_for(&line, ECHO_TIMEOUT);
    latencies
}
