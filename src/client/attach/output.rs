//! Session output on its way to the terminal, and the window that paces it.
//!
//! Written without ever blocking the attach loop: on a terminal through a non-blocking file
//! description of our own, so the loop keeps pinging and reading keys while the terminal is
//! slow (or stopped), and what the terminal cannot take yet waits here.
//!
//! Paced by what the terminal consumes. Every byte between the program and the terminal
//! delays a Ctrl-C: the runtime's buffer, both sockets, this queue. The runtime counts them
//! all against a window from the client's `shown` reports (protocol 2). The window is the
//! terminal's drain rate times the link's round trip plus [`TARGET`], measured here:
//!
//! - the **rate**, while the terminal is the bottleneck (bytes wait here), over samples of at
//!   least [`SAMPLE`]; a terminal that has not made us wait for [`FAST_FOR`] is not the
//!   bottleneck, and gets the largest window;
//! - the **round trip**, the least ping-to-pong time of the connection.
//!
//! So the terminal never runs dry while the link refills it (throughput as before), and
//! after a Ctrl-C the prompt waits behind about `TARGET` of output plus the round trip.
//! The design space, and why this point: BENCHMARKS.md (issue 14, step 5).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::protocol::{ClientMsg, FLOW_WINDOW_BYTES, FLOW_WINDOW_MIN_BYTES};

/// How long the terminal may take to draw what is in flight, beyond the round trip.
const TARGET: Duration = Duration::from_millis(20);
/// The shortest stretch of waiting that counts as a rate sample.
const SAMPLE: Duration = Duration::from_millis(10);
/// A terminal that made us wait in this long gets the largest window again.
const FAST_FOR: Duration = Duration::from_secs(1);
/// Bytes this queue holds before the attach loop stops taking frames: only reached with a
/// runtime that does not honour `shown` (protocol 1), whose window counts sent bytes.
const QUEUE_MAX_BYTES: usize = 2 * FLOW_WINDOW_BYTES as usize;

pub(super) struct Output {
    sink: Sink,
    /// Bytes for the terminal, each with the stream offset just past it when numbered (a
    /// redraw and our own notes are not).
    queue: VecDeque<(Bytes, Option<u64>)>,
    queued_bytes: usize,
    /// The stream offset the terminal has taken up to, and the last one reported.
    shown: u64,
    reported: Option<u64>,
    pace: Pace,
}

enum Sink {
    /// A terminal, through our own non-blocking description; registered with the runtime
    /// only while bytes wait (a registered terminal would wake the runtime on every drain).
    Terminal {
        file: Option<File>,
        waiting: Option<AsyncFd<File>>,
    },
    /// A pipe or a file: plain blocking writes to stdout, as fast as it takes them.
    Blocking,
}

impl Output {
    pub(super) fn new() -> Output {
        let sink = match own_terminal() {
            Some(file) => Sink::Terminal {
                file: Some(file),
                waiting: None,
            },
            None => Sink::Blocking,
        };
        Output {
            sink,
            queue: VecDeque::new(),
            queued_bytes: 0,
            shown: 0,
            reported: None,
            pace: Pace::default(),
        }
    }

    /// A new connection whose numbered stream starts at `offset`; `reports` when its runtime
    /// takes `shown` (protocol 2).
    pub(super) fn connected(&mut self, offset: u64, reports: bool) {
        self.reported = reports.then_some(offset);
        self.shown = self.shown.max(offset);
        self.pace.rtt = None;
    }

    /// Writes what the terminal takes now and queues the rest. `end`: the stream offset just
    /// past these bytes, when they are numbered.
    pub(super) fn write(&mut self, bytes: Bytes, end: Option<u64>) -> io::Result<()> {
        if let Sink::Blocking = self.sink {
            let mut out = io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
            self.took(end);
            return Ok(());
        }
        self.queued_bytes += bytes.len();
        self.queue.push_back((bytes, end));
        self.drain()
    }

    /// One of catty's own lines, in order with the session's output.
    pub(super) fn note(&mut self, message: &str) -> io::Result<()> {
        match self.sink {
            Sink::Blocking => {
                super::tty::note(message);
                Ok(())
            }
            Sink::Terminal { .. } => {
                let line = format!("\r\x1b[K{}\r\n", message.replace('\n', "\r\n"));
                self.write(Bytes::from(line), None)
            }
        }
    }

