//! Shared networking: the accept loop with a graceful drain, and the WebSocket dial used by
//! the client (and by the tests).

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Role, WebSocket};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// How long open connections get to finish after shutdown before they are dropped.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

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
                    // Out of file descriptors, usually: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
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

/// A WebSocket dialled by [`dial`].
pub type ClientSocket = WebSocket<TokioIo<Upgraded>>;

/// Why a WebSocket could not be opened.
#[derive(Debug)]
pub enum DialError {
    BadUrl(String),
    Connect(std::io::Error),
    Http(hyper::Error),
    /// The server answered, but not with `101 Switching Protocols`.
    Status(u16),
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialError::BadUrl(url) => write!(f, "bad URL {url:?}"),
            DialError::Connect(e) => write!(f, "cannot connect: {e}"),
            DialError::Http(e) => write!(f, "HTTP error: {e}"),
            DialError::Status(code) => write!(f, "the server answered {code} instead of upgrading"),
        }
    }
}

impl std::error::Error for DialError {}

/// Opens a WebSocket to `url` (`ws://host:port/path?query` or `http://…`), sending `headers`.
/// The handshake is done here rather than by fastwebsockets, whose helper prints errors to
/// stderr (a raw terminal) and insists on an exact `Connection` header.
pub async fn dial(url: &str, headers: &[(&str, &str)]) -> Result<ClientSocket, DialError> {
    let (authority, path) = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("http://"))
        .map(|rest| rest.split_at(rest.find('/').unwrap_or(rest.len())))
        .ok_or_else(|| DialError::BadUrl(url.to_string()))?;
    let stream = TcpStream::connect(authority)
        .await
        .map_err(DialError::Connect)?;
    let _ = stream.set_nodelay(true);
    let mut req = hyper::Request::get(if path.is_empty() { "/" } else { path })
        .header("host", authority)
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header(
            "sec-websocket-key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("sec-websocket-version", "13");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|_| DialError::BadUrl(url.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(DialError::Http)?;
    let conn = conn.with_upgrades();
    let request = sender.send_request(req);
    tokio::pin!(conn, request);
    // The connection future must be polled for the request to make progress; it completes
    // once it hands the socket over to the upgrade (or the server closes it).
    let mut handed_over = false;
    let resp = tokio::select! {
        resp = &mut request => resp,
        done = &mut conn => {
            done.map_err(DialError::Http)?;
            handed_over = true;
            request.await
        }
    }
    .map_err(DialError::Http)?;
    if resp.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        return Err(DialError::Status(resp.status().as_u16()));
    }
    let upgraded = if handed_over {
        hyper::upgrade::on(resp).await
    } else {
        tokio::join!(hyper::upgrade::on(resp), conn).0
    };
    let upgraded = upgraded.map_err(DialError::Http)?;
    Ok(WebSocket::after_handshake(
        TokioIo::new(upgraded),
        Role::Client,
    ))
}
