//! Figure 4, upload of the generated 40,000-file / 80 MiB workspace. catty's is the upload
//! phase of `catty new`: the time to the prompt with the upload, less the time without.
//! ssh's is the wall time of `tar c -C SRC . | ssh 'tar x -C DST'` (its key exchange
//! included), and the bare column the same `tar c | tar x` without ssh: the disk's limit.
//! The contenders take turns, one upload each per round.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::Ctx;
use crate::contender::NAMES;
use crate::daemon::new_to_prompt;
use crate::report::{Goal, Row, Unit, median};

const ROUNDS: usize = 3;
const ROUNDS_WITHOUT: usize = 5;

pub fn run(ctx: &Ctx) -> Vec<Row> {
    let daemons = ctx.daemons();
    let without = daemons.map(|daemon| {
        let times: Vec<f64> = (0..ROUNDS_WITHOUT)
            .map(|_| new_to_prompt(daemon, &ctx.empty, false))
            .collect();
        median(&times)
    });
    let ssh = |dst: &Path| {
        let argv = ctx
            .sshd
            .pipe_argv(&format!("mkdir {0} && tar x -C {0}", dst.display()));
        argv.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let local = |dst: &Path| format!("sh -c 'mkdir {0} && tar x -C {0}'", dst.display());
    let mut times = vec![Vec::new(); 4];
    // Contenders take turns, one upload each per round.
    for round in 0..ROUNDS {
        for (col, daemon) in daemons.iter().enumerate() {
            times[col].push(new_to_prompt(daemon, &ctx.project, true) - without[col]);
        }
        times[2].push(tar_pipe(ctx, &format!("tar-ssh-{round}"), ssh));
        times[3].push(tar_pipe(ctx, &format!("tar-local-{round}"), local));
    }
    let mb = ctx.workspace_bytes as f64 / 1e6;
    let mut seconds = [None; 4];
    for (col, times) in times.iter().enumerate() {
        println!(
            "upload    {:<20} {:.2} s = {:.1} MB/s median of {ROUNDS} ({}){}",
            NAMES[col],
            median(times),
            mb / median(times),
            times
                .iter()
                .map(|t| format!("{t:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            match col {
                0 | 1 => format!("; `catty new` without upload: {:.3} s", without[col]),
                _ => String::new(),
            }
        );
        seconds[col] = Some(median(times));
    }
    let rates = seconds.map(|s| s.map(|s| mb / s));
    vec![
        Row::new(
            "upload of 40,000 files / 80 MiB (catty: upload phase of `catty new`; ssh: `tar c \\| ssh tar x`; bare: local `tar c \\| tar x`), median of 3",
            Unit::S,
            seconds,
            Goal::AtMostSsh,
        ),
        Row::new("upload: rate", Unit::MBps, rates, Goal::None),
    ]
}

/// Wall time of `tar c -C project . | RECEIVER(dst)` into a fresh directory `name`.
fn tar_pipe(ctx: &Ctx, name: &str, receiver: impl Fn(&Path) -> String) -> f64 {
    let dst = ctx.scratch.join(name);
    let _ = std::fs::remove_dir_all(&dst);
    let pipeline = format!("tar c -C {} . | {}", ctx.project.display(), receiver(&dst));
    let start = Instant::now();
    let status = Command::new("bash")
        .args(["-o", "pipefail", "-c", &pipeline])
        .status()
        .unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert!(status.success(), "{pipeline} failed");
    std::fs::remove_dir_all(&dst).unwrap();
    elapsed
}

fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}
