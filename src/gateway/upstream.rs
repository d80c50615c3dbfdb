//! The providers' APIs behind the gateway: one pooled HTTP/1.1 client (rustls with ring and
//! Mozilla's roots, plain HTTP too for tests and private upstreams), and per provider its base
//! URL and pool of keys. A request goes out with the next key of the pool (round robin); when
//! the upstream answers that the key is busy (429, 529, or 503 "overloaded") another key gets
//! the same buffered request, each key at most once, and only the last answer reaches the
//! agent. Nothing of an answer has gone to the client at that point, so nothing is replayed
//! once a stream started: the retry happens before the head is passed on, never after.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::headers;
use super::usage::Provider;
use crate::config::UpstreamConfig;
use crate::net::TlsRoots;
use crate::net::http::{Body, full};

/// Anthropic's "overloaded" status.
const OVERLOADED: u16 = 529;

/// The most of a 503's body read to see whether it says "overloaded".
const BUSY_BODY_MAX_BYTES: usize = 64 * 1024;

/// One provider's API.
pub(super) struct Upstream {
    pub(super) provider: Provider,
    base: String,
    keys: Vec<String>,
    next: AtomicUsize,
}

impl Upstream {
    pub(super) fn new(provider: Provider, config: &UpstreamConfig) -> Upstream {
        Upstream {
            provider,
            base: config.base.clone(),
            keys: config.keys.clone(),
            next: AtomicUsize::new(0),
        }
    }

    pub(super) fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Every key once, starting at the next one of the round: `(index, key)`.
    fn round(&self) -> impl Iterator<Item = (usize, &str)> {
        let n = self.keys.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(move |i| {
            let at = (first + i) % n;
            (at, self.keys[at].as_str())
        })
    }
}

/// A request as it goes upstream, buffered so another key can send it again.
pub(super) struct Outgoing {
    pub(super) method: Method,
    /// The path under the provider's base (`/v1/messages?beta=true`), query included.
    pub(super) path: String,
    /// Already cleaned ([`headers::for_upstream`]); the key is added per attempt.
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

/// Why no answer came.
#[derive(Debug)]
pub(super) enum SendError {
    /// Nothing came from the upstream for the idle timeout.
    Idle,
    /// It could not be reached, or broke off before its head.
    Unreachable(String),
}

/// The client every upstream shares.
pub(super) struct Upstreams {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Upstreams {
    pub(super) fn new() -> Upstreams {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        // Answers are streamed a few bytes an event: never hold a request back for Nagle.
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(TlsRoots::webpki().client_config())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Upstreams {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Sends `out` to `upstream` with its keys in turn, until an answer that is not "this key
    /// is busy" or the last key: that answer's head, its body still to come.
    pub(super) async fn send(
        &self,
        upstream: &Upstream,
        out: &Outgoing,
        idle: Duration,
    ) -> Result<Response<Body>, SendError> {
        let tries = upstream.keys.len();
        let mut round = upstream.round().enumerate().peekable();
        while let Some((attempt, (index, key))) = round.next() {
            let resp = self.send_once(upstream, out, key, idle).await?;
            let status = resp.status();
            let last = round.peek().is_none();
            if last || !busy_status(status) {
                return Ok(resp.map(|b| b.map_err(std::io::Error::other).boxed_unsync()));
            }
            let (parts, body) = resp.into_parts();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                // A 503 moves on only if it says the upstream is overloaded.
                let body = read_small(body, idle).await;
                if !says_overloaded(&body) {
                    return Ok(Response::from_parts(parts, full(body)));
                }
            }
            tracing::info!(
                status = status.as_u16(),
                key = index,
                attempt = attempt + 1,
                tries,
                "the upstream is busy on this key: the next one tries"
            );
        }
        // Only a pool without keys gets here (the caller answers those itself).
        Err(SendError::Unreachable("no key for this provider".into()))
    }

    async fn send_once(
        &self,
        upstream: &Upstream,
        out: &Outgoing,
        key: &str,
        idle: Duration,
    ) -> Result<Response<hyper::body::Incoming>, SendError> {
        let mut req = Request::builder()
            .method(out.method.clone())
            .uri(format!("{}{}", upstream.base, out.path))
            .body(Full::new(out.body.clone()))
            .map_err(|e| SendError::Unreachable(format!("bad upstream URL: {e}")))?;
        *req.headers_mut() = out.headers.clone();
        headers::set_key(upstream.provider, req.headers_mut(), key);
        match tokio::time::timeout(idle, self.client.request(req)).await {
            Err(_) => Err(SendError::Idle),
            Ok(Err(e)) => Err(SendError::Unreachable(error_chain(&e))),
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}

/// Statuses that say this key is busy, not that the request is wrong.
fn busy_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | OVERLOADED | 503)
}

fn says_overloaded(body: &[u8]) -> bool {
    String::from_utf8_lossy(body)
        .to_ascii_lowercase()
        .contains("overloaded")
}

/// A short error body, whole, or what came of it within the bound and the idle timeout.
async fn read_small(body: hyper::body::Incoming, idle: Duration) -> Bytes {
    let limited = Limited::new(body, BUSY_BODY_MAX_BYTES).collect();
    match tokio::time::timeout(idle, limited).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => Bytes::new(),
    }
}

/// `e` and its causes, `: `-joined (hyper's own message is only the outermost).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_round_starts_one_further_each_time_and_covers_every_key() {
        let config = UpstreamConfig {
            base: "http://x".into(),
            keys: vec!["a".into(), "b".into(), "c".into()],
        };
        let upstream = Upstream::new(Provider::Anthropic, &config);
        let keys = |u: &Upstream| u.round().map(|(_, k)| k.to_string()).collect::<String>();
        assert_eq!(keys(&upstream), "abc");
        assert_eq!(keys(&upstream), "bca");
        assert_eq!(keys(&upstream), "cab");
        assert_eq!(keys(&upstream), "abc");
    }

    #[test]
    fn busy_means_429_529_and_an_overloaded_503() {
        assert!(busy_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(busy_status(StatusCode::from_u16(529).unwrap()));
        assert!(!busy_status(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(says_overloaded(br#"{"error":{"type":"overloaded_error"}}"#));
        assert!(!says_overloaded(b"maintenance"));
    }
}
