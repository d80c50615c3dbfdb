//! A slow terminal paces the program. The real `catty connect` runs under `script` (a PTY of
//! its own), whose output the test reads at a fixed rate, like a terminal that draws that
//! fast; the program floods. The client reports what its terminal took and asks for a window
//! of what that terminal drains in a moment, so the bytes between the program and the
//! terminal stay near that, where a fixed window kept a megabyte and the sockets' buffers in
//! flight: that is how long a Ctrl-C waits behind output.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use catty::protocol::STUCK_READER;

use crate::common::lookup::{LABEL, Lookup};
use crate::common::{DEADLINE, Runtime};
use crate::exec_hold::{end_of_output, wait_for_growth};

/// How fast the test's terminal takes output: 1 MB/s.
const RATE: u64 = 1_000_000;

/// The terminal: takes output at [`RATE`], or nothing while `paused`.
#[derive(Clone, Default)]
struct Terminal {
    taken: Arc<AtomicU64>,
    paused: Arc<AtomicBool>,
}

impl Terminal {
    fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Reads `from` at [`RATE`] until it ends.
    fn read(self, mut from: impl Read) {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            while self.paused.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let total = self.taken.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
                    let due = Duration::from_secs_f64(total as f64 / RATE as f64);
                    std::thread::sleep(due.saturating_sub(start.elapsed()));
                }
            }
        }
    }
}

/// A flooding program, and the real client attached to it in a terminal that has taken its
/// first second of output.
struct Attached {
    runtime: Runtime,
    terminal: Terminal,
    client: std::process::Child,
    _lookup: Lookup,
    _dirs: [tempfile::TempDir; 2],
    // Last: the lookup runs on it.
    tokio: tokio::runtime::Runtime,
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.client.kill();
        let _ = self.client.wait();
    }
}

fn attached() -> Attached {
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let runtime = Runtime::start(&["yes"], &[]);
    let state = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let lookup = tokio.block_on(Lookup::start(runtime.addr, state.path()));
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_catty"))
        .parent()
        .unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let mut client = Command::new("script")
        .args([
            "-q",
            "-e",
            "-c",
            &format!("catty connect {LABEL}"),
            "/dev/null",
        ])
        .env("PATH", path)
        .env("HOME", home.path())
        .env("XDG_STATE_HOME", state.path())
        .env("CATTY_API_ADDR", lookup.addr.to_string())
        .env("TERM", "xterm-256color")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let terminal = Terminal::default();
    let stdout = client.stdout.take().unwrap();
    let reader = terminal.clone();
    std::thread::spawn(move || reader.read(stdout));
    // The first second lets the client measure its terminal.
    let deadline = Instant::now() + DEADLINE;
    while terminal.taken() < RATE {
        assert!(Instant::now() < deadline, "the terminal got no output");
        std::thread::sleep(Duration::from_millis(50));
    }
    Attached {
        runtime,
        terminal,
        client,
        _lookup: lookup,
        _dirs: [state, home],
        tokio,
    }
}

#[test]
fn a_slow_terminal_keeps_little_output_in_flight() {
    let a = attached();
    // The most in flight at any of thirty looks over three seconds.
    let mut most = 0;
    for _ in 0..30 {
        let end = a.tokio.block_on(end_of_output(&a.runtime));
        most = most.max(end.saturating_sub(a.terminal.taken()));
        std::thread::sleep(Duration::from_millis(100));
    }
    // What 1 MB/s drains in the 20 ms target plus a loopback round trip (the least window,
    // 16 KiB, or a little over) and the kernel's buffers on the way: two PTYs' and a pipe's,
    // up to 64 KiB each. A fixed 1 MiB window alone is four times this bound (measured
    // without the client's reports: 10.7 MB, with the sockets' buffers and its queue).
    let bound = 256 * 1024;
    assert!(
        most < bound,
        "{most} bytes between the program and the terminal (bound {bound})"
    );
    assert!(most > 0, "nothing in flight: was the program flooding?");
}

#[test]
fn a_terminal_that_takes_nothing_stops_holding_the_program() {
    let mut a = attached();
    a.terminal.paused.store(true, Ordering::Relaxed);
    // The program stops once the window is full...
    let mut end = a.tokio.block_on(end_of_output(&a.runtime));
    let deadline = Instant::now() + DEADLINE;
    let held = loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = a.tokio.block_on(end_of_output(&a.runtime));
        if now == end {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "the program never stopped");
        end = now;
    };
    // ...and runs again once the client, still pinging, has taken nothing for STUCK_READER.
    let grew = a
        .tokio
        .block_on(wait_for_growth(&a.runtime, end, DEADLINE))
        .expect("the program stayed stopped");
    let waited = grew - held;
    assert!(
        waited > STUCK_READER - Duration::from_secs(2),
        "ran again after {waited:?}"
    );
    // The client is still attached, and catches up once its terminal takes output again.
    let before = a.terminal.taken();
    a.terminal.paused.store(false, Ordering::Relaxed);
    let deadline = Instant::now() + DEADLINE;
    while a.terminal.taken() < before + RATE {
        assert!(Instant::now() < deadline, "the client did not catch up");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(a.client.try_wait().unwrap().is_none(), "the client ended");
}
