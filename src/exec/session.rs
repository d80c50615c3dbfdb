//! The one session a runtime hosts: the output buffer and its offsets, the attached
//! connections and their cursors, input accounting per client id, the terminal size and flow
//! control; the program's phase is in `phase.rs`, the upload slot in `upload_slot.rs`. Private
//! state under one short-held lock (never across an await), changed only by `Session`'s
//! methods, which notify waiters themselves; the I/O tasks are `process.rs` and `stream.rs`.

mod history;
mod phase;
#[cfg(test)]
mod tests;
mod upload_slot;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;

use super::buffer::{OutputBuffer, Position};
use super::screen::Screen;
use super::transcript::Transcript;
use crate::locks;
use crate::protocol::{
    ConnectParams, ExitStatus, FLOW_WINDOW_BYTES, FLOW_WINDOW_MIN_BYTES, FRAME_MAX_BYTES, HOLD,
    INPUT_ACK_BYTES, INPUT_QUEUE_BYTES, PING_INTERVAL, PROTOCOL_VERSION, STUCK_READER, ServerMsg,
};
pub(super) use history::{Found, Span};
use phase::Phase;
use upload_slot::Upload;

/// Size used until an interactive client tells us its own.
pub(super) const DEFAULT_SIZE: (u16, u16) = (80, 24);

/// Input frames queued for the PTY before a client's reads are back-pressured (and at most
/// [`INPUT_QUEUE_BYTES`] in them).
const INPUT_QUEUE_FRAMES: usize = 64;

/// Input on its way to the PTY, with its share of [`INPUT_QUEUE_BYTES`], given back once
/// written.
pub(super) type Input = (Bytes, OwnedSemaphorePermit);

pub(super) type ConnId = u64;

pub(super) struct Session {
    state: Mutex<State>,
    /// Bumped on every change a connection or the process task may wait for.
    changed: watch::Sender<()>,
    /// A client moved its cursor: the output pump may be allowed to read again.
    progress: Notify,
    input_tx: mpsc::Sender<Input>,
    input_rx: Mutex<Option<mpsc::Receiver<Input>>>,
    /// Bytes of input that may still be queued ([`INPUT_QUEUE_BYTES`] in all).
    input_room: Arc<Semaphore>,
    /// Every output byte on disk, for offsets the ring no longer holds (`session/history.rs`).
    transcript: Arc<Transcript>,
}

struct State {
    buffer: OutputBuffer,
    screen: Screen,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    /// Input applied per client id, and which connection currently speaks for that id.
    inputs: HashMap<String, InputCount>,
    size: (u16, u16),
    size_owner: Option<ConnId>,
    phase: Phase,
    upload: Upload,
    /// Set when the session is being ended from outside (TTL, shutdown): the message every
    /// connection receives before it is closed.
    ended: Option<String>,
    /// Places kept by interactive clients that vanished without `detach` (by the connection
    /// they had): flow control counts them like attached cursors until [`HOLD`] runs out or
    /// the same client id attaches again.
    holds: HashMap<ConnId, Hold>,
}

struct Conn {
    /// The next byte to send.
    cursor: u64,
    /// Flow control's place for this client (interactive only): what its terminal has taken,
    /// as it reported with `shown`, or the cursor until it reports.
    place: u64,
    reports: bool,
    /// Where its stream started: the least its first report may say.
    start: u64,
    /// Its window: what it asked for, or [`FLOW_WINDOW_BYTES`].
    window: u64,
    /// When `place` last moved, and when the client was last heard from (input or a ping):
    /// a place that stands still while the client pings is a stuck reader.
    moved: Instant,
    heard: Instant,
    /// Found stuck: flow control ignores it until it is within its window again.
    stuck: bool,
    watch: bool,
    size: Option<(u16, u16)>,
    client: Option<String>,
    /// The client said `detach`: when this connection ends it holds nothing.
    leaving: bool,
}

/// Where a vanished interactive client stood, and until when it holds the program there.
struct Hold {
    place: u64,
    window: u64,
    client: Option<String>,
    until: Instant,
}

struct InputCount {
    applied: u64,
    acked: u64,
    conn: ConnId,
}

/// What a new connection sends first.
pub(super) struct Attached {
    pub conn: ConnId,
    pub ready: ServerMsg,
    pub redraw: Option<Vec<u8>>,
}

/// What a connection should send next.
pub(super) enum Next {
    /// Bytes were appended to the caller's buffer, starting at its cursor.
    Output,
    /// The cursor is older than the ring but on disk: read it with `read_transcript`.
    Transcript(u64),
    Exit(ExitStatus),
    /// The connection must end, with this message as an `error`.
    Close(String),
    Idle,
}

