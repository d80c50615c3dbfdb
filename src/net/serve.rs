//! The accept loop every server runs: a task per connection, owned here, and a graceful drain
//! once shutdown is asked for.

use std::future::Future;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// How long open connections get to finish after shutdown before they are dropped.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The pause after a failed accept (out of file descriptors, usually): no spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections until `shutdown` resolves, each served by `handle` in a task owned
/// here; then gives the open ones [`DRAIN_TIMEOUT`] to finish.
pub async fn serve<H, F>(listener: TcpListener, shutdown: impl Future<Output = ()>, handle: H)
where
    H: Fn(TcpStream) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Keystrokes and echoes are tiny: never hold them back for Nagle.
                    let _ = stream.set_nodelay(true);
                    tasks.spawn(handle(stream));
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
