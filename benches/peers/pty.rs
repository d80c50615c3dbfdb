//! The user's terminal: a PTY this bench owns, with a contender running on its slave as the
//! controlling terminal (`setsid -c`). A thread reads the master and stamps each chunk with
//! its arrival time, so waits here do not add to what is measured. It reads as fast as output
//! comes, or at a set rate, like a terminal emulator that draws so many bytes a second.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use nix::pty::Winsize;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The size every contender's terminal has.
const SIZE: Winsize = Winsize {
    ws_row: 24,
    ws_col: 80,
    ws_xpixel: 0,
    ws_ypixel: 0,
};
/// What a failed wait shows of the output, to say where things stood.
const TAIL_SHOWN: usize = 400;
/// A capture keeps at most this much, so waiting through a flood stays bounded.
const CAPTURE_LIMIT: usize = 64 * 1024;
/// At a set rate, each read takes about this long to "draw" before the next one.
const DRAW_PERIOD: Duration = Duration::from_millis(1);
/// At a set rate, how far behind its schedule the reader may catch up (a late wake-up);
/// an idle terminal banks no more than this.
const DRAW_SLACK: Duration = Duration::from_millis(20);

struct Chunk {
    at: Instant,
    bytes: Vec<u8>,
}

pub struct Term {
    master: File,
    chunks: Receiver<Chunk>,
    /// Received and not consumed yet.
    pending: Vec<u8>,
    /// When the newest byte of `pending` arrived.
    pending_at: Instant,
    paused: Arc<AtomicBool>,
    /// Bytes a second the master is read at; 0: as fast as output comes.
    rate: Arc<AtomicU64>,
    child: Child,
    name: String,
    /// Every byte read so far.
    received: u64,
}

impl Term {
    /// Starts `argv` on a fresh 80x24 PTY, in its own session with the PTY as its terminal.
    pub fn spawn(name: &str, argv: &[&str], env: &[(&str, &str)], cwd: &Path) -> Term {
        let pty = nix::pty::openpty(Some(&SIZE), None).expect("openpty");
        // Other contenders' processes must not hold this terminal open.
        for fd in [&pty.master, &pty.slave] {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC).unwrap();
        }
        let slave = File::from(pty.slave);
        let child = Command::new("setsid")
            .arg("-c")
            .args(argv)
            .envs(env.iter().copied())
            .env("TERM", "xterm-256color")
            .current_dir(cwd)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {argv:?}: {e}"));
        let master = File::from(pty.master);
        let paused = Arc::new(AtomicBool::new(false));
        let rate = Arc::new(AtomicU64::new(0));
        let reader = Reader {
            master: master.try_clone().unwrap(),
            paused: paused.clone(),
            rate: rate.clone(),
        };
        Term {
            master,
            chunks: reader.spawn(),
            pending: Vec::new(),
            pending_at: Instant::now(),
            paused,
            rate,
            child,
            name: name.to_string(),
            received: 0,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Kills the terminal's foreground process group (the program the shell is running).
    pub fn kill_foreground(&self) {
        if let Ok(group) = rustix::termios::tcgetpgrp(&self.master) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }

    /// Bytes read from the master so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Bytes read and consumed by the waits so far (a pattern waited for included): the
    /// difference between two calls is what the terminal showed in between.
    pub fn consumed(&self) -> u64 {
        self.received - self.pending.len() as u64
    }

    /// Types `bytes`; returns the instant just before they were written.
    pub fn write(&mut self, bytes: &[u8]) -> Instant {
        let at = Instant::now();
        self.master
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("{}: cannot type: {e}", self.name));
        at
    }

    /// Consumes output through the first `pattern`; returns when its last byte arrived.
    pub fn wait_for(&mut self, pattern: &[u8], timeout: Duration) -> Instant {
        self.scan(pattern, timeout, None)
            .unwrap_or_else(|| self.fail("timed out", pattern))
    }

    /// Like `wait_for`, but `None` when the pattern has not come within `timeout`.
    pub fn try_wait_for(&mut self, pattern: &[u8], timeout: Duration) -> Option<Instant> {
        self.scan(pattern, timeout, None)
    }

    /// Like `wait_for`, and also returns (up to 64 KiB of) what came before the pattern.
    pub fn wait_for_text(&mut self, pattern: &[u8], timeout: Duration) -> (Instant, String) {
        let mut seen = Vec::new();
        let at = self
            .scan(pattern, timeout, Some(&mut seen))
            .unwrap_or_else(|| self.fail("timed out", pattern));
        (at, String::from_utf8_lossy(&seen).into_owned())
    }