impl Session {
    pub(super) fn new(buffer_bytes: usize, transcript: Transcript) -> Arc<Self> {
        let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE_FRAMES);
        Arc::new(Session {
            state: Mutex::new(State {
                buffer: OutputBuffer::new(buffer_bytes),
                screen: Screen::new(DEFAULT_SIZE),
                conns: HashMap::new(),
                next_conn: 0,
                inputs: HashMap::new(),
                size: DEFAULT_SIZE,
                size_owner: None,
                phase: Phase::NotStarted(None),
                upload: Upload::Open,
                ended: None,
                holds: HashMap::new(),
            }),
            changed: watch::Sender::new(()),
            progress: Notify::new(),
            input_tx,
            input_rx: Mutex::new(Some(input_rx)),
            input_room: Arc::new(Semaphore::new(INPUT_QUEUE_BYTES)),
            transcript: Arc::new(transcript),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        locks::lock(&self.state)
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }

    fn notify_changed(&self) {
        self.changed.send_replace(());
    }

    pub(super) fn take_input(&self) -> Option<mpsc::Receiver<Input>> {
        locks::lock(&self.input_rx).take()
    }

    /// Appends the program's output and wakes the writers: one lock, one notify per read.
    pub(super) fn push_output(&self, data: &[u8]) {
        let mut st = self.lock();
        // Under the lock, so the transcript gets the bytes in the ring's order.
        self.transcript.push(st.buffer.end(), data);
        st.buffer.push(data);
        drop(st);
        self.notify_changed();
    }

    /// Shows a line of catty's own in the terminal output, before the program's.
    pub(super) fn say(&self, line: &str) {
        self.push_output(format!("{line}\r\n").as_bytes());
    }

    /// Flow control: waits while an interactive client (attached, or held for one that
    /// vanished) is its window or more behind, then says how many bytes may be read. A timer
    /// is set only while a hold or a client that may be stuck blocks.
    pub(super) async fn wait_for_window(&self) -> u64 {
        loop {
            let progress = self.progress.notified();
            let wake = match self.lock().flow(Instant::now()) {
                Flow::Read(room) => return room,
                Flow::Wait(wake) => wake,
            };
            match wake {
                Some(at) => tokio::select! {
                    () = progress => {}
                    () = tokio::time::sleep_until(at) => {}
                },
                None => progress.await,
            }
        }
    }

    /// Registers a connection and says where its stream starts.
    pub(super) fn attach(&self, params: &ConnectParams) -> Attached {
        let mut st = self.lock();
        let conn = st.next_conn;
        st.next_conn += 1;
        let (start, truncated, redraw) = match params.since {
            Some(since) => match st.buffer.position(since) {
                Position::Evicted { start } => match self.oldest_kept(start) {
                    oldest if since >= oldest => (since, false, None),
                    oldest => (oldest, true, None),
                },
                Position::Kept => (since, false, None),
                Position::End => (st.buffer.end(), false, None),
            },
            None if st.buffer.end() == 0 => (0, false, None),
            None => {
                let end = st.buffer.end();
                let State { screen, buffer, .. } = &mut *st;
                (end, false, Some(screen.render(buffer)))
            }
        };
        let input = params.client.as_ref().filter(|_| !params.watch).map(|id| {
            let count = st.inputs.entry(id.clone()).or_insert(InputCount {
                applied: 0,
                acked: 0,
                conn,
            });
            // An older connection of this client is cut; its late input will be ignored.
            let old = std::mem::replace(&mut count.conn, conn);
            count.acked = count.applied;
            let applied = count.applied;
            st.conns.remove(&old);
            applied
        });
        // The client is back: its new cursor replaces the place held for it.
        if let Some(id) = params.client.as_ref().filter(|_| !params.watch) {
            st.holds.retain(|_, h| h.client.as_ref() != Some(id));
        }
        let now = Instant::now();
        st.conns.insert(
            conn,
            Conn {
                cursor: start,
                place: start,
                reports: false,
                start,
                window: FLOW_WINDOW_BYTES,
                moved: now,
                heard: now,
                stuck: false,
                watch: params.watch,
                size: params.size,
                client: params.client.clone(),
                leaving: false,
            },
        );
        if !params.watch {
            let size = params.size.unwrap_or(st.size);
            if let Phase::NotStarted(request @ None) = &mut st.phase {
                *request = Some(size);
            }
            st.claim_size(conn, self);
        }
        let end = st.buffer.end();
        drop(st);
        self.notify_changed();
        Attached {
            conn,
            ready: ServerMsg::Ready {
                offset: start,
                protocol: PROTOCOL_VERSION,
                truncated,
                redraw: redraw.is_some(),
                input,
                end: Some(end),
            },
            redraw,
        }
    }

    /// Ends the session from outside: every connection gets `message` and is closed, and
    /// flow control stops holding the program back.
    pub(super) fn end(&self, message: String) {
        self.lock().ended = Some(message);
        self.notify_changed();
        self.progress.notify_one();
    }

    /// The client of `conn` detaches on purpose: its end will hold nothing.
    pub(super) fn leaving(&self, conn: ConnId) {
        if let Some(c) = self.lock().conns.get_mut(&conn) {
            c.leaving = true;
        }
    }

    /// A connection ended. An interactive one that did not say `detach` (and was not a stuck
    /// reader) keeps its place for [`HOLD`]; expired holds are forgotten here too.
    pub(super) fn detach(&self, conn: ConnId) {
        let mut st = self.lock();
        let now = Instant::now();
        st.holds.retain(|_, h| h.until > now);
        let held = st.conns.remove(&conn);
        if let Some(c) = held.filter(|c| !c.watch && !c.leaving && !c.stuck) {
            let hold = Hold {
                place: c.place,
                window: c.window,
                client: c.client,
                until: now + HOLD,
            };
            st.holds.insert(conn, hold);
        }
        if st.size_owner == Some(conn) {
            st.size_owner = None;
        }
        drop(st);
        self.progress.notify_one();
    }

    /// Copies the connection's next output into `out`, or says what else to do.
    pub(super) fn next_output(&self, conn: ConnId, out: &mut Vec<u8>) -> Next {
        let st = self.lock();
        if let Some(message) = &st.ended {
            return Next::Close(message.clone());
        }
        let Some(c) = st.conns.get(&conn) else {
            return Next::Close("replaced by a newer connection of the same client".into());
        };
        match st.buffer.position(c.cursor) {
            Position::Kept => {
                st.buffer.copy_from(c.cursor, FRAME_MAX_BYTES, out);
                Next::Output
            }
            Position::Evicted { start } if self.oldest_kept(start) <= c.cursor => {
                Next::Transcript(c.cursor)
            }
            Position::Evicted { .. } => {
                Next::Close("fell behind the output buffer; reconnect with since".into())
            }
            Position::End => match &st.phase {
                Phase::Exited(status) => Next::Exit(status.clone()),
                _ => Next::Idle,
            },
        }
    }

    /// Records that `n` bytes were sent to the connection.
    pub(super) fn advance(&self, conn: ConnId, n: usize) {
        let mut st = self.lock();
        let end = st.buffer.end();
        if let Some(c) = st.conns.get_mut(&conn) {
            c.cursor += n as u64;
            if !c.watch && !c.reports {
                c.move_place(c.cursor, end);
                self.progress.notify_one();
            }
        }
    }

    /// The client's terminal has taken the output up to `offset`, and it asks for `window`:
    /// both within bounds (a place only moves forward, and never past what was sent).
    pub(super) fn shown(&self, conn: ConnId, offset: u64, window: u64) {
        let mut st = self.lock();
        let end = st.buffer.end();
        if let Some(c) = st.conns.get_mut(&conn).filter(|c| !c.watch) {
            let least = if c.reports { c.place } else { c.start };
            c.reports = true;
            c.window = window.clamp(FLOW_WINDOW_MIN_BYTES, FLOW_WINDOW_BYTES);
            c.heard = Instant::now();
            c.move_place(offset.clamp(least, c.cursor), end);
            self.progress.notify_one();
        }
    }

    /// Applies input from a connection exactly once. Returns an `ack` when one is due.
    pub(super) async fn input(&self, conn: ConnId, data: &[u8]) -> Option<ServerMsg> {
        if !self.lock().is_interactive(conn) {
            return None;
        }
        // Reserve queue space before counting, so that counting and queueing happen together
        // under the lock and a connection cut in between cannot apply bytes twice.
        let bytes = data.len().min(INPUT_QUEUE_BYTES) as u32;
        let room = self
            .input_room
            .clone()
            .acquire_many_owned(bytes)
            .await
            .ok()?;
        let permit = self.input_tx.reserve().await.ok()?;
        let mut st = self.lock();
        if !st.is_interactive(conn) || matches!(st.phase, Phase::Exited(_)) {
            return None;
        }
        permit.send((Bytes::copy_from_slice(data), room));
        st.heard(conn);
        if st.size_owner != Some(conn) {
            st.claim_size(conn, self);
        }
        let count = st.input_count(conn)?;
        count.applied += data.len() as u64;
        (count.applied - count.acked >= INPUT_ACK_BYTES).then(|| count.ack())
    }

    /// The client pinged. Returns the input acknowledgement for a connection that has a
    /// client id, when there is news since the last one (a ping a second would otherwise
    /// carry an ack a second).
    pub(super) fn pinged(&self, conn: ConnId) -> Option<ServerMsg> {
        let mut st = self.lock();
        st.heard(conn);
        let count = st.input_count(conn)?;
        (count.applied > count.acked).then(|| count.ack())
    }

    pub(super) fn resize(&self, conn: ConnId, size: (u16, u16)) {
        let mut st = self.lock();
        if let Some(c) = st.conns.get_mut(&conn).filter(|c| !c.watch) {
            c.size = Some(size);
            st.claim_size(conn, self);
        }
    }
}

impl State {
    fn is_interactive(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| !c.watch)
    }

