//! The runtime's `/sync/…` endpoints over HTTP/1.1: connections of their own (never the
//! terminal's), kept alive between requests, every answer read with a limit and a deadline.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

use crate::net::RuntimeUrl;
use crate::protocol::api::ErrorBody;
use crate::task::AbortOnDrop;

/// No answer, or no byte of one, for this long: the link is dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections kept for the next requests.
const IDLE_CONNECTIONS: usize = 8;

/// How to reach a session's runtime.
pub(in crate::client) struct Remote {
    runtime: RuntimeUrl,
    headers: HeaderMap,
    idle: std::sync::Mutex<Vec<Conn>>,
}

/// One HTTP/1.1 connection; its driver task ends with it.
struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    _driver: AbortOnDrop<()>,
}

/// Why a request to the runtime failed.
#[derive(Debug)]
pub(in crate::client) enum RemoteError {
    /// The runtime cannot be reached, or the link broke: try again later.
    Unreachable(String),
    /// The runtime answered this error status.
    Status(StatusCode, String),
    /// An answer that breaks the protocol.
    Broken(String),
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteError::Unreachable(why) | RemoteError::Broken(why) => f.write_str(why),
            RemoteError::Status(StatusCode::UNAUTHORIZED, _) => {
                f.write_str("the runtime refused the session's token")
            }
            RemoteError::Status(status, message) => {
                write!(f, "the runtime answered {status}: {message}")
            }
        }
    }
}

impl std::error::Error for RemoteError {}

/// An answer whose body is being read; its connection is kept once the body is whole.
pub(in crate::client) struct Reply<'a> {
    remote: &'a Remote,
    conn: Option<Conn>,
    body: Incoming,
    pub status: StatusCode,
    headers: HeaderMap,
}

impl Remote {
    pub(in crate::client) fn new(
        connect_url: &str,
        token: &str,
        extra: &BTreeMap<String, String>,
    ) -> anyhow::Result<Remote> {
        let runtime = RuntimeUrl::parse(connect_url)?;
        let mut headers = HeaderMap::new();
        let host = HeaderValue::from_str(runtime.authority())?;
        headers.insert(HOST, host);
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| anyhow::anyhow!("the session's token cannot be sent"))?;
        headers.insert(AUTHORIZATION, bearer);
        for (name, value) in extra {
            let bad = || anyhow::anyhow!("the header {name:?} cannot be sent");
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            headers.insert(name, HeaderValue::from_str(value).map_err(|_| bad())?);
        }
        Ok(Remote {
            runtime,
            headers,
            idle: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// `GET endpoint` (a path with its query), waiting at most `wait` for the answer's head.
    /// A success (2xx) is the reply; anything else an error with the runtime's message.
    pub(in crate::client) async fn get(
        &self,
        endpoint: &str,
        wait: Duration,
    ) -> Result<Reply<'_>, RemoteError> {
        self.send(Method::GET, endpoint, wait).await
    }

    /// `POST endpoint` without a body, its answer's body read and dropped.
    pub(in crate::client) async fn post(
        &self,
        endpoint: &str,
        wait: Duration,
    ) -> Result<(), RemoteError> {
        self.send(Method::POST, endpoint, wait)
            .await?
            .collect(64 * 1024)
            .await
            .map(drop)
    }

    async fn send(
        &self,
        method: Method,
        endpoint: &str,
        wait: Duration,
    ) -> Result<Reply<'_>, RemoteError> {
        let url = format!("{}{endpoint}", self.runtime);
        let unreachable =
            |why: &dyn fmt::Display| RemoteError::Unreachable(format!("{url}: {why}"));
        let mut conn = self.conn().await.map_err(|e| unreachable(&e))?;
        let mut req = Request::builder()
            .method(method)
            .uri(self.runtime.target(endpoint))
            .body(Empty::new())
            .map_err(|e| unreachable(&e))?;
        *req.headers_mut() = self.headers.clone();
        let sent = tokio::time::timeout(wait, conn.sender.send_request(req)).await;
        let resp = match sent {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => return Err(unreachable(&e)),
            Err(_) => return Err(unreachable(&"no answer in time")),
        };
        let (parts, body) = resp.into_parts();
        let mut reply = Reply {
            remote: self,
            conn: Some(conn),
            body,
            status: parts.status,
            headers: parts.headers,
        };
        if parts.status.is_success() {
            return Ok(reply);
        }
        let body = reply.collect(64 * 1024).await.unwrap_or_default();
        let message = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(err) => err.error.message,
            Err(_) => String::from_utf8_lossy(&body).chars().take(200).collect(),
        };
        Err(RemoteError::Status(parts.status, message))
    }

    /// An idle connection that is still usable, else a new one.
    async fn conn(&self) -> std::io::Result<Conn> {
        loop {
            let idle = crate::locks::lock(&self.idle).pop();
            let Some(mut conn) = idle else { break };
            if conn.sender.ready().await.is_ok() {
                return Ok(conn);
            }
        }
        let connecting = crate::net::connect(self.runtime.authority(), self.runtime.tls());
        let stream = tokio::time::timeout(IDLE_TIMEOUT, connecting)
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        let driver = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));
        Ok(Conn {
            sender,
            _driver: driver,
        })
    }
}

impl Reply<'_> {
    /// The next bytes of the body; `None` at its end (the connection is then kept).
    pub(in crate::client) async fn chunk(&mut self) -> Result<Option<Bytes>, RemoteError> {
        loop {
            let frame = match tokio::time::timeout(IDLE_TIMEOUT, self.body.frame()).await {
                Err(_) => return Err(RemoteError::Unreachable("the answer stalled".into())),
                Ok(None) => {
                    if let Some(conn) = self.conn.take() {
                        let mut idle = crate::locks::lock(&self.remote.idle);
                        if idle.len() < IDLE_CONNECTIONS {
                            idle.push(conn);
                        }
                    }
                    return Ok(None);
                }
                Ok(Some(frame)) => frame.map_err(|e| RemoteError::Unreachable(e.to_string()))?,
            };
            if let Ok(data) = frame.into_data() {
                return Ok(Some(data));
            }
        }
    }

    /// The whole body, refused past `limit` bytes.
    pub(in crate::client) async fn collect(&mut self, limit: usize) -> Result<Bytes, RemoteError> {
        let mut all = BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            if all.len() + chunk.len() > limit {
                return Err(RemoteError::Broken(format!(
                    "an answer longer than {limit} bytes"
                )));
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all.freeze())
    }

    /// A header's value, when it is text.
    pub(in crate::client) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