    /// Bytes are waiting for the terminal.
    pub(super) fn waiting(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Room for another frame: false only past [`QUEUE_MAX_BYTES`] (see there).
    pub(super) fn has_room(&self) -> bool {
        self.queued_bytes < QUEUE_MAX_BYTES
    }

    /// Waits until the terminal may take more, then gives it what it takes. Cancel-safe.
    pub(super) async fn writable(&mut self) -> io::Result<()> {
        if let Sink::Terminal {
            waiting: Some(fd), ..
        } = &mut self.sink
        {
            let mut ready = fd.writable().await?;
            ready.clear_ready();
        }
        self.drain()
    }

    /// Writes everything queued, waiting for the terminal as long as it takes.
    pub(super) async fn flush(&mut self) -> io::Result<()> {
        while self.waiting() {
            self.writable().await?;
        }
        Ok(())
    }

    /// A ping's round trip on this connection.
    pub(super) fn round_trip(&mut self, rtt: Duration) {
        self.pace.rtt = Some(self.pace.rtt.map_or(rtt, |old| old.min(rtt)));
    }

    /// The `shown` report due now, if any: once a quarter of the window was shown since the
    /// last one, or with a ping (`due`) when anything was.
    pub(super) fn report(&mut self, due: bool) -> Option<ClientMsg> {
        let reported = self.reported?;
        let window = self.pace.window(Instant::now());
        let news = self.shown.saturating_sub(reported);
        if news == 0 || (!due && news < window / 4) {
            return None;
        }
        self.reported = Some(self.shown);
        Some(ClientMsg::Shown {
            offset: self.shown,
            window,
        })
    }

    /// Once the terminal has kept up for a while, stops listening for its drains.
    pub(super) fn idle(&mut self) {
        if let Sink::Terminal { file, waiting } = &mut self.sink
            && self.queue.is_empty()
            && self.pace.waited.is_none_or(|at| at.elapsed() > FAST_FOR)
            && let Some(fd) = waiting.take()
        {
            *file = Some(fd.into_inner());
        }
    }

    /// Writes from the queue until it is empty or the terminal is full.
    fn drain(&mut self) -> io::Result<()> {
        let now = Instant::now();
        while let Some((bytes, end)) = self.queue.front_mut() {
            let result = match &self.sink {
                Sink::Terminal {
                    waiting: Some(fd), ..
                } => fd.get_ref().write(bytes),
                Sink::Terminal { file: Some(f), .. } => (&*f).write(bytes),
                _ => unreachable!("only a terminal queues"),
            };
            match result {
                Ok(n) => {
                    self.queued_bytes -= n;
                    self.pace.drained(n, now);
                    if n < bytes.len() {
                        let _ = bytes.split_to(n);
                        let took = end.map(|end| end - bytes.len() as u64);
                        self.took(took);
                    } else {
                        let end = *end;
                        self.queue.pop_front();
                        self.took(end);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.pace.wait(now);
                    return self.register();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pace.caught_up(now);
        Ok(())
    }

    fn took(&mut self, end: Option<u64>) {
        if let Some(end) = end {
            self.shown = self.shown.max(end);
        }
    }

    /// Listens for the terminal's drains (from the first time it was full, until idle).
    fn register(&mut self) -> io::Result<()> {
        if let Sink::Terminal { file, waiting } = &mut self.sink
            && let Some(f) = file.take()
        {
            // SAFETY: the AsyncFd owns the file, so the fd stays open while it is registered.
            #[allow(unsafe_code)]
            let fd = unsafe { AsyncFd::register_with_interest(f, Interest::WRITABLE) }?;
            *waiting = Some(fd);
        }
        Ok(())
    }
}

/// The terminal's drain rate and the link's round trip, and the window they make.
#[derive(Default)]
struct Pace {
    /// Bytes a second the terminal took while it made us wait (smoothed).
    rate: Option<f64>,
    rtt: Option<Duration>,
    /// Since when bytes have been waiting, and how many it took since then.
    since: Option<Instant>,
    taken: usize,
    /// When the terminal last made us wait.
    waited: Option<Instant>,
}

impl Pace {
    fn wait(&mut self, now: Instant) {
        self.since.get_or_insert(now);
        self.waited = Some(now);
    }

    fn drained(&mut self, n: usize, now: Instant) {
        let Some(since) = self.since else { return };
        self.taken += n;
        let spent = now.duration_since(since);
        if spent >= SAMPLE {
            self.sample(self.taken as f64 / spent.as_secs_f64());
            self.since = Some(now);
            self.taken = 0;
        }
    }

    /// The queue is empty: a wait that ends here is a sample if it was long enough.
    fn caught_up(&mut self, now: Instant) {
        if let Some(since) = self.since.take() {
            let spent = now.duration_since(since);
            if spent >= SAMPLE {
                self.sample(self.taken as f64 / spent.as_secs_f64());
            }
            self.taken = 0;
        }
    }

    fn sample(&mut self, rate: f64) {
        self.rate = Some(self.rate.map_or(rate, |old| 0.75 * old + 0.25 * rate));
    }

    /// The window: what the terminal drains in a round trip plus [`TARGET`].
    fn window(&self, now: Instant) -> u64 {
        let slow = self
            .waited
            .is_some_and(|at| now.duration_since(at) < FAST_FOR);
        match (slow, self.rate) {
            (true, Some(rate)) => {
                let span = self.rtt.unwrap_or_default() + TARGET;
                let bytes = rate * span.as_secs_f64();
                (bytes as u64).clamp(FLOW_WINDOW_MIN_BYTES, FLOW_WINDOW_BYTES)
            }
            _ => FLOW_WINDOW_BYTES,
        }
    }
}

/// The terminal on stdout opened afresh by its name, non-blocking and write-only. A fresh
/// open is its own file description, so `O_NONBLOCK` stays ours: set on stdout it would be
/// the shell's too. `None` when stdout is not a terminal.
fn own_terminal() -> Option<File> {
    let stdout = io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    let name = rustix::termios::ttyname(&stdout, Vec::new()).ok()?;
    let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY;
    let tty = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(flags.bits() as i32)
        .open(std::ffi::OsStr::from_bytes(name.as_bytes()))
        .ok()?;
    let device = |fd: std::os::fd::BorrowedFd| rustix::fs::fstat(fd).ok().map(|s| s.st_rdev);
    (device(stdout.as_fd())? == device(tty.as_fd())?).then_some(tty)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    #[test]
    fn a_terminal_that_keeps_up_gets_the_largest_window() {
        let now = Instant::now();
        let mut pace = Pace::default();
        assert_eq!(pace.window(now), FLOW_WINDOW_BYTES);
        pace.sample(2.0 * MIB);
        // Measured slow once, but not in the last second.
        pace.waited = Some(now - FAST_FOR - Duration::from_millis(1));
        assert_eq!(pace.window(now), FLOW_WINDOW_BYTES);
    }

    #[test]
    fn a_slow_terminal_gets_what_it_drains_in_a_round_trip_and_the_target() {
        let now = Instant::now();
        let mut pace = Pace {
            rtt: Some(Duration::from_millis(30)),
            ..Pace::default()
        };
        pace.wait(now);
        pace.sample(4.0 * MIB);
        // 4 MiB/s for 30 + 20 ms.
        assert_eq!(pace.window(now), (4.0 * MIB * 0.050) as u64);
        // Within the bounds, whatever the rate.
        pace.rate = Some(1000.0);
        assert_eq!(pace.window(now), FLOW_WINDOW_MIN_BYTES);
        pace.rate = Some(1000.0 * MIB);
        assert_eq!(pace.window(now), FLOW_WINDOW_BYTES);
    }

    #[test]
    fn the_rate_counts_what_the_terminal_took_while_we_waited() {
        let start = Instant::now();
        let mut pace = Pace::default();
        pace.wait(start);
        // 40 KiB over 20 ms: 2 MB/s, in two samples (each past SAMPLE).
        pace.drained(20 * 1024, start + Duration::from_millis(10));
        pace.drained(20 * 1024, start + Duration::from_millis(20));
        let rate = pace.rate.unwrap();
        assert!((rate - 2.048e6).abs() < 1.0, "{rate}");
        // Taken without waiting: no sample.
        pace.caught_up(start + Duration::from_millis(21));
        let mut fast = Pace::default();
        fast.drained(1 << 20, start);
        fast.caught_up(start);
        assert_eq!(fast.rate, None);
    }

    #[test]
    fn reports_come_each_quarter_window_and_with_pings() {
        let mut out = Output {
            sink: Sink::Blocking,
            queue: VecDeque::new(),
            queued_bytes: 0,
            shown: 0,
            reported: None,
            pace: Pace::default(),
        };
        out.connected(1000, true);
        out.took(Some(1000 + FLOW_WINDOW_BYTES / 4 - 1));
        assert_eq!(out.report(false), None);
        out.took(Some(1000 + FLOW_WINDOW_BYTES / 4));
        let expected = ClientMsg::Shown {
            offset: 1000 + FLOW_WINDOW_BYTES / 4,
            window: FLOW_WINDOW_BYTES,
        };
        assert_eq!(out.report(false), Some(expected));
        assert_eq!(out.report(true), None, "nothing new");
        out.took(Some(1000 + FLOW_WINDOW_BYTES / 4 + 1));
        assert!(out.report(true).is_some());
        // A runtime without `shown` gets none.
        out.connected(5000, false);
        out.took(Some(9_000_000));
        assert_eq!(out.report(true), None);
    }
}
