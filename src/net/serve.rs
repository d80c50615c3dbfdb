//! The accept loop every server runs: a task per connection, owned here, at most
//! [`MAX_CONNECTIONS`] of them, and a graceful drain once shutdown is asked for.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};

use crate::protocol::MAX_CONNECTIONS;

/// Set by a connection's handler once the peer has shown the token: from then on the
/// connection is never closed to make room for another.
#[derive(Clone, Default)]
pub struct Proven(Arc<AtomicBool>);

impl Proven {
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// How long open connections get to finish after shutdown before they are dropped.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The pause after a failed accept (out of file descriptors, usually): no spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections until `shutdown` resolves, each served by `handle` in a task owned
/// here; then gives the open ones [`DRAIN_TIMEOUT`] to finish. At [`MAX_CONNECTIONS`], a new
/// connection takes the place of the oldest one not yet [`Proven`] (idle connections of
/// nobody in particular cannot lock the owner out); when every one is proven, the new one is
/// closed.
pub async fn serve<H, F>(listener: TcpListener, shutdown: impl Future<Output = ()>, handle: H)
where
    H: Fn(TcpStream, Proven) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    let mut unproven: VecDeque<(AbortHandle, Proven)> = VecDeque::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    unproven.retain(|(task, proven)| !task.is_finished() && !proven.is_set());
                    if tasks.len() >= MAX_CONNECTIONS {
                        match unproven.pop_front() {
                            Some((oldest, _)) => oldest.abort(),
                            None => {
                                tracing::warn!("{MAX_CONNECTIONS} connections open: refusing one");
                                continue;
                            }
                        }
                    }
                    // Keystrokes and echoes are tiny: never hold them back for Nagle.
                    let _ = stream.set_nodelay(true);
                    let proven = Proven::default();
                    let task = tasks.spawn(handle(stream, proven.clone()));
                    unproven.push_back((task, proven));
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        tracing::info!(
            open = tasks.len(),
            "dropping connections still open after the drain"
        );
    }
    tasks.shutdown().await;
}
