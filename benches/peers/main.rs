//! Peers benchmark: catty (local provider, sandbox off and on), OpenSSH (a private sshd on a
//! loopback port) and a bare PTY (the physical limit), each driven through a PTY this bench
//! owns like a user's terminal, or in a tmux pane (`tmux`), in one run. `cargo bench --bench
//! peers` (or `just bench`) runs every mode; `cargo bench --bench peers -- echo bulk` only
//! those (modes: echo, bulk, interrupt, interrupt-slow, tmux, upload, startup, memory,
//! resume). Prints one table. `CATTY_BENCH_TRIALS=N` sets the trials of the modes that count
//! them (interrupt, interrupt-slow, tmux), `CATTY_BENCH_TERMINAL_RATE` the slow terminal's
//! bytes a second (interrupt-slow; default 4,000,000), `CATTY_BENCH_BIN` another catty build
//! to run in place of this one (to compare builds with the same harness).

// A bench has no public API: `pub` here only shares items between its own modules.
#![allow(unreachable_pub)]

mod bulk;
mod contender;
mod daemon;
// Its bulk-file writer is the stream bench's: here each shell makes that file (`bulk.rs`).
#[allow(dead_code)]
mod data;
mod echo;
mod interrupt;
// Its `api_command` runs this build only; `daemon.rs` may run another.
#[allow(dead_code)]
#[path = "../../tests/common/launch.rs"]
mod launch;
#[path = "../../tests/common/listen.rs"]
mod listen;
mod memory;
mod panes;
mod proc;
mod pty;
mod report;
mod resume;
mod sshd;
mod startup;
mod tmux;
mod turns;
mod upload;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigHandler, Signal};

use contender::Contender;
use daemon::Daemon;
use report::Row;
use sshd::Sshd;

/// Every contender's shell prompt. `[` appears in no output measured, so scanning a flood
/// for the prompt is one memchr per chunk.
pub const PROMPT: &str = "[peers]$ ";
/// Every contender's shell, started with `PS1` set to `PROMPT`.
pub const SHELL: [&str; 3] = ["bash", "--norc", "--noprofile"];

/// One figure: its rows, every contender measured.
type Figure = fn(&Ctx) -> Vec<Row>;

const FIGURES: [(&str, Figure); 9] = [
    ("echo", echo::run),
    ("bulk", bulk::run),
    ("interrupt", interrupt::run),
    ("interrupt-slow", interrupt::run_slow),
    ("tmux", tmux::run),
    ("upload", upload::run),
    ("startup", startup::run),
    ("memory", memory::run),
    ("resume", resume::run),
];

/// The slow terminal's rate when `CATTY_BENCH_TERMINAL_RATE` does not say: about what a
/// terminal emulator draws of plain text in a second.
const TERMINAL_RATE: u64 = 4_000_000;

/// What every figure uses: the contenders, the generated inputs and the settings.
pub struct Ctx {
    pub off: Daemon,
    pub on: Daemon,
    pub sshd: Sshd,
    /// Where shells start, state lives and uploads land (outside any git repository).
    pub scratch: PathBuf,
    pub project: PathBuf,
    pub empty: PathBuf,
    pub workspace_bytes: usize,
    /// `CATTY_BENCH_TRIALS`, in place of each mode's own count.
    trials: Option<usize>,
    /// `CATTY_BENCH_TERMINAL_RATE`: bytes a second the slow terminal reads.
    pub terminal_rate: u64,
    _scratch: tempfile::TempDir,
}

impl Ctx {
    fn new() -> Ctx {
        let scratch_dir = scratch_dir();
        let scratch = scratch_dir.path().to_path_buf();
        let (project, empty) = (scratch.join("project"), scratch.join("empty"));
        std::fs::create_dir_all(&empty).unwrap();
        let started = Instant::now();
        let workspace_bytes = data::write_workspace(&project);
        eprintln!(
            "inputs generated in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ctx {
            off: Daemon::start(&daemon::state_dir(&scratch, false), false),
            on: Daemon::start(&daemon::state_dir(&scratch, true), true),
            sshd: Sshd::start(&scratch.join("sshd")),
            scratch,
            project,
            empty,
            workspace_bytes,
            trials: env_number("CATTY_BENCH_TRIALS").map(|n| n as usize),
            terminal_rate: env_number("CATTY_BENCH_TERMINAL_RATE").unwrap_or(TERMINAL_RATE),
            _scratch: scratch_dir,
        }
    }

    /// In the table's column order.
    pub fn contenders(&self) -> [Contender<'_>; 4] {
        [
            Contender::Catty(&self.off),
            Contender::Catty(&self.on),
            Contender::Ssh(&self.sshd),
            Contender::Bare,
        ]
    }

    pub fn daemons(&self) -> [&Daemon; 2] {
        [&self.off, &self.on]
    }

    /// Trials per contender for a mode whose own count is `default`.
    pub fn trials(&self, default: usize) -> usize {
        self.trials.unwrap_or(default)
    }
}

/// The whole positive number in variable `name`, if set; anything else set there is fatal.
fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let n = value.trim().parse().ok().filter(|n| *n > 0);
    Some(n.unwrap_or_else(|| panic!("{name}={value:?} is not a whole number above 0")))
}

/// On tmpfs where there is one. On this machine's ext4, creating files where many were
/// deleted in the last minutes costs up to 400 µs each in `recently_deleted` (kernel CPU,
/// not I/O): the same `tar x` of the workspace took 1.8 s, then 11 s, then 16 s. Uploads
/// land here, so on disk the upload figure measured the previous trial's deletions.
fn scratch_dir() -> tempfile::TempDir {
    match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // Started in the background by a script (`cargo bench &`), the bench inherits SIGINT
    // and SIGQUIT ignored, and so would the bare PTY's bash and its `yes`: every Ctrl-C there
    // would be lost. (catty's runtime and sshd reset them for their programs.)
    for sig in [Signal::SIGINT, Signal::SIGQUIT] {
        // SAFETY: the default disposition installs no handler, and no other thread runs yet.
        #[allow(unsafe_code)]
        unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) }.expect("sigaction");
    }
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let load_before = proc::load();
    let started = Instant::now();
    let ctx = Ctx::new();
    // Warm the daemons: their first session pays for the page cache and the sandbox probe.
    for daemon in ctx.daemons() {
        daemon::new_to_prompt(daemon, &ctx.empty, false);
    }
    let mut rows = Vec::new();
    for (name, run) in FIGURES {
        if wanted.is_empty() || wanted.iter().any(|w| w == name) {
            rows.extend(run(&ctx));
        }
    }
    drop(ctx);
    println!();
    print!("{}", report::table(&rows));
    println!();
    println!(
        "machine: {} cores ({}), Linux {}; load average {load_before} before, {} after; {:.0} s in all",
        proc::cores(),
        proc::cpu_model(),
        proc::kernel(),
        proc::load(),
        started.elapsed().as_secs_f64()
    );
    println!("command: {}", command(&wanted));
}

/// The command line that gave this output, settings included.
fn command(wanted: &[String]) -> String {
    let mut line = String::new();
    for name in [
        "CATTY_BENCH_BIN",
        "CATTY_BENCH_TRIALS",
        "CATTY_BENCH_TERMINAL_RATE",
    ] {
        if let Ok(value) = std::env::var(name) {
            line.push_str(&format!("{name}={value} "));
        }
    }
    line.push_str("cargo bench --bench peers");
    if !wanted.is_empty() {
        line.push_str(&format!(" -- {}", wanted.join(" ")));
    }
    line
}