    fn scan(
        &mut self,
        pattern: &[u8],
        timeout: Duration,
        mut capture: Option<&mut Vec<u8>>,
    ) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = find(&self.pending, pattern) {
                if let Some(seen) = capture.as_deref_mut() {
                    seen.extend_from_slice(&self.pending[..end - pattern.len()]);
                }
                self.pending.drain(..end);
                return Some(self.pending_at);
            }
            // Keep only what could still start the pattern.
            let keep_from = self.pending.len().saturating_sub(pattern.len() - 1);
            if let Some(seen) = capture.as_deref_mut() {
                seen.extend_from_slice(&self.pending[..keep_from]);
                let excess = seen.len().saturating_sub(CAPTURE_LIMIT);
                seen.drain(..excess);
            }
            self.pending.drain(..keep_from);
            if !self.receive(deadline) {
                return None;
            }
        }
    }

    /// Discards output until `bytes` more bytes came.
    pub fn wait_bytes(&mut self, bytes: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut got = std::mem::take(&mut self.pending).len();
        while got < bytes {
            if !self.receive(deadline) {
                self.fail("timed out", format!("{bytes} bytes of output").as_bytes());
            }
            got += std::mem::take(&mut self.pending).len();
        }
    }

    /// Discards output for `duration`, however much comes.
    pub fn discard_for(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        self.pending.clear();
        while self.receive(deadline) {
            self.pending.clear();
        }
    }

    /// Discards output until none came for `quiet`.
    pub fn drain(&mut self, quiet: Duration) {
        self.pending.clear();
        while let Ok(chunk) = self.chunks.recv_timeout(quiet) {
            self.received += chunk.bytes.len() as u64;
            self.pending_at = chunk.at;
        }
    }

    /// Every chunk that arrives within `window`, with its arrival time.
    pub fn arrivals(&mut self, window: Duration) -> Vec<(Instant, Vec<u8>)> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        self.pending.clear();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => {
                    self.received += chunk.bytes.len() as u64;
                    out.push((chunk.at, chunk.bytes));
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => panic!("{}: output ended", self.name),
            }
        }
        out
    }

    /// Stops (or restarts) reading the master, like a terminal that froze.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    /// Reads the master at most `bytes_per_second` from now on, like a terminal that draws
    /// no faster; `None`: as fast as output comes.
    pub fn set_rate(&self, bytes_per_second: Option<u64>) {
        self.rate
            .store(bytes_per_second.unwrap_or(0), Ordering::SeqCst);
    }

    /// Waits for the contender to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "{}: did not exit", self.name);
            let _ = self.chunks.recv_timeout(Duration::from_millis(10));
        }
    }

    /// Adds the next chunk to `pending`; false when none came before `deadline`.
    fn receive(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.chunks.recv_timeout(left) {
            Ok(chunk) => {
                self.received += chunk.bytes.len() as u64;
                self.pending.extend_from_slice(&chunk.bytes);
                self.pending_at = chunk.at;
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => self.fail("the output ended", b"more"),
        }
    }

    fn fail(&self, why: &str, waiting_for: &[u8]) -> ! {
        let tail = &self.pending[self.pending.len().saturating_sub(TAIL_SHOWN)..];
        panic!(
            "{}: {why} waiting for {:?}; last output: {:?}",
            self.name,
            String::from_utf8_lossy(waiting_for),
            String::from_utf8_lossy(tail)
        );
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Term {
    /// Kills everything in the contender's session (the shell's jobs included): the reader
    /// thread then sees EIO and ends.
    pub fn kill(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            // It ended by itself (and was reaped): its pid may name someone else by now.
            return;
        }
        for sig in [Signal::SIGHUP, Signal::SIGKILL] {
            for pid in session_members(self.pid()) {
                let _ = kill(Pid::from_raw(pid), sig);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.set_paused(false);
    }
}

/// Where `pattern` ends in `hay`, if it is there. The first byte is looked for with
/// `contains` (memchr), so scanning a flood for a prompt stays cheap.
fn find(hay: &[u8], pattern: &[u8]) -> Option<usize> {
    if !hay.contains(&pattern[0]) {
        return None;
    }
    hay.windows(pattern.len())
        .position(|w| w == pattern)
        .map(|at| at + pattern.len())
}

/// The thread that reads the master: it stops while `paused`, and with a `rate` it reads a
/// chunk of about a millisecond's worth, then waits that chunk's time before the next read.
struct Reader {
    master: File,
    paused: Arc<AtomicBool>,
    rate: Arc<AtomicU64>,
}

impl Reader {
    fn spawn(mut self) -> Receiver<Chunk> {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            // At a set rate: when the next read is due.
            let mut due = Instant::now();
            loop {
                while self.paused.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let rate = self.rate.load(Ordering::SeqCst);
                let want = match rate {
                    0 => buf.len(),
                    rate => chunk_at(rate).min(buf.len()),
                };
                let n = match self.master.read(&mut buf[..want]) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // EIO: every slave is closed.
                    Err(_) => return,
                };
                let chunk = Chunk {
                    at: Instant::now(),
                    bytes: buf[..n].to_vec(),
                };
                if tx.send(chunk).is_err() {
                    return;
                }
                if rate > 0 {
                    let now = Instant::now();
                    due = due.max(now.checked_sub(DRAW_SLACK).unwrap_or(now))
                        + Duration::from_secs_f64(n as f64 / rate as f64);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
            }
        });
        rx
    }
}

/// What a terminal drawing `rate` bytes a second reads at once: a `DRAW_PERIOD`'s worth.
fn chunk_at(rate: u64) -> usize {
    ((rate as f64 * DRAW_PERIOD.as_secs_f64()) as usize).max(1)
}

/// Every process whose session is `sid`.
fn session_members(sid: i32) -> Vec<i32> {
    crate::proc::pids()
        .into_iter()
        .filter(|pid| crate::proc::stat_field(*pid, 6) == Some(sid as u64))
        .collect()
}
