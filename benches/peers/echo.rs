//! Figure 1, keystroke echo: `cat` in canonical mode, so the remote tty's line discipline
//! echoes each key. One key at a time, the next only after the echo of the last came back
//! on our terminal (and a short pause, as between a user's keys); a line is ended every 50
//! keys so the line buffer never fills. The contenders take turns key by key, in a new order
//! each round (`turns.rs`), so that a burst of the machine's other work falls on all alike.
//! Also counted: the CPU time the client and the server side spend per key.

use std::time::Duration;

use crate::contender::{Contender, Shell};
use crate::pty::Term;
use crate::report::{Goal, Row, Unit, max, percentile};
use crate::turns::Turns;
use crate::{Ctx, PROMPT, ms};

const KEYSTROKES: usize = 2_000;
const WARMUP: usize = 20;
const PER_LINE: usize = 50;
/// Between one echo and the next key.
const PAUSE: Duration = Duration::from_millis(2);
const ECHO_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(ctx: &Ctx) -> Vec<Row> {
    let contenders = ctx.contenders();
    let mut shells: Vec<Shell> = contenders.iter().map(|c| start_cat(c, ctx)).collect();
    let cpu_before: Vec<u64> = shells.iter().map(Shell::cpu_ns).collect();
    let mut latencies = vec![Vec::with_capacity(KEYSTROKES); shells.len()];
    let mut turns = Turns::new(shells.len());
    for k in 0..KEYSTROKES {
        let order = turns.next_round().to_vec();
        for &col in &order {
            let term = shells[col].term();
            latencies[col].push(type_key(term, k));
            if (k + 1) % PER_LINE == 0 {
                end_line(term, k + 1 - PER_LINE..k + 1);
            }
        }
    }
    let cpu_ns: Vec<u64> = shells
        .iter()
        .zip(cpu_before)
        .map(|(s, before)| s.cpu_ns() - before)
        .collect();
    let mut stats = [[None; 4]; 4];
    for (col, (shell, latencies)) in shells.iter_mut().zip(&latencies).enumerate() {
        shell.term().write(b"\x04");
        shell.term().wait_for(PROMPT.as_bytes(), ECHO_TIMEOUT);
        let (p50, p99, worst) = (
            percentile(latencies, 50.0),
            percentile(latencies, 99.0),
            max(latencies),
        );
        // The bare PTY's echo is the kernel's alone: no process of its own to count.
        let keys = latencies.len() as f64;
        let cpu = (!shell.server.is_empty()).then(|| cpu_ns[col] as f64 / 1e6 / keys);
        println!(
            "echo      {:<20} p50 {p50:.3} ms  p99 {p99:.3} ms  max {worst:.3} ms  cpu/key {}  ({} keys)",
            contenders[col].name(),
            cpu.map_or("-".into(), |ms| format!("{:.1} µs", ms * 1e3)),
            latencies.len()
        );
        for (stat, v) in stats
            .iter_mut()
            .zip([Some(p50), Some(p99), Some(worst), cpu])
        {
            stat[col] = v;
        }
    }
    let [p50, p99, worst, cpu] = stats;
    vec![
        Row::new(
            "keystroke echo p50 (2,000 keys into `cat`)",
            Unit::Ms,
            p50,
            Goal::EchoP50,
        ),
        Row::new("keystroke echo p99", Unit::Ms, p99, Goal::AtMostSsh),
        Row::new("keystroke echo max", Unit::Ms, worst, Goal::None),
        Row::new(
            "keystroke echo: CPU per key, client + server",
            Unit::Ms,
            cpu,
            Goal::None,
        ),
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
    for k in 0..WARMUP {
        type_key(term, k);
    }
    end_line(term, 0..WARMUP);
    shell
}

/// The `k`th key typed: the letters in turn.
fn key(k: usize) -> u8 {
    b'a' + (k % 26) as u8
}

/// Types key `k` after a short pause, as between a user's keys; the milliseconds from the
/// key written to its echo read.
fn type_key(term: &mut Term, k: usize) -> f64 {
    std::thread::sleep(PAUSE);
    let typed = term.write(&[key(k)]);
    let echoed = term.wait_for(&[key(k)], ECHO_TIMEOUT);
    ms(echoed.saturating_duration_since(typed))
}

/// Ends the line of keys `keys` with Enter; waits for its echo and `cat`'s copy of the line.
fn end_line(term: &mut Term, keys: std::ops::Range<usize>) {
    term.write(b"\r");
    let mut line: Vec<u8> = keys.map(key).collect();
    line.extend_from_slice(b"\r\n");
    term.wait_for(&line, ECHO_TIMEOUT);
}
