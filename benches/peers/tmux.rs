//! The tmux mode: Ctrl-C under flood and keystroke echo as a person sees them, tmux being the
//! terminal. Each contender runs in a pane of one private tmux server (`panes.rs`): catty
//! (`catty new`, sandbox off and on), `ssh -tt` to the private sshd, and the plain shell (bash
//! right in its pane; the table's bare column). Keys go in with `send-keys`, the screen comes
//! out with `capture-pane`, polled every millisecond, so the figures include tmux parsing and
//! keeping the screen, which the harness never pays; the time is read from the pane's screen.
//!
//! - Ctrl-C: `yes` runs for a while, Ctrl-C is sent, and the clock stops when the prompt is
//!   the last line on the screen.
//! - Echo: a short mark (`k` and the trial's number) is typed at the prompt, and the clock
//!   stops when all of it is on the screen.
//!
//! Each trial runs both on every contender, in a new order each trial (`turns.rs`). The
//! catty sessions made here are stopped at the end.

use std::time::{Duration, Instant};

use crate::contender::Contender;
use crate::daemon::label_in;
use crate::panes::Panes;
use crate::report::{Goal, Row, Unit, max, percentile};
use crate::turns::Turns;
use crate::{Ctx, PROMPT, ms};

const TRIALS: usize = 30;
const COLS: u16 = 120;
const ROWS: u16 = 40;
const POLL: Duration = Duration::from_millis(1);
/// `yes` floods this long before Ctrl-C, so every buffer between it and the screen is full.
const FLOOD: Duration = Duration::from_millis(300);

pub fn run(ctx: &Ctx) -> Vec<Row> {
    let trials = ctx.trials(TRIALS);
    let contenders = ctx.contenders();
    let mut panes = Panes::start();
    let names: Vec<String> = (0..contenders.len()).map(|col| format!("c{col}")).collect();
    for (contender, name) in contenders.iter().zip(&names) {
        panes.open(
            name,
            COLS,
            ROWS,
            &ctx.scratch,
            &contender.argv(&ctx.scratch),
        );
    }
    // catty's sessions, to stop at the end.
    let mut sessions = Vec::new();
    for (contender, name) in contenders.iter().zip(&names) {
        let (_, screen) = panes.wait_for(name, "the first prompt", POLL, at_prompt);
        if let Contender::Catty(daemon) = contender {
            sessions.push((*daemon, label_in(&screen.join("\n"))));
        }
    }
    let mut ctrl_c = vec![Vec::new(); contenders.len()];
    let mut echo = vec![Vec::new(); contenders.len()];
    let mut turns = Turns::new(contenders.len());
    for n in 0..trials {
        for &col in turns.next_round() {
            ctrl_c[col].push(interrupt(&mut panes, &names[col]));
            echo[col].push(type_mark(&mut panes, &names[col], n));
        }
    }
    drop(panes);
    for (daemon, label) in sessions {
        daemon.stop(&label);
    }
    let mut rows = Vec::new();
    let figures = [
        (
            "ctrl-c",
            "Ctrl-C under `yes` to the prompt on screen",
            &ctrl_c,
        ),
        ("echo", "keystroke echo on screen", &echo),
    ];
    for (tag, figure, times) in figures {
        let stats = report(tag, &contenders, times);
        rows.extend(table_rows(figure, trials, stats, tag == "ctrl-c"));
    }
    rows
}

/// Prints each contender's p50, p90, p99 and max; returns them, a row each.
fn report(tag: &str, contenders: &[Contender], times: &[Vec<f64>]) -> [[Option<f64>; 4]; 4] {
    let mut stats = [[None; 4]; 4];
    for (col, times) in times.iter().enumerate() {
        let values = [
            percentile(times, 50.0),
            percentile(times, 90.0),
            percentile(times, 99.0),
            max(times),
        ];
        println!(
            "tmux {tag:<6} {:<20} p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} trials)",
            contenders[col].name(),
            values[0],
            values[1],
            values[2],
            values[3],
            times.len()
        );
        for (stat, v) in stats.iter_mut().zip(values) {
            stat[col] = Some(v);
        }
    }
    stats
}

/// The table's rows for one figure. Ctrl-C in a terminal has the goal: p50 at most
/// ssh's, p99 under 150 ms.
fn table_rows(figure: &str, trials: usize, stats: [[Option<f64>; 4]; 4], goals: bool) -> Vec<Row> {
    let names = ["p50", "p90", "p99", "max"];
    names
        .into_iter()
        .zip(stats)
        .map(|(stat, values)| {
            let goal = match (goals, stat) {
                (true, "p50") => Goal::AtMostSsh,
                (true, "p99") => Goal::Below(150.0),
                _ => Goal::None,
            };
            let text = format!("tmux: {figure}, {stat} ({trials} trials; bare: bash in its pane)");
            Row::new(text, Unit::Ms, values, goal)
        })
        .collect()
}

/// Whether the screen's last line is the prompt, nothing typed after it.
fn at_prompt(screen: &[String]) -> bool {
    screen.last().is_some_and(|line| line == PROMPT.trim_end())
}

/// `yes` on a cleared screen; once the screen is full of it and it ran for `FLOOD`, Ctrl-C:
/// milliseconds until the prompt is the last line.
fn interrupt(panes: &mut Panes, name: &str) -> f64 {
    panes.type_text(name, "clear; yes");
    panes.keys(name, &["Enter"]);
    panes.wait_for(name, "`yes` on the screen", POLL, |s| {
        s.len() > 5 && s.last().is_some_and(|l| l == "y")
    });
    std::thread::sleep(FLOOD);
    let pressed = panes.keys(name, &["C-c"]);
    let (at, _) = panes.wait_for(name, "the prompt after Ctrl-C", POLL, at_prompt);
    elapsed(pressed, at)
}

/// Types a mark unique to trial `n` at a prompt alone on a cleared screen: milliseconds until
/// it is on the screen. The line is erased after.
fn type_mark(panes: &mut Panes, name: &str, n: usize) -> f64 {
    panes.type_text(name, "clear");
    panes.keys(name, &["Enter"]);
    panes.wait_for(name, "a cleared screen", POLL, |s| {
        s.len() == 1 && at_prompt(s)
    });
    let mark = format!("k{n}");
    let typed = panes.type_text(name, &mark);
    let (at, _) = panes.wait_for(name, "the typed mark", POLL, |s| {
        s.last().is_some_and(|l| l.ends_with(&mark))
    });
    panes.keys(name, &["C-u"]);
    elapsed(typed, at)
}

fn elapsed(from: Instant, to: Instant) -> f64 {
    ms(to.duration_since(from))
}
