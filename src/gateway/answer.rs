//! An upstream's answer body on its way to the client: each frame passed on as it comes (no
//! buffering, so time to first byte and the pace of the chunks are the upstream's), fed to the
//! request's tab on the way, and cut when the upstream says nothing for the idle timeout. A
//! silence resets with every frame: a long answer that keeps coming is never cut.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::tab::Tab;
use crate::net::http::Body;

pub(super) struct Metered {
    inner: Body,
    tab: Tab,
    idle: Duration,
    silence: Pin<Box<Sleep>>,
    /// The answer ended (or was cut): nothing more is read.
    done: bool,
}

impl Metered {
    pub(super) fn new(inner: Body, tab: Tab, idle: Duration) -> Metered {
        Metered {
            inner,
            tab,
            idle,
            silence: Box::pin(tokio::time::sleep(idle)),
            done: false,
        }
    }

    /// The answer ended: `whole`, or cut short.
    fn end(&mut self, whole: bool) {
        self.done = true;
        self.tab.close(whole);
    }
}

impl hyper::body::Body for Metered {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.tab.feed(data);
                }
                let deadline = Instant::now() + this.idle;
                this.silence.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::info!("the upstream's answer broke off: {e}");
                this.end(false);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.end(true);
                Poll::Ready(None)
            }
            Poll::Pending => match this.silence.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    tracing::info!(idle = ?this.idle, "the upstream went silent: answer cut");
                    this.end(false);
                    let e = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the upstream said nothing for the idle timeout",
                    );
                    Poll::Ready(Some(Err(e)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::ledger::Hold;
    use crate::gateway::usage::Provider;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::sync::mpsc;

    fn tab() -> (
        Tab,
        mpsc::UnboundedReceiver<(Hold, crate::gateway::ledger::Charge)>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let hold = Hold {
            user: "u".into(),
            session: "s".into(),
            units: 1,
            reservation: 0,
            period: std::time::SystemTime::UNIX_EPOCH,
        };
        let mut tab = Tab::open(hold, Provider::OpenAi, None, 0, tx);
        tab.answered("r".into(), true, true);
        (tab, rx)
    }

    /// A body whose frames come from `chunks`, then stays open.
    fn stalling(chunks: mpsc::Receiver<Bytes>) -> Body {
        let stream = futures_util::stream::unfold(chunks, |mut rx| async move {
            let chunk = rx.recv().await?;
            Some((Ok::<_, std::io::Error>(Frame::data(chunk)), rx))
        });
        StreamBody::new(stream).boxed_unsync()
    }

    #[tokio::test(start_paused = true)]
    async fn silence_cuts_and_steady_frames_do_not() {
        let (tx, rx) = mpsc::channel(4);
        let (tab, mut settled) = tab();
        let idle = Duration::from_secs(10);
        let mut body = Metered::new(stalling(rx), tab, idle);
        // Frames every 6 s for a minute: longer in all than the idle timeout, never cut.
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            tx.send(Bytes::from_static(b"data: x\n\n")).await.unwrap();
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), &b"data: x\n\n"[..]);
        }
        // Then silence: cut after the idle timeout, with an error, and settled.
        let start = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), idle);
        assert!(body.frame().await.is_none());
        let (_, charge) = settled.try_recv().unwrap();
        assert!(charge.usage.output > 0);
    }
}
