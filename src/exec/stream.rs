//! One `/connect` WebSocket: a reader that applies input and control messages, and a writer
//! that sends control replies first and output from the connection's cursor otherwise.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fastwebsockets::{Frame, OpCode, Payload, WebSocket, WebSocketError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::pty;
use super::session::{Attached, ConnId, Next, Session};
use crate::locks;
use crate::net::forward_obligated;
use crate::protocol::control::check_size;
use crate::protocol::{
    ClientMsg, ConnectParams, DEAD_LINK, FRAME_MAX_BYTES, PING_INTERVAL, ParseError, ServerMsg,
    Signal,
};

/// Control frames waiting for the writer.
const CONTROL_QUEUE_FRAMES: usize = 32;

/// The runtime pings a connection it has sent nothing on for this long. A client pings every
/// [`PING_INTERVAL`] and our pongs count as sent, so a current client's link carries one
/// frame a second each way; pinging after one interval would race its pings and double that.
const QUIET_BEFORE_PING: Duration = PING_INTERVAL.saturating_mul(2);

type Control = mpsc::Sender<Frame<'static>>;

/// Serves one attached client until it leaves, the process exits or the session ends.
pub(super) async fn serve<S>(session: Arc<Session>, ws: WebSocket<S>, params: ConnectParams)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let attached = session.attach(&params);
    let conn = attached.conn;
    tracing::info!(conn, watch = params.watch, since = ?params.since, "client attached");
    let (read, write) = ws.split(tokio::io::split);
    let (control, control_rx) = mpsc::channel(CONTROL_QUEUE_FRAMES);
    let heard = Mutex::new(Instant::now());
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
    }
    session.detach(conn);
    tracing::info!(conn, "client detached");
}

/// Returns once the client has sent nothing for [`DEAD_LINK`].
///
/// Timers here are long-lived and reset only when they fire: a timer set afresh for every
/// frame would wake the runtime's driver (an extra syscall or two) on every keystroke.
async fn dead_link(heard: &Mutex<Instant>) {
    loop {
        let deadline = *locks::lock(heard) + DEAD_LINK;
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
        // Control replies go before any output.
        while let Ok(frame) = control.try_recv() {
            ws.write_frame(frame).await?;
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
    read: fastwebsockets::WebSocketRead<R>,
    control: Control,
    heard: &Mutex<Instant>,
) -> Result<(), WebSocketError>
where
    R: AsyncRead + Unpin,
{
    let mut reader = fastwebsockets::FragmentCollectorRead::new(read);
    // Pongs and close replies required by the WebSocket protocol go through the writer.
    let mut obligated = |frame| forward_obligated(&control, frame, std::convert::identity);
    loop {
        let frame = reader.read_frame(&mut obligated).await?;
        *locks::lock(heard) = Instant::now();
        let reply = match frame.opcode {
            OpCode::Binary => session.input(conn, &frame.payload).await,
            OpCode::Text if is_detach(&frame.payload) => {
                // On purpose: nothing is held for this client. Ending the connection here
                // tells the client its `detach` was read before its socket closes.
                session.leaving(conn);
                return Ok(());
            }
            OpCode::Text => control_message(session, conn, &frame.payload, &control).await,
            OpCode::Close => return Ok(()),
            _ => None,
        };
        if let Some(reply) = reply {
            // A full queue means the writer is stuck; the reader need not wait for it.
            let _ = control.try_send(text(&reply));
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
        Ok(ClientMsg::Ping) => {
            if let Some(ack) = session.input_ack(conn) {
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
