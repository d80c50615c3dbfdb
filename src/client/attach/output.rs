//! Session output on its way to the terminal, and the window that paces it.
//!
//! Written without ever blocking the attach loop: what a terminal takes at once is written
//! through a non-blocking file description of our own, and a backlog by a writer thread, so
//! the loop keeps pinging and reading keys while the terminal is slow (or stopped).
//!
//! Paced by what the terminal consumes. Every byte between the program and the terminal
//! delays a Ctrl-C: the runtime's buffer, both sockets, this queue. The runtime counts them
//! all against a window from the client's `shown` reports (protocol 2). The window is the
//! terminal's drain rate times the link's round trip plus [`TARGET`], measured here:
//!
//! - the **rate**, while the terminal is the bottleneck (bytes wait for the writer), over
//!   samples of at least [`SAMPLE`]; a terminal that has not made us wait for [`FAST_FOR`]
//!   is not the bottleneck, and gets the largest window;
//! - the **round trip**, the least ping-to-pong time of the connection.
//!
//! So the terminal never runs dry while the link refills it (throughput as before), and
//! after a Ctrl-C the prompt waits behind about `TARGET` of output plus the round trip.
//! The design space, and why this point: BENCHMARKS.md (issue 14, step 5).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

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
    /// Bytes handed to the writer thread and not yet written, each with the stream offset
    /// just past it when numbered (a redraw and our own notes are not).
    queue: VecDeque<(Bytes, Option<u64>)>,
    queued_bytes: usize,
    /// The stream offset the terminal has taken up to, and the last one reported.
    shown: u64,
    reported: Option<u64>,
    pace: Pace,
    /// The last byte written was a newline: a note can take the cursor's line.
    line_start: bool,
}

enum Sink {
    /// A terminal. While it takes everything at once (a keystroke's echo), written here
    /// through our own non-blocking description: one `write`, no thread. Once it is full, a
    /// thread of ours writes the backlog with plain blocking writes (one `write` a frame, as
    /// before there was pacing; polling a full terminal for room costs a wake-up and a small
    /// write for every few hundred bytes it draws) and says how far it got.
    Terminal {
        file: File,
        to_writer: std::sync::mpsc::Sender<Bytes>,
        written: mpsc::UnboundedReceiver<io::Result<usize>>,
    },
    /// A pipe or a file: plain blocking writes to stdout, as fast as it takes them.
    Blocking,
}

impl Output {
    pub(super) fn new() -> Output {
        let sink = match super::tty::reopen(io::stdout(), true) {
            Some(file) => {
                let (to_writer, from_loop) = std::sync::mpsc::channel();
                let (report, written) = mpsc::unbounded_channel();
                std::thread::spawn(move || write_behind(from_loop, report));
                Sink::Terminal {
                    file,
                    to_writer,
                    written,
                }
            }
            None => Sink::Blocking,
        };
        Output {
            sink,
            queue: VecDeque::new(),
            queued_bytes: 0,
            shown: 0,
            reported: None,
            pace: Pace::default(),
            line_start: true,
        }
    }

    /// A new connection whose numbered stream starts at `offset`; `reports` when its runtime
    /// takes `shown` (protocol 2).
    pub(super) fn connected(&mut self, offset: u64, reports: bool) {
        self.reported = reports.then_some(offset);
        self.shown = self.shown.max(offset);
        self.pace.rtt = None;
    }

