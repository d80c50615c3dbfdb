//! One `/connect` WebSocket: a reader that applies input and control messages, and a writer
//! that sends control replies first and output from the connection's cursor otherwise.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fastwebsockets::{Frame, OpCode, Payload, WebSocket, WebSocketError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};

use super::deadline::{Notice, sleep_until};
use super::pty;
use super::session::{Attached, ConnId, Next, Session};
use crate::locks;
use crate::net::forward_obligated;
use crate::protocol::control::check_size;
use crate::protocol::{
    ClientMsg, ConnectParams, DEAD_LINK, FRAME_MAX_BYTES, MESSAGE_MAX_BYTES, PING_INTERVAL,
    ParseError, ServerMsg, Signal,
};

/// Control frames waiting for the writer.
const CONTROL_QUEUE_FRAMES: usize = 32;

/// The runtime pings a connection it has sent nothing on for this long. A client pings every
/// [`PING_INTERVAL`] and our pongs count as sent, so a current client's link carries one
/// frame a second each way; pinging after one interval would race its pings and double that.
const QUIET_BEFORE_PING: Duration = PING_INTERVAL.saturating_mul(2);

type Control = mpsc::Sender<Frame<'static>>;

/// Serves one attached client until it leaves, the process exits or the session ends.
pub(super) async fn serve<S>(
    session: Arc<Session>,
    deadline: watch::Receiver<Option<tokio::time::Instant>>,
    ws: WebSocket<S>,
    params: ConnectParams,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let attached = session.attach(&params);
    let conn = attached.conn;
    tracing::info!(conn, watch = params.watch, since = ?params.since, "client attached");
    let mut ws = ws;
    // Frames up to twice the limit are read whole, so the refusal (1009) keeps the stream in
    // step and its close frame arrives; a larger one ends the connection at its header.
    ws.set_max_message_size(2 * MESSAGE_MAX_BYTES);
    let (read, write) = ws.split(tokio::io::split);
    let (control, control_rx) = mpsc::channel(CONTROL_QUEUE_FRAMES);
    let heard = Mutex::new(Some(Instant::now()));
    let notices = notices(deadline, control.clone());
    tokio::select! {
        result = write_loop(&session, write, control_rx, attached) => {
            if let Err(e) = result {
                tracing::debug!(conn, "writer ended: {e}");
            }
        }
        result = read_loop(&session, conn, read, control, &heard) => {
            if let Err(e) = result {
                tracing::debug!(conn, "reader ended: {e}");
            }
        }
        () = dead_link(&heard) => {
            tracing::info!(conn, "no frame for {DEAD_LINK:?}; dropping the connection");
        }
        () = notices => {}
    }
    session.detach(conn);
    tracing::info!(conn, "client detached");
}

/// Tells the client about the session's deadline (`ending`, through the writer's control
/// queue, so after `ready`): when it comes near and whenever it moves. Never returns.
async fn notices(mut deadline: watch::Receiver<Option<tokio::time::Instant>>, control: Control) {
    let mut notice = Notice::new(*deadline.borrow_and_update());
    loop {
        let now = tokio::time::Instant::now();
        if let Some(in_sec) = notice.due(now) {
            let _ = control.send(text(&ServerMsg::Ending { in_sec })).await;
        }
        tokio::select! {
            changed = deadline.changed() => {
                if changed.is_err() {
                    return std::future::pending().await;
                }
                let at = *deadline.borrow_and_update();
                if let Some(in_sec) = notice.moved(at, tokio::time::Instant::now()) {
                    let _ = control.send(text(&ServerMsg::Ending { in_sec })).await;
                }
            }
            () = sleep_until(notice.wake_at()) => {}
        }
    }
}

/// When the client was last heard from; `None` while its input waits for room in the queue
/// (we are not reading it then, so its silence says nothing).
type Heard = Mutex<Option<Instant>>;

