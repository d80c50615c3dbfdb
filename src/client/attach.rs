//! The attach loop: the user's terminal joined to a session's stream, kept alive across link
//! failures by reconnecting with `since` (output) and resending unacknowledged input.

mod frames;
mod output;
mod reconnect;
mod status;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::task::AbortOnDrop;
use bytes::Bytes;
use fastwebsockets::{Frame, Payload};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

use self::frames::{Event, binary, control, read_frames, send};
use self::output::Output;
use self::status::Status;
use super::deadline;
use super::escape::{self, Action, Escapes};
use super::sync::Expiry;
use super::tty;
use super::unacked::Unacked;
use crate::net::{ClientSocket, RuntimeUrl};
use crate::protocol::{ClientMsg, DEAD_LINK, ExitStatus, PING_INTERVAL, ServerMsg};

/// How often the loop looks at the link: a ping when one is due, the status line, the
/// dead-link deadline. One timer for the whole connection, never one per frame.
const TICK: Duration = Duration::from_millis(250);
/// How long a detach waits for the runtime to confirm it by closing the connection.
const DETACH_WAIT: Duration = Duration::from_secs(2);
/// How long output still waiting for the terminal may hold up leaving, unless it exited.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// Where to attach.
pub(super) struct Target {
    pub label: String,
    /// The runtime's base URL (`http://host:port`, `https://…`).
    pub connect_url: String,
    pub token: String,
    pub headers: BTreeMap<String, String>,
}

/// How an attach ended.
pub(super) enum Outcome {
    Exited(ExitStatus),
    Detached,
    /// The session is over without an exit status for us (TTL, stopped, lost), and why.
    Gone(String),
    /// We got SIGTERM or SIGHUP.
    Terminated,
}

/// Asks whether the session can still be attached to; `Err` carries why not.
pub(super) trait Attachable {
    fn check(&self) -> impl Future<Output = Result<(), String>>;
}

/// Attaches until the session exits, the user detaches, or the session is gone.
/// `replay_max` is the largest gap replayed after an outage; a larger one is repainted.
/// `expiry` hears when the runtime says the session's deadline moved (live sync's last pull).
pub(super) async fn run(
    target: &Target,
    watch: bool,
    from_start: bool,
    replay_max: u64,
    live: &impl Attachable,
    expiry: Option<Expiry>,
) -> anyhow::Result<Outcome> {
    let runtime = RuntimeUrl::parse(&target.connect_url)?;
    let _raw = tty::RawGuard::enter()?;
    let mut attach = Attach::new(watch, from_start, replay_max)?;
    attach.label = target.label.clone();
    attach.expiry = expiry;
    let outcome = attach.run(&runtime, target, live).await;
    // Everything the session wrote reaches the terminal before it leaves raw mode; when the
    // session did not end, a terminal that takes nothing does not keep us.
    let flushing = attach.output.flush();
    match outcome {
        Outcome::Exited(_) => flushing.await?,
        _ => drop(tokio::time::timeout(FLUSH_WAIT, flushing).await),
    }
    attach.status.clear();
    Ok(outcome)
}

enum Ended {
    Done(Outcome),
    Lost(String),
    /// The gap since our offset is too large to replay: this many bytes are skipped.
    Repaint(u64),
}

/// What survives from one connection to the next.
struct Attach {
    watch: bool,
    client_id: String,
    /// Offset of the next output byte; `None` until the first `ready` of a fresh attach.
    next_offset: Option<u64>,
    unacked: Unacked,
    /// Output on its way to the terminal, and the window it asks of the runtime.
    output: Output,
    escapes: Escapes,
    stdin: tty::Stdin,
    stdin_open: bool,
    winch: Signal,
    term: Signal,
    hup: Signal,
    last_error: Option<String>,
    /// For `--watch`: the line saying how to leave, shown once the session's screen is.
    watch_hint: Option<String>,
    status: Status,
    /// When the runtime was last heard from, over all connections: what the status line shows.
    last_contact: Instant,
    replay_max: u64,
    /// The session's label, for the command a warning suggests.
    label: String,
    expiry: Option<Expiry>,
}

impl Attach {
    fn new(watch: bool, from_start: bool, replay_max: u64) -> std::io::Result<Attach> {
        Ok(Attach {
            watch,
            client_id: crate::random::hex(16),
            next_offset: from_start.then_some(0),
            unacked: Unacked::default(),
            output: Output::new(),
            escapes: Escapes::default(),
            stdin: tty::Stdin::new(),
            stdin_open: true,
            winch: signal(SignalKind::window_change())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            last_error: None,
            watch_hint: None,
            status: Status::default(),
            last_contact: Instant::now(),
            replay_max,
            label: String::new(),
            expiry: None,
        })
    }