    /// Writes what the terminal takes now and hands the rest to the writer. `end`: the stream
    /// offset just past these bytes, when they are numbered.
    pub(super) fn write(&mut self, mut bytes: Bytes, end: Option<u64>) -> io::Result<()> {
        if let Some(&last) = bytes.last() {
            self.line_start = last == b'\n';
        }
        let file = match &self.sink {
            Sink::Blocking => {
                let mut out = io::stdout().lock();
                out.write_all(&bytes)?;
                out.flush()?;
                self.took(end);
                return Ok(());
            }
            Sink::Terminal { file, .. } => file,
        };
        // Behind a backlog: in order, after it.
        if self.waiting() {
            return self.hand(bytes, end);
        }
        while !bytes.is_empty() {
            match (&*file).write(&bytes) {
                Ok(n) => {
                    let _ = bytes.split_to(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.took(end.map(|end| end - bytes.len() as u64));
        match bytes.is_empty() {
            true => Ok(()),
            false => self.hand(bytes, end),
        }
    }

    /// One of catty's own lines, in order with the session's output, on a line of its own:
    /// below what the session left on the cursor's line (a prompt), if anything.
    pub(super) fn note(&mut self, message: &str) -> io::Result<()> {
        match self.sink {
            Sink::Blocking => {
                super::tty::note(message);
                Ok(())
            }
            Sink::Terminal { .. } => {
                let lead = match self.line_start {
                    true => "\r\x1b[K",
                    false => "\r\n",
                };
                let line = format!("{lead}{}\r\n", message.replace('\n', "\r\n"));
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

    /// Waits until the writer has written another piece. Cancel-safe.
    pub(super) async fn written(&mut self) -> io::Result<()> {
        let Sink::Terminal { written, .. } = &mut self.sink else {
            return std::future::pending().await;
        };
        let n = match written.recv().await {
            Some(n) => n?,
            None => return Err(io::ErrorKind::BrokenPipe.into()),
        };
        let now = Instant::now();
        let (bytes, end) = self
            .queue
            .pop_front()
            .expect("the writer wrote what it was given");
        debug_assert_eq!(bytes.len(), n);
        self.queued_bytes -= n;
        self.took(end);
        self.pace.drained(n, now);
        if self.queue.is_empty() {
            self.pace.caught_up();
        }
        Ok(())
    }

    /// Waits until everything handed to the writer is written.
    pub(super) async fn flush(&mut self) -> io::Result<()> {
        while self.waiting() {
            self.written().await?;
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

    /// Gives bytes the terminal could not take now to the writer.
    fn hand(&mut self, bytes: Bytes, end: Option<u64>) -> io::Result<()> {
        let Sink::Terminal { to_writer, .. } = &self.sink else {
            unreachable!("only a terminal has a writer");
        };
        if self.queue.is_empty() {
            self.pace.wait(Instant::now());
        }
        to_writer
            .send(bytes.clone())
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        self.queued_bytes += bytes.len();
        self.queue.push_back((bytes, end));
        Ok(())
    }

    fn took(&mut self, end: Option<u64>) {
        if let Some(end) = end {
            self.shown = self.shown.max(end);
        }
    }
}

/// The writer thread: blocking writes to stdout, each piece reported once written. It may
/// sit in a `write` forever (a stopped terminal); the process exits without waiting for it.
fn write_behind(
    pieces: std::sync::mpsc::Receiver<Bytes>,
    written: mpsc::UnboundedSender<io::Result<usize>>,
) {
    let mut out = io::stdout();
    while let Ok(bytes) = pieces.recv() {
        let done = out.write_all(&bytes).and_then(|()| out.flush());
        if written.send(done.map(|()| bytes.len())).is_err() {
            return;
        }
    }
}

/// The terminal's drain rate and the link's round trip, and the window they make.
#[derive(Default)]
struct Pace {
    /// Bytes a second the terminal took while it made us wait (smoothed).
    rate: Option<f64>,
    rtt: Option<Duration>,
    /// Since when bytes have been waiting (counted up to), if they are.
    since: Option<Instant>,
    /// What the terminal took, and the time bytes waited, since the last sample: over short
    /// waits too, which a fast terminal's are.
    taken: usize,
    busy: Duration,
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
        self.waited = Some(now);
        self.taken += n;
        self.busy += now.duration_since(since);
        self.since = Some(now);
        if self.busy >= SAMPLE {
            self.sample(self.taken as f64 / self.busy.as_secs_f64());
            self.taken = 0;
            self.busy = Duration::ZERO;
        }
    }

    /// Nothing waits any more.
    fn caught_up(&mut self) {
        self.since = None;
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
        pace.caught_up();
        let mut fast = Pace::default();
        fast.drained(1 << 20, start);
        assert_eq!(fast.rate, None);
    }

    #[test]
    fn short_waits_add_up_to_a_sample() {
        let start = Instant::now();
        let mut pace = Pace::default();
        // Ten waits of 1 ms, 30 KB each, with idle time between them: 30 MB/s, not less.
        for i in 0..10 {
            let at = start + Duration::from_millis(5 * i);
            pace.wait(at);
            pace.drained(30_000, at + Duration::from_millis(1));
            pace.caught_up();
        }
        let rate = pace.rate.unwrap();
        assert!((rate - 30e6).abs() < 1.0, "{rate}");
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
            line_start: true,
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