/// Returns once the client has sent nothing for [`DEAD_LINK`].
///
/// Timers here are long-lived and reset only when they fire: a timer set afresh for every
/// frame would wake the runtime's driver (an extra syscall or two) on every keystroke.
async fn dead_link(heard: &Heard) {
    loop {
        let last = (*locks::lock(heard)).unwrap_or_else(Instant::now);
        let deadline = last + DEAD_LINK;
        if deadline <= Instant::now() {
            return;
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
}

fn text(msg: &ServerMsg) -> Frame<'static> {
    Frame::text(Payload::Owned(msg.to_json().into_bytes()))
}

async fn write_loop<W>(
    session: &Session,
    mut ws: fastwebsockets::WebSocketWrite<W>,
    mut control: mpsc::Receiver<Frame<'static>>,
    attached: Attached,
) -> Result<(), WebSocketError>
where
    W: AsyncWrite + Unpin,
{
    let conn = attached.conn;
    ws.write_frame(text(&attached.ready)).await?;
    if let Some(redraw) = attached.redraw {
        ws.write_frame(Frame::binary(Payload::Owned(redraw)))
            .await?;
    }
    let mut changed = session.subscribe();
    let mut chunk = Vec::with_capacity(FRAME_MAX_BYTES);
    let mut sent = Instant::now();
    let keepalive = tokio::time::sleep(QUIET_BEFORE_PING);
    tokio::pin!(keepalive);
    loop {
        // Control replies go before any output; after a close frame, nothing (the reader
        // ends the connection).
        while let Ok(frame) = control.try_recv() {
            let close = frame.opcode == OpCode::Close;
            ws.write_frame(frame).await?;
            if close {
                std::future::pending::<()>().await;
            }
            sent = Instant::now();
        }
        changed.borrow_and_update();
        chunk.clear();
        match session.next_output(conn, &mut chunk) {
            Next::Output => {
                ws.write_frame(Frame::binary(Payload::Borrowed(&chunk)))
                    .await?;
                session.advance(conn, chunk.len());
                sent = Instant::now();
                // One thread runs the whole runtime: under a flood (a full frame, more
                // waiting), let input (a Ctrl-C) in between frames. A smaller frame took
                // all there was, so the loop waits next anyway.
                if chunk.len() == FRAME_MAX_BYTES {
                    tokio::task::yield_now().await;
                }
            }
            Next::Transcript(offset) => {
                let Some(bytes) = session.read_transcript(offset, FRAME_MAX_BYTES).await else {
                    let message = "fell behind the transcript; reconnect with since".into();
                    ws.write_frame(text(&ServerMsg::Error { message })).await?;
                    return ws.write_frame(Frame::close(1000, b"")).await;
                };
                let n = bytes.len();
                ws.write_frame(Frame::binary(Payload::Owned(bytes))).await?;
                session.advance(conn, n);
                sent = Instant::now();
                tokio::task::yield_now().await;
            }
            Next::Exit(status) => {
                ws.write_frame(text(&ServerMsg::Exit(status))).await?;
                return ws.write_frame(Frame::close(1000, b"exited")).await;
            }
            Next::Close(message) => {
                ws.write_frame(text(&ServerMsg::Error { message })).await?;
                return ws.write_frame(Frame::close(1000, b"")).await;
            }
            Next::Idle => tokio::select! {
                frame = control.recv() => match frame {
                    Some(frame) if frame.opcode == OpCode::Close => {
                        ws.write_frame(frame).await?;
                        std::future::pending::<()>().await;
                    }
                    Some(frame) => {
                        ws.write_frame(frame).await?;
                        sent = Instant::now();
                    }
                    None => return Ok(()),
                },
                _ = changed.changed() => {}
                () = &mut keepalive => {
                    if sent.elapsed() >= QUIET_BEFORE_PING {
                        ws.write_frame(text(&ServerMsg::Ping)).await?;
                        sent = Instant::now();
                    }
                    keepalive.as_mut().reset((sent + QUIET_BEFORE_PING).into());
                }
            },
        }
    }
}

async fn read_loop<R>(
    session: &Session,
    conn: ConnId,
    mut read: fastwebsockets::WebSocketRead<R>,
    control: Control,
    heard: &Heard,
) -> Result<(), WebSocketError>
where
    R: AsyncRead + Unpin,
{
    // Pongs and close replies required by the WebSocket protocol go through the writer.
    let mut obligated = |frame| forward_obligated(&control, frame, std::convert::identity);
    let mut message = Message::default();
    loop {
        let frame = match read.read_frame(&mut obligated).await {
            Ok(frame) => Ok(frame),
            Err(WebSocketError::FrameTooLarge) => Err(TOO_BIG),
            Err(WebSocketError::InvalidUTF8) => Err(NOT_UTF8),
            Err(e) => return Err(e),
        };
        let mut frame = match frame {
            Ok(frame) => frame,
            Err(refusal) => return refuse(&control, refusal, &mut read).await,
        };
        if !masked(&mut frame) {
            return refuse(&control, UNMASKED, &mut read).await;
        }
        *locks::lock(heard) = Some(Instant::now());
        let (opcode, payload) = match message.add(frame) {
            Ok(Some(whole)) => whole,
            Ok(None) => continue,
            Err(refusal) => return refuse(&control, refusal, &mut read).await,
        };
        let reply = match opcode {
            OpCode::Binary => {
                *locks::lock(heard) = None;
                let ack = session.input(conn, &payload).await;
                *locks::lock(heard) = Some(Instant::now());
                ack
            }
            OpCode::Text if std::str::from_utf8(&payload).is_err() => {
                return refuse(&control, NOT_UTF8, &mut read).await;
            }
            OpCode::Text if is_detach(&payload) => {
                // On purpose: nothing is held for this client. Ending the connection here
                // tells the client its `detach` was read before its socket closes.
                session.leaving(conn);
                return Ok(());
            }
            OpCode::Text => control_message(session, conn, &payload, &control).await,
            OpCode::Close => return Ok(()),
            _ => None,
        };
        if let Some(reply) = reply {
            // A full queue means the writer is stuck; the reader need not wait for it.
            let _ = control.try_send(text(&reply));
        }
    }
}

/// How long a refused client's remaining frames are read after the close frame.
const LINGER: Duration = Duration::from_secs(1);

/// Why a connection is closed, as RFC 6455 codes it.
type Refusal = (u16, &'static str);
const TOO_BIG: Refusal = (1009, "message too big");
const NOT_UTF8: Refusal = (1007, "text is not UTF-8");
const BAD_FRAGMENTS: Refusal = (1002, "fragments out of order");
const UNMASKED: Refusal = (1002, "client frames must be masked");

/// Whether a client frame came masked, as RFC 6455 requires (5.1). fastwebsockets unmasks
/// the payload but keeps the mask, and shows it only in the header it would write.
fn masked(frame: &mut Frame<'_>) -> bool {
    let mut head = [0u8; 14];
    frame.fmt_head(&mut head);
    head[1] & 0x80 != 0
}

/// Closes the connection with `code`: the writer sends the close frame, and what the client
/// still sends is read and dropped until its own close frame, for [`LINGER`] at most, so the
/// close frame is not lost to a reset (closing a socket with unread data sends one).
async fn refuse<R>(
    control: &Control,
    (code, reason): Refusal,
    read: &mut fastwebsockets::WebSocketRead<R>,
) -> Result<(), WebSocketError>
where
    R: AsyncRead + Unpin,
{
    tracing::info!(code, reason, "closing a client's connection");
    let _ = control.send(Frame::close(code, reason.as_bytes())).await;
    let mut ignore = |_| std::future::ready(Ok::<(), WebSocketError>(()));
    let drain = async {
        loop {
            match read.read_frame(&mut ignore).await {
                Ok(frame) if frame.opcode == OpCode::Close => return,
                Ok(_) | Err(WebSocketError::FrameTooLarge | WebSocketError::InvalidUTF8) => {}
                Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
    Ok(())
}

/// A client message put together from its fragments, within [`MESSAGE_MAX_BYTES`].
#[derive(Default)]
struct Message {
    started: Option<(OpCode, Vec<u8>)>,
}

impl Message {
    /// Adds a frame (unmasked); returns the message once whole. Control frames (close,
    /// ping, pong) may come between fragments and are whole by themselves.
    fn add(&mut self, frame: Frame<'_>) -> Result<Option<(OpCode, Vec<u8>)>, Refusal> {
        let payload = &frame.payload[..];
        match (frame.opcode, frame.fin, self.started.as_mut()) {
            (OpCode::Close | OpCode::Ping | OpCode::Pong, _, _) => {
                Ok(Some((frame.opcode, payload.to_vec())))
            }
            (OpCode::Continuation, fin, Some((_, bytes))) => {
                if bytes.len() + payload.len() > MESSAGE_MAX_BYTES {
                    return Err(TOO_BIG);
                }
                bytes.extend_from_slice(payload);
                Ok(if fin { self.started.take() } else { None })
            }
            (OpCode::Continuation, _, None) | (_, _, Some(_)) => Err(BAD_FRAGMENTS),
            (_, _, None) if payload.len() > MESSAGE_MAX_BYTES => Err(TOO_BIG),
            (opcode, true, None) => Ok(Some((opcode, payload.to_vec()))),
            (opcode, false, None) => {
                self.started = Some((opcode, payload.to_vec()));
                Ok(None)
            }
        }
    }
}

/// Handles one JSON control message; returns the reply, if any.
async fn control_message(
    session: &Session,
    conn: ConnId,
    payload: &[u8],
    control: &Control,
) -> Option<ServerMsg> {
    match ClientMsg::parse(std::str::from_utf8(payload).unwrap_or_default()) {
        Ok(ClientMsg::Resize { cols, rows }) => {
            match check_size(cols.into(), rows.into()) {
                Ok(size) => session.resize(conn, size),
                Err(e) => return error(&e),
            }
            None
        }
        Ok(ClientMsg::Signal { name }) => signal(session, conn, name).await,
        Ok(ClientMsg::Shown { offset, window }) => {
            session.shown(conn, offset, window);
            None
        }
        Ok(ClientMsg::Ping) => {
            if let Some(ack) = session.pinged(conn) {
                let _ = control.try_send(text(&ack));
            }
            Some(ServerMsg::Pong)
        }
        Ok(ClientMsg::Pong | ClientMsg::Detach) => None,
        Err(e @ ParseError::UnknownType(_)) => error(&e.to_string()),
        Err(e @ ParseError::Malformed(_)) => error(&e.to_string()),
    }
}

/// Whether a text frame is `detach` (a text frame is rare: a resize, a ping a second).
fn is_detach(payload: &[u8]) -> bool {
    let text = std::str::from_utf8(payload).unwrap_or_default();
    matches!(ClientMsg::parse(text), Ok(ClientMsg::Detach))
}

async fn signal(session: &Session, conn: ConnId, signal: Signal) -> Option<ServerMsg> {
    let pgid = session.signal_target(conn).await?;
    match pty::signal_group(pgid, pty::nix_signal(signal)) {
        Ok(()) => None,
        Err(e) => error(&format!("cannot send {}: {e}", signal.name())),
    }
}

fn error(message: &str) -> Option<ServerMsg> {
    Some(ServerMsg::Error {
        message: message.to_string(),
    })
}
