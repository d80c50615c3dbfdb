//! Figure 2, bulk output: `cat` of the 256 MiB file typed at the shell, timed from the
//! command typed to the next prompt on our terminal; the file's size over that time. The
//! contenders take turns, one `cat` each per round; the CPU time of each side is printed.

use std::time::Duration;

use crate::contender::Shell;
use crate::data::BULK_BYTES;
use crate::report::{Goal, Row, Unit, median};
use crate::{Ctx, PROMPT};

const ROUNDS: usize = 5;
/// 256 MiB at a tenth of the bare PTY's speed would still finish.
const CAT_TIMEOUT: Duration = Duration::from_secs(300);

pub fn run(ctx: &Ctx) -> Vec<Row> {
    let contenders = ctx.contenders();
    let mut shells: Vec<Shell> = contenders
        .iter()
        .map(|c| Shell::new(c, &ctx.scratch))
        .collect();
    let cpu_before: Vec<(f64, f64)> = shells.iter().map(Shell::cpu).collect();
    let command = format!("cat {}\r", ctx.bulk.display());
    let mut rates = vec![Vec::new(); shells.len()];
    for _ in 0..ROUNDS {
        for (shell, rates) in shells.iter_mut().zip(&mut rates) {
            let term = shell.term();
            let typed = term.write(command.as_bytes());
            let done = term.wait_for(PROMPT.as_bytes(), CAT_TIMEOUT);
            rates.push(BULK_BYTES as f64 / done.duration_since(typed).as_secs_f64() / 1e6);
        }
    }
    let mut values = [None; 4];
    for (col, shell) in shells.iter().enumerate() {
        let (server, client) = shell.cpu();
        let per_round = |after: f64, before: f64| (after - before) / ROUNDS as f64;
        println!(
            "bulk      {:<20} {:.1} MB/s median of {ROUNDS} ({}); CPU per 256 MiB: server {:.2} s, client {:.2} s",
            contenders[col].name(),
            median(&rates[col]),
            rates[col]
                .iter()
                .map(|r| format!("{r:.1}"))
                .collect::<Vec<_>>()
                .join(", "),
            per_round(server, cpu_before[col].0),
            per_round(client, cpu_before[col].1),
        );
        values[col] = Some(median(&rates[col]));
    }
    vec![Row::new(
        "bulk output: `cat` of a 256 MiB file, median of 5",
        Unit::MBps,
        values,
        Goal::Bulk,
    )]
}
