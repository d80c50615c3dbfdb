//! The frames of one attach connection: the reader task that turns what arrives into
//! [`Event`]s, and writing a frame with a timeout that costs no timer when the write is quick.

use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, WebSocketWrite};
use tokio::sync::mpsc;

use crate::net;
use crate::protocol::{ClientMsg, DEAD_LINK, ServerMsg};

/// A write that takes this long means the link is dead.
const WRITE_TIMEOUT: Duration = DEAD_LINK;

/// What the reader task hands the attach loop.
pub(super) enum Event {
    Output(Bytes),
    Message(ServerMsg),
    /// A pong or close reply the WebSocket protocol requires of us.
    Obligated(Frame<'static>),
    Closed(String),
}

/// Writes one frame, giving up after [`WRITE_TIMEOUT`] if the link stops taking data.
///
/// A write that finishes at once (nearly all: the socket's buffer has room) sets no timer. A
/// timer set for every keystroke would wake the runtime's driver, a syscall or two each time.
pub(super) async fn send<W>(write: &mut WebSocketWrite<W>, frame: Frame<'_>) -> Result<(), String>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut writing = std::pin::pin!(write.write_frame(frame));
    let first = std::future::poll_fn(|cx| Poll::Ready(writing.as_mut().poll(cx))).await;
    let done = match first {
        Poll::Ready(done) => done,
        Poll::Pending => match tokio::time::timeout(WRITE_TIMEOUT, writing).await {
            Ok(done) => done,
            Err(_) => return Err("the link stopped taking data".into()),
        },
    };
    done.map_err(|e| e.to_string())
}

pub(super) fn binary(bytes: Bytes) -> Frame<'static> {
    Frame::binary(Payload::Owned(bytes.to_vec()))
}

pub(super) fn control(msg: &ClientMsg) -> Frame<'static> {
    Frame::text(Payload::Owned(msg.to_json().into_bytes()))
}

/// Reads frames into `events` until the connection ends. Runs as its own task because
/// fastwebsockets' `read_frame` must never be cancelled halfway.
pub(super) async fn read_frames<R>(
    read: fastwebsockets::WebSocketRead<R>,
    events: mpsc::Sender<Event>,
) where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut reader = fastwebsockets::FragmentCollectorRead::new(read);
    let mut obligated = |frame| net::forward_obligated(&events, frame, Event::Obligated);
    loop {
        let event = match reader.read_frame(&mut obligated).await {
            Ok(frame) => match frame.opcode {
                OpCode::Binary => Event::Output(Bytes::copy_from_slice(&frame.payload)),
                OpCode::Text => match std::str::from_utf8(&frame.payload)
                    .ok()
                    .map(ServerMsg::parse)
                {
                    Some(Ok(msg)) => Event::Message(msg),
                    // Unknown types are ignored, by the protocol's rule.
                    _ => continue,
                },
                OpCode::Close => Event::Closed("the runtime closed the connection".into()),
                _ => continue,
            },
            Err(e) => Event::Closed(e.to_string()),
        };
        let closed = matches!(event, Event::Closed(_));
        if events.send(event).await.is_err() || closed {
            return;
        }
    }
}
