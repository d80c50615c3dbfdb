//! Figure 6, runtime memory: the resident size of the server side of one session, idle at a
//! prompt, then while `yes` floods and our terminal has stopped reading (the client stalls
//! behind it). catty's server side is its runtime (`catty exec`); ssh's the session's sshd
//! processes. "Bounded" means it stopped growing: the second half of the stall adds < 1 MiB.

use std::time::Duration;

use crate::contender::{Contender, Shell};
use crate::report::{Goal, Row, Unit};
use crate::{Ctx, PROMPT, proc};

/// Settling after the prompt before the idle sample.
const IDLE: Duration = Duration::from_secs(1);
const STALL: Duration = Duration::from_secs(6);
const SAMPLE: Duration = Duration::from_millis(100);
const FLOWING_BYTES: usize = 256 * 1024;
const TIMEOUT: Duration = Duration::from_secs(120);

struct Memory {
    idle_kib: u64,
    stalled_max_kib: u64,
    bounded: bool,
}

pub fn run(ctx: &Ctx) -> Vec<Row> {
    let mut idle = [None; 4];
    let mut stalled = [None; 4];
    let mut bounded = [false; 2];
    for (col, contender) in ctx.contenders().iter().enumerate() {
        let Some(m) = measure(contender, ctx) else {
            continue;
        };
        idle[col] = Some(m.idle_kib as f64 / 1024.0);
        stalled[col] = Some(m.stalled_max_kib as f64 / 1024.0);
        if col < 2 {
            bounded[col] = m.bounded;
        }
    }
    let flat = "bounded: flat in the 2nd half";
    vec![
        Row::new(
            "server-side RSS, idle at the prompt",
            Unit::MiB,
            idle,
            Goal::Below(10.0),
        ),
        Row::new(
            "server-side RSS, `yes` with a stalled client (max over 6 s)",
            Unit::MiB,
            stalled,
            Goal::Holds(flat, bounded),
        ),
    ]
}

fn measure(contender: &Contender, ctx: &Ctx) -> Option<Memory> {
    if let Contender::Bare = contender {
        return None;
    }
    let mut shell = Shell::new(contender, &ctx.scratch);
    let server = shell.server.clone();
    let rss = || server.iter().map(|p| proc::rss_kib(*p)).sum::<u64>();
    std::thread::sleep(IDLE);
    let idle_kib = rss();
    let client = shell.client;
    let term = shell.term();
    term.write(b"yes\r");
    term.wait_bytes(FLOWING_BYTES, TIMEOUT);
    term.set_paused(true);
    let samples: Vec<u64> = (0..STALL.as_millis() / SAMPLE.as_millis())
        .map(|_| {
            std::thread::sleep(SAMPLE);
            rss()
        })
        .collect();
    let client_kib = proc::rss_kib(client);
    term.set_paused(false);
    term.write(b"\x03");
    term.wait_for(PROMPT.as_bytes(), TIMEOUT);
    let half = samples.len() / 2;
    let first = samples[..half].iter().max().copied().unwrap_or(0);
    let second = samples[half..].iter().max().copied().unwrap_or(0);
    let m = Memory {
        idle_kib,
        stalled_max_kib: first.max(second),
        bounded: second < first + 1024,
    };
    println!(
        "memory    {:<20} idle {:.1} MiB, stalled max {:.1} MiB (1st half {:.1}, 2nd half {:.1}; {} processes); client {:.1} MiB",
        contender.name(),
        m.idle_kib as f64 / 1024.0,
        m.stalled_max_kib as f64 / 1024.0,
        first as f64 / 1024.0,
        second as f64 / 1024.0,
        server.len(),
        client_kib as f64 / 1024.0
    );
    Some(m)
}
