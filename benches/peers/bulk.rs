//! Figure 2, bulk output: `cat` of a 256 MiB file typed at the shell, timed from the command
//! typed to the next prompt on our terminal; the file's size over that time. Each shell first
//! makes the file itself (untimed), on tmpfs where it can read it: a sandboxed session sees
//! neither the bench's scratch directory nor the build's, and an upload is capped at 100 MiB.
//! catty's shells make it in the session's private home, not its workspace, which live
//! sync-back watches (it would hash the file while `cat` runs and print on our terminal that
//! the file is over its limit); ssh's and the bare PTY's in the scratch directory.
//! Every `cat` must put the whole file on our terminal, or the bench fails: a `cat` that
//! cannot read its file returns the prompt at once, which would read as a huge rate. The
//! contenders take turns, one `cat` each per round; the CPU time of each side is printed.

use std::time::Duration;

use crate::contender::{Contender, Shell};
use crate::data::{BULK_BYTES, BULK_LINE};
use crate::pty::Term;
use crate::report::{Goal, Row, Unit, median};
use crate::{Ctx, PROMPT};

const ROUNDS: usize = 5;
/// 256 MiB at a tenth of the bare PTY's speed would still finish.
const CAT_TIMEOUT: Duration = Duration::from_secs(300);
/// `yes | head` writes 256 MiB in about a second.
const MAKE_TIMEOUT: Duration = Duration::from_secs(120);
/// What our terminal shows besides `cat`'s output: the command's echo and the shell's mode
/// switches (bracketed paste off and on) around it.
const SHOWN_BESIDES: u64 = 256;

pub fn run(ctx: &Ctx) -> Vec<Row> {
    let contenders = ctx.contenders();
    let mut shells: Vec<Shell> = contenders
        .iter()
        .map(|c| Shell::new(c, &ctx.scratch))
        .collect();
    let files: Vec<String> = contenders.iter().enumerate().map(bulk_file).collect();
    for ((shell, file), contender) in shells.iter_mut().zip(&files).zip(&contenders) {
        make_file(shell.term(), file, contender.name());
    }
    let cpu_before: Vec<(f64, f64)> = shells.iter().map(Shell::cpu).collect();
    let mut rates = vec![Vec::new(); shells.len()];
    for _ in 0..ROUNDS {
        for col in 0..shells.len() {
            let seconds = cat(shells[col].term(), &files[col], contenders[col].name());
            rates[col].push(BULK_BYTES as f64 / seconds / 1e6);
        }
    }
    let mut values = [None; 4];
    for (col, shell) in shells.iter_mut().enumerate() {
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
        let term = shell.term();
        term.write(format!("rm -f {}\r", files[col]).as_bytes());
        term.wait_for(PROMPT.as_bytes(), MAKE_TIMEOUT);
    }
    vec![Row::new(
        "bulk output: `cat` of a 256 MiB file, median of 5",
        Unit::MBps,
        values,
        Goal::Bulk,
    )]
}

/// Where the shell of contender `col` makes the bulk file (see the top of this file); ssh's
/// and the bare PTY's share the scratch directory, so each has a name of its own.
fn bulk_file((col, contender): (usize, &Contender)) -> String {
    match contender {
        Contender::Catty(_) => "\"$HOME\"/peers-bulk.txt".into(),
        _ => format!("peers-bulk-{col}.txt"),
    }
}

/// Makes the bulk file as `file` in the shell's working directory, and checks from inside
/// the shell that it holds every byte.
fn make_file(term: &mut Term, file: &str, name: &str) {
    let command = format!("yes '{BULK_LINE}' | head -c {BULK_BYTES} > {file}; wc -c < {file}\r");
    term.write(command.as_bytes());
    let (_, seen) = term.wait_for_text(PROMPT.as_bytes(), MAKE_TIMEOUT);
    // `wc`'s line (the echo has the size too, but not at a line's end).
    let size = BULK_BYTES.to_string();
    assert!(
        seen.contains(&format!("{size}\r\n")),
        "bulk: {name}: the shell could not make its {size}-byte {file}; it said: {seen:?}"
    );
}

/// Seconds from `cat FILE` typed to the next prompt. Panics unless our terminal showed the
/// whole file in between (every newline as `\r\n`).
fn cat(term: &mut Term, file: &str, name: &str) -> f64 {
    let before = term.consumed();
    let typed = term.write(format!("cat {file}\r").as_bytes());
    let done = term.wait_for(PROMPT.as_bytes(), CAT_TIMEOUT);
    let shown = term.consumed() - before - PROMPT.len() as u64;
    let newlines = BULK_BYTES / (BULK_LINE.len() + 1);
    let expected = (BULK_BYTES + newlines) as u64;
    assert!(
        (expected..=expected + SHOWN_BESIDES).contains(&shown),
        "bulk: {name}: `cat {file}` put {shown} bytes on our terminal, not the file's {expected} \
         (+ at most {SHOWN_BESIDES} of echo): no figure from a `cat` that did not run whole"
    );
    done.duration_since(typed).as_secs_f64()
}
