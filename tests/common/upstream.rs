//! A strict fake of the providers' APIs for the gateway's tests: hyper on `127.0.0.1:0` in
//! the test's runtime. It refuses (401) any request that does not carry one of its keys where
//! a provider takes one (`x-api-key`, `Authorization: Bearer`, `x-goog-api-key`), answers 429
//! (or a given refusal) for the keys marked busy, records every request it got (method, path
//! and query, headers, body, the key) and serves scripted answers (by route, queued, or a
//! default): chunks with pauses before them, then an end, a cut connection, or a stall. While
//! its gate is closed (`close_gate`), every answer waits after its chunks, before its end, so
//! a test can keep many answers in flight at once.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// One request as the fake got it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The key it carried.
    pub key: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(n, _)| n == name);
        found.map(|(_, v)| v.as_str())
    }

    /// Whether `needle` appears anywhere in what was received.
    pub fn contains(&self, needle: &str) -> bool {
        self.target.contains(needle)
            || self
                .headers
                .iter()
                .any(|(n, v)| n.contains(needle) || v.contains(needle))
            || String::from_utf8_lossy(&self.body).contains(needle)
    }
}

/// How a scripted answer ends after its chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Finish,
    /// The connection is dropped mid-body.
    Cut,
    /// Nothing more ever comes.
    Stall,
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Each chunk with the pause before it.
    pub chunks: Vec<(Duration, Bytes)>,
    pub end: End,
    /// A pause before the head itself.
    pub head_after: Duration,
}

impl Reply {
    /// Server-sent events, one chunk each, no pauses.
    pub fn sse(chunks: &[&str]) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            chunks: (chunks.iter())
                .map(|c| (Duration::ZERO, Bytes::copy_from_slice(c.as_bytes())))
                .collect(),
            end: End::Finish,
            head_after: Duration::ZERO,
        }
    }

    /// A JSON answer with `status`.
    pub fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            chunks: vec![(Duration::ZERO, Bytes::copy_from_slice(body.as_bytes()))],
            end: End::Finish,
            head_after: Duration::ZERO,
        }
    }

    /// Every chunk but the first after `pause`.
    pub fn paced(mut self, pause: Duration) -> Reply {
        for (before, _) in self.chunks.iter_mut().skip(1) {
            *before = pause;
        }
        self
    }

    pub fn ending(mut self, end: End) -> Reply {
        self.end = end;
        self
    }

    pub fn head_after(mut self, pause: Duration) -> Reply {
        self.head_after = pause;
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.chunks.iter().flat_map(|(_, c)| c.to_vec()).collect()
    }
}

struct State {
    keys: Vec<String>,
    /// Keys answered with a canned refusal instead (429 by default).
    busy: Mutex<HashMap<String, Reply>>,
    replies: Mutex<VecDeque<Reply>>,
    /// Replies by the start of the request's target (`POST /v1/messages`), before the queue.
    routes: Mutex<Vec<(String, Reply)>>,
    default: Reply,
    seen: Mutex<Vec<Seen>>,
    /// Open (true) unless a test closed it: answers end only while it is open.
    gate: tokio::sync::watch::Sender<bool>,
}

pub struct FakeUpstream {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeUpstream {
    /// A fake that takes `keys` and answers `default` unless a reply was queued.
    pub async fn start(keys: &[&str], default: Reply) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            busy: Mutex::default(),
            replies: Mutex::default(),
            routes: Mutex::default(),
            default,
            seen: Mutex::default(),
            gate: tokio::sync::watch::Sender::new(true),
        });
        let task = tokio::spawn(accept(listener, state.clone()));
        FakeUpstream { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers 429 to requests with `key` from now on.
    pub fn busy(&self, key: &str) {
        let limited = Reply::json(
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"rate limited"}}"#,
        );
        self.refuse(key, limited.with_header("retry-after", "30"));
    }

    /// Answers `reply` to requests with `key` from now on.
    pub fn refuse(&self, key: &str, reply: Reply) {
        self.state
            .busy
            .lock()
            .unwrap()
            .insert(key.to_string(), reply);
    }

    /// The next request (of any key not busy) gets `reply`.
    pub fn queue(&self, reply: Reply) {
        self.state.replies.lock().unwrap().push_back(reply);
    }

    /// Requests (of any key not busy) whose `METHOD target` starts with `prefix` get `reply`
    /// from now on, the first such route that matches, ahead of the queue.
    pub fn route(&self, prefix: &str, reply: Reply) {
        let mut routes = self.state.routes.lock().unwrap();
        routes.push((prefix.to_string(), reply));
    }

    /// From now on, answers wait after their chunks until [`FakeUpstream::open_gate`].
    pub fn close_gate(&self) {
        self.state.gate.send_replace(false);
    }

    /// Lets every answer waiting at the gate end, and those to come.
    pub fn open_gate(&self) {
        self.state.gate.send_replace(true);
    }

    /// Every request received so far, refused ones included.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(&state, req).await) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn answer(state: &State, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = (parts.headers.iter())
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_string()))
        .collect();
    let key = ["x-api-key", "authorization", "x-goog-api-key"]
        .iter()
        .filter_map(|h| parts.headers.get(*h)?.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).to_string())
        .find(|v| state.keys.contains(v));
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    state.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        target: target.to_string(),
        headers,
        body,
        key: key.clone().unwrap_or_default(),
    });
    let reply = match key {
        None => Reply::json(
            401,
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
        ),
        Some(key) if state.busy.lock().unwrap().contains_key(&key) => {
            state.busy.lock().unwrap()[&key].clone()
        }
        Some(_) => routed(state, &format!("{} {target}", parts.method)).unwrap_or_else(|| {
            let queued = state.replies.lock().unwrap().pop_front();
            queued.unwrap_or_else(|| state.default.clone())
        }),
    };
    respond(reply, state.gate.subscribe()).await
}

fn routed(state: &State, request: &str) -> Option<Reply> {
    let routes = state.routes.lock().unwrap();
    let found = routes
        .iter()
        .find(|(prefix, _)| request.starts_with(prefix));
    found.map(|(_, reply)| reply.clone())
}

async fn respond(reply: Reply, mut gate: tokio::sync::watch::Receiver<bool>) -> Response<Body> {
    tokio::time::sleep(reply.head_after).await;
    let end = reply.end;
    let chunks = futures_util::stream::iter(reply.chunks).then(|(pause, chunk)| async move {
        tokio::time::sleep(pause).await;
        Ok::<_, std::io::Error>(Frame::data(chunk))
    });
    let tail = futures_util::stream::once(async move {
        let _ = gate.wait_for(|open| *open).await;
        match end {
            End::Finish => None,
            End::Cut => Some(Err(std::io::Error::other("cut by the script"))),
            End::Stall => std::future::pending().await,
        }
    })
    .filter_map(std::future::ready);
    let body = BodyExt::boxed(StreamBody::new(chunks.chain(tail)));
    let mut resp = Response::new(body);
    *resp.status_mut() = hyper::StatusCode::from_u16(reply.status).unwrap();
    for (name, value) in reply.headers {
        resp.headers_mut().append(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    resp
}