    fn input_count(&mut self, conn: ConnId) -> Option<&mut InputCount> {
        let id = self.conns.get(&conn)?.client.as_ref()?;
        self.inputs.get_mut(id).filter(|count| count.conn == conn)
    }

    /// Makes `conn` the client whose size the terminal follows.
    fn claim_size(&mut self, conn: ConnId, session: &Session) {
        self.size_owner = Some(conn);
        if let Some(size) = self.conns.get(&conn).and_then(|c| c.size) {
            self.set_size(size, session);
        }
    }

    fn set_size(&mut self, size: (u16, u16), session: &Session) {
        if size == self.size {
            return;
        }
        self.size = size;
        match &mut self.phase {
            Phase::NotStarted(Some(request)) => *request = size,
            Phase::Running { master, .. } => {
                if let Err(e) = master.resize(size) {
                    tracing::warn!("resize failed: {e}");
                }
            }
            _ => {}
        }
        self.screen.resize(self.buffer.end(), size);
        session.notify_changed();
    }

    fn heard(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.heard = Instant::now();
        }
    }

    /// Flow control: how much the pump may read now (the least room in any window), or until
    /// when at most to wait (a hold running out, a client turning out to be stuck).
    fn flow(&mut self, now: Instant) -> Flow {
        if self.ended.is_some() {
            return Flow::Read(FLOW_WINDOW_BYTES);
        }
        let end = self.buffer.end();
        let mut room = FLOW_WINDOW_BYTES;
        let mut blocked = false;
        let mut wake: Option<Instant> = None;
        let mut wake_at = |at: Instant| wake = Some(wake.map_or(at, |w| w.min(at)));
        for (id, c) in self.conns.iter_mut().filter(|(_, c)| !c.watch) {
            let left = c.window.saturating_sub(end.saturating_sub(c.place));
            if left >= least_read(c.window) {
                c.stuck = false;
                room = room.min(left);
            } else if !c.stuck {
                let still = now.saturating_duration_since(c.moved);
                let pinging = now.saturating_duration_since(c.heard) < 2 * PING_INTERVAL;
                if still >= STUCK_READER && pinging {
                    tracing::info!(
                        conn = id,
                        "a client took nothing for {still:?}; not waiting for it"
                    );
                    c.stuck = true;
                } else {
                    blocked = true;
                    // Looked at again when it may be stuck, and while it is silent, each
                    // ping interval (its pings may resume; a dead link ends it anyway).
                    wake_at(match still < STUCK_READER {
                        true => c.moved + STUCK_READER,
                        false => now + PING_INTERVAL,
                    });
                }
            }
        }
        for h in self.holds.values().filter(|h| h.until > now) {
            let left = h.window.saturating_sub(end.saturating_sub(h.place));
            if left >= least_read(h.window) {
                room = room.min(left);
            } else {
                blocked = true;
                wake_at(h.until);
            }
        }
        match blocked {
            true => Flow::Wait(wake),
            false => Flow::Read(room),
        }
    }
}

/// The pump waits until a window has this much room: a quarter of it, at most a frame. Reads
/// of a few bytes whenever a client moves would cost a read, a lock and a wake-up each.
fn least_read(window: u64) -> u64 {
    (window / 4).min(FRAME_MAX_BYTES as u64)
}

/// What flow control allows the pump.
enum Flow {
    /// Read at most this many bytes.
    Read(u64),
    /// Wait for a client to move, or until this instant.
    Wait(Option<Instant>),
}

impl Conn {
    /// Moves the place; a stuck reader back within its window of `end` counts again.
    fn move_place(&mut self, place: u64, end: u64) {
        if place != self.place {
            self.place = place;
            self.moved = Instant::now();
        }
        if end - place < self.window {
            self.stuck = false;
        }
    }
}

impl InputCount {
    fn ack(&mut self) -> ServerMsg {
        self.acked = self.applied;
        ServerMsg::Ack {
            input: self.applied,
        }
    }
}