    /// Serves one connection until it ends.
    async fn serve(&mut self, socket: ClientSocket) -> Ended {
        let (read, mut write) = socket.split(tokio::io::split);
        let (events_tx, mut events) = mpsc::channel(64);
        let reader = tokio::spawn(read_frames(read, events_tx));
        let _abort_reader = AbortOnDrop(reader);
        let mut conn = Connection {
            ready: false,
            redraw_next: false,
            last_frame: Instant::now(),
            last_ping: Instant::now(),
            ping_sent: None,
        };
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let step = tokio::select! {
                // Frames wait while the terminal is far behind (only with an older runtime).
                event = events.recv(), if self.output.has_room() => self.event(&mut conn, event),
                written = self.output.written(), if self.output.waiting() => match written {
                    Ok(()) => self.shown(false),
                    Err(_) => Step::Done(Outcome::Terminated),
                },
                input = self.stdin.recv(), if conn.ready && self.stdin_open => match self.typed(input) {
                    Typed::Detach(before) => {
                        // `detach` tells the runtime not to hold the program for us.
                        let mut frames: Vec<_> = before.map(binary).into_iter().collect();
                        frames.push(control(&ClientMsg::Detach));
                        Step::SendThenDetach(frames)
                    }
                    Typed::Send(bytes) => {
                        self.unacked.push(&bytes);
                        Step::Send(vec![binary(bytes)])
                    }
                    Typed::Nothing => Step::Continue,
                },
                _ = self.winch.recv(), if !self.watch => Step::Send(vec![control(&resize())]),
                _ = tick.tick() => self.tick(&mut conn, !events.is_empty()),
                _ = self.term.recv() => Step::Done(Outcome::Terminated),
                _ = self.hup.recv() => Step::Done(Outcome::Terminated),
            };
            match step {
                Step::Continue => {}
                Step::Send(frames) => {
                    for frame in frames {
                        if let Err(why) = send(&mut write, frame).await {
                            return Ended::Lost(why);
                        }
                    }
                }
                Step::SendThenDetach(frames) => {
                    for frame in frames {
                        let _ = send(&mut write, frame).await;
                    }
                    await_close(&mut events).await;
                    return Ended::Done(Outcome::Detached);
                }
                Step::Done(outcome) => return Ended::Done(outcome),
                Step::Lost(why) => return Ended::Lost(why),
                Step::Repaint(skipped) => return Ended::Repaint(skipped),
            }
        }
    }

    /// Keepalive: a ping each [`PING_INTERVAL`] (the runtime answers, so a healthy link is
    /// never silent for long), the status line once the runtime has been silent for a while
    /// (missing pongs, not missing output), and a dead link after [`DEAD_LINK`]. Frames
    /// waiting in `events` (we were slow, writing to the terminal) count as contact.
    fn tick(&mut self, conn: &mut Connection, pending: bool) -> Step {
        if pending {
            conn.last_frame = Instant::now();
            self.last_contact = conn.last_frame;
        }
        let silent = conn.last_frame.elapsed();
        if silent > DEAD_LINK {
            return Step::Lost(format!("no contact for {} s", silent.as_secs()));
        }
        // Not over output still on its way: the line would land inside it.
        if !self.output.waiting() {
            self.status.update(self.last_contact.elapsed(), false);
        }
        if conn.last_ping.elapsed() + TICK / 2 < PING_INTERVAL {
            return Step::Continue;
        }
        conn.last_ping = Instant::now();
        conn.ping_sent.get_or_insert(conn.last_ping);
        let mut frames = vec![control(&ClientMsg::Ping)];
        frames.extend(self.output.report(true).map(|msg| control(&msg)));
        Step::Send(frames)
    }

    /// Output reached the terminal: a `shown` report when one is due.
    fn shown(&mut self, due: bool) -> Step {
        match self.output.report(due) {
            Some(msg) => Step::Send(vec![control(&msg)]),
            None => Step::Continue,
        }
    }

    fn typed(&mut self, input: Option<Bytes>) -> Typed {
        let Some(bytes) = input else {
            // stdin closed (not a terminal): keep showing output.
            self.stdin_open = false;
            return Typed::Nothing;
        };
        let mut send = Vec::new();
        for action in self.escapes.feed(&bytes) {
            match action {
                Action::Detach => {
                    return Typed::Detach((!send.is_empty()).then(|| Bytes::from(send)));
                }
                Action::Help => drop(self.output.note(escape::HELP)),
                Action::Send(bytes) if !self.watch => send.extend_from_slice(&bytes),
                Action::Send(_) => {}
            }
        }
        if send.is_empty() {
            Typed::Nothing
        } else {
            Typed::Send(Bytes::from(send))
        }
    }

    fn event(&mut self, conn: &mut Connection, event: Option<Event>) -> Step {
        conn.last_frame = Instant::now();
        self.last_contact = conn.last_frame;
        // The link is back: the status line goes before anything of the session's is written.
        self.status.clear();
        match event {
            Some(Event::Output(bytes)) => {
                let mut end = None;
                if std::mem::take(&mut conn.redraw_next) {
                    // A picture of the screen, not part of the numbered stream.
                } else if let Some(offset) = &mut self.next_offset {
                    *offset += bytes.len() as u64;
                    end = Some(*offset);
                }
                let mut written = self.output.write(bytes, end);
                if let (Ok(()), Some(hint)) = (&written, self.watch_hint.take()) {
                    written = self.output.note(&hint);
                }
                match written {
                    Ok(()) => self.shown(false),
                    Err(_) => Step::Done(Outcome::Terminated),
                }
            }
            Some(Event::Message(msg)) => self.message(conn, msg),
            Some(Event::Obligated(frame)) => Step::Send(vec![frame]),
            Some(Event::Closed(why)) => Step::Lost(why),
            None => Step::Lost("the connection closed".into()),
        }
    }

    fn message(&mut self, conn: &mut Connection, msg: ServerMsg) -> Step {
        match msg {
            ServerMsg::Ready {
                offset,
                protocol,
                truncated,
                redraw,
                input,
                end,
            } => {
                if let Some(skipped) =
                    status::gap_to_skip(self.next_offset, end, truncated, self.replay_max)
                {
                    return Step::Repaint(skipped);
                }
                if truncated && let Some(expected) = self.next_offset {
                    let _ = self.output.note(&format!(
                        "catty: {} bytes of output were dropped while away",
                        offset - expected
                    ));
                }
                conn.ready = true;
                conn.redraw_next = redraw;
                self.next_offset = Some(offset);
                self.output.connected(offset, protocol >= 2);
                let resend = self.unacked.resend_from(input.unwrap_or(0));
                let mut frames = Vec::new();
                // In frames of the usual size: a message past MESSAGE_MAX_BYTES would be refused.
                for part in resend.chunks(crate::protocol::FRAME_MAX_BYTES) {
                    frames.push(Frame::binary(Payload::Owned(part.to_vec())));
                }
                Step::Send(frames)
            }
            ServerMsg::Ack { input } => {
                self.unacked.ack(input);
                Step::Continue
            }
            ServerMsg::Exit(status) => Step::Done(Outcome::Exited(status)),
            ServerMsg::Ping => Step::Send(vec![control(&ClientMsg::Pong)]),
            ServerMsg::Pong => {
                if let Some(sent) = conn.ping_sent.take() {
                    self.output.round_trip(sent.elapsed());
                }
                Step::Continue
            }
            ServerMsg::Error { message } => {
                self.last_error = Some(message);
                Step::Continue
            }
            ServerMsg::Ending { in_sec } => {
                let now = crate::clock::unix_now();
                if let Some(expiry) = &self.expiry {
                    expiry.moved(now + in_sec);
                }
                let _ = (self.output).note(&deadline::ending_note(&self.label, in_sec, now));
                Step::Continue
            }
        }
    }
}

struct Connection {
    ready: bool,
    redraw_next: bool,
    last_frame: Instant,
    last_ping: Instant,
    /// The ping awaiting its pong (the oldest, when several are out): its round trip.
    ping_sent: Option<Instant>,
}

enum Typed {
    Send(Bytes),
    /// Detach, after sending what was typed before the escape in the same read.
    Detach(Option<Bytes>),
    Nothing,
}

enum Step {
    Continue,
    Send(Vec<Frame<'static>>),
    SendThenDetach(Vec<Frame<'static>>),
    Done(Outcome),
    Lost(String),
    Repaint(u64),
}

/// After `detach`, waits briefly for the runtime to end the connection, which says it read
/// the message (a socket closed at once could lose it, and the program would be held for
/// us). Output still arriving is not shown: we are leaving.
async fn await_close(events: &mut mpsc::Receiver<Event>) {
    let closed = async {
        while let Some(event) = events.recv().await {
            if let Event::Closed(_) = event {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DETACH_WAIT, closed).await;
}

fn resize() -> ClientMsg {
    let (cols, rows) = tty::session_size();
    ClientMsg::Resize { cols, rows }
}
