//! A daemon that only looks one session up: `GET /healthz` and `GET /v1/sessions/{label|id}`
//! answering a running session whose runtime is at a given address (a `Runtime`, or a
//! `Proxy` in front of one), so the real `catty connect` attaches through whatever the test
//! puts in between.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use catty::protocol::api::SessionInfo;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub const LABEL: &str = "quiet-otter-4321";
const SESSION_ID: &str = "s-fedcba9876543210";
const DAEMON_TOKEN: &str = "daemon-token-for-lookup-tests";

pub struct Lookup {
    pub addr: SocketAddr,
    _task: catty::task::AbortOnDrop<()>,
}

impl Lookup {
    /// Answers for a session whose runtime is at `runtime`; `state` (an `XDG_STATE_HOME`)
    /// gets the token a client needs to talk to it.
    pub async fn start(runtime: SocketAddr, state: &Path) -> Lookup {
        let dir = state.join("catty");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("api.token"), DAEMON_TOKEN).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(serve(listener, runtime));
        Lookup {
            addr,
            _task: catty::task::AbortOnDrop(task),
        }
    }
}

async fn serve(listener: TcpListener, runtime: SocketAddr) {
    let mut conns = tokio::task::JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req| async move {
                Ok::<_, Infallible>(respond(&req, runtime))
            });
            let conn = hyper::server::conn::http1::Builder::new();
            let _ = conn.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn respond(req: &Request<Incoming>, runtime: SocketAddr) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let authorized = req
        .headers()
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == format!("Bearer {DAEMON_TOKEN}").as_bytes());
    let found = path
        .strip_prefix("/v1/sessions/")
        .is_some_and(|s| s == LABEL || s == SESSION_ID);
    if path == "/healthz" {
        return super::daemon_healthz();
    }
    let (status, body) = match (path, authorized, found) {
        (_, false, _) => (401, error("unauthorized", "bad token")),
        (_, true, true) => (200, serde_json::to_string(&info(runtime)).unwrap()),
        (_, true, false) => (404, error("not_found", "no such session")),
    };
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn error(code: &str, message: &str) -> String {
    serde_json::json!({ "error": { "code": code, "message": message } }).to_string()
}

fn info(runtime: SocketAddr) -> SessionInfo {
    super::running_session(SESSION_ID, LABEL, runtime)
}
