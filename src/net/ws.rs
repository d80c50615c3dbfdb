//! The frames the WebSocket protocol obliges a reader to send (a pong for each ping, the echo
//! of a close). fastwebsockets' split reader hands each to a callback while it reads; both ends
//! queue it for their writer task with [`forward_obligated`].

use std::future::Future;

use fastwebsockets::{Frame, Payload, WebSocketError};
use tokio::sync::mpsc;

/// Queues `frame`, as handed to a split reader's `read_frame` callback, for the writer:
/// an owned copy (the frame borrows the reader's buffer) wrapped by `wrap`. The copy is made
/// at once; the future waits for room in the queue and fails once the writer is gone.
///
/// `let mut obligated = |frame| forward_obligated(&queue, frame, Event::Obligated);`
pub fn forward_obligated<'q, T, W>(
    queue: &'q mpsc::Sender<T>,
    frame: Frame<'_>,
    wrap: W,
) -> impl Future<Output = Result<(), WebSocketError>> + use<'q, T, W>
where
    W: FnOnce(Frame<'static>) -> T,
{
    let owned = Frame::new(
        true,
        frame.opcode,
        None,
        Payload::Owned(frame.payload.to_vec()),
    );
    let item = wrap(owned);
    async move {
        queue
            .send(item)
            .await
            .map_err(|_| WebSocketError::ConnectionClosed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastwebsockets::OpCode;

    #[tokio::test]
    async fn obligated_frames_are_owned_copies() {
        let (tx, mut rx) = mpsc::channel(1);
        let buffer = b"are you there".to_vec();
        let pong = Frame::pong(Payload::Borrowed(&buffer));
        forward_obligated(&tx, pong, Some).await.unwrap();
        drop(buffer);
        let sent = rx.recv().await.unwrap().unwrap();
        assert_eq!(
            (sent.fin, sent.opcode, sent.payload.to_vec()),
            (true, OpCode::Pong, b"are you there".to_vec())
        );
        drop(rx);
        let closed = forward_obligated(&tx, Frame::close(1000, b""), Some).await;
        assert!(matches!(closed, Err(WebSocketError::ConnectionClosed)));
    }
}
