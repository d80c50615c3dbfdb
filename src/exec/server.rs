//! The runtime's HTTP endpoints: `/healthz`, `/upload`, the `/connect` upgrade, `/git`
//! (answered by `git.rs`), the sync-back requests (`/sync/…`, answered by `sync/`) and
//! `/transcript` (`logs.rs`).

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_LENGTH};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::mpsc;

use super::deadline::Deadline;
use super::session::Session;
use super::spool::spool;
use super::sync::SyncBack;
use super::{git, logs, unpack};
use crate::net::Proven;
use crate::net::http::{self, Body, error};
use crate::protocol::api::{SetTtl, Ttl, UploadDone};
use crate::protocol::sync::{
    SYNC_BUNDLE_PATH, SYNC_FILE_PATH, SYNC_MANIFEST_PATH, SYNC_PULLED_PATH,
};
use crate::protocol::transcript::EXIT_HEADER;
use crate::protocol::transcript::TRANSCRIPT_PATH;
use crate::protocol::{
    CONNECT_PATH, ConnectParams, GIT_PATH, HEALTHZ_PATH, TTL_PATH, UPLOAD_LIMIT_BYTES, UPLOAD_PATH,
};

/// What the endpoints share.
pub(super) struct App {
    pub session: Arc<Session>,
    /// `None` only with `--insecure-no-token`.
    pub token: Option<String>,
    pub workspace: PathBuf,
    /// The program's environment: `/git` runs git in it (its `GIT_*` variables aside).
    pub child_env: Vec<(String, String)>,
    pub sync: SyncBack,
    /// When the session ends; `POST /ttl` moves it.
    pub deadline: Deadline,
}

/// A `/connect` request that was answered with 101: the connection task takes it from here.
pub(super) struct Upgrade {
    pub socket: fastwebsockets::upgrade::UpgradeFut,
    pub params: ConnectParams,
}

pub(super) async fn route(
    app: Arc<App>,
    mut req: Request<Incoming>,
    upgrades: mpsc::Sender<Upgrade>,
    proven: &Proven,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    if app.token.is_some() && authorized(&app, &req) {
        proven.set();
    }
    match (req.method(), path.as_str()) {
        (&Method::GET, HEALTHZ_PATH) => healthz(&app),
        (
            _,
            UPLOAD_PATH | CONNECT_PATH | SYNC_MANIFEST_PATH | SYNC_FILE_PATH | SYNC_BUNDLE_PATH
            | SYNC_PULLED_PATH | TRANSCRIPT_PATH | TTL_PATH,
        ) if !authorized(&app, &req) => {
            linger(req.into_body());
            error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token",
            )
        }
        (&Method::POST, UPLOAD_PATH) => upload(&app, req).await,
        (&Method::GET, CONNECT_PATH) => connect(&mut req, upgrades).await,
        (_, GIT_PATH) => git::receive(&app, req).await,
        (&Method::GET, SYNC_MANIFEST_PATH) => app.sync.manifest(req.uri().query()).await,
        (&Method::GET, SYNC_FILE_PATH) => app.sync.file(req.uri().query()).await,
        (&Method::GET, SYNC_BUNDLE_PATH) => app.sync.bundle(req.uri().query()).await,
        (&Method::POST, SYNC_PULLED_PATH) => app.sync.pulled(req.uri().query()),
        (&Method::GET, SYNC_PULLED_PATH) => app.sync.unpulled().await,
        (&Method::GET, TRANSCRIPT_PATH) => logs::answer(&app.session, req.uri().query()).await,
        (&Method::POST, TTL_PATH) => ttl(&app, req).await,
        (
            _,
            HEALTHZ_PATH | UPLOAD_PATH | CONNECT_PATH | SYNC_MANIFEST_PATH | SYNC_FILE_PATH
            | SYNC_BUNDLE_PATH | SYNC_PULLED_PATH | TRANSCRIPT_PATH | TTL_PATH,
        ) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{} is not allowed on {path}", req.method()),
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such endpoint: {path}"),
        ),
    }
}

/// `/upload`, `/git`, `/connect`, `/sync/…`, `/transcript` and `/ttl` need the token, unless the runtime runs
/// without one.
pub(super) fn authorized<B>(app: &App, req: &Request<B>) -> bool {
    app.token
        .as_ref()
        .is_none_or(|token| http::bearer_matches(req, token))
}

async fn connect(req: &mut Request<Incoming>, upgrades: mpsc::Sender<Upgrade>) -> Response<Body> {
    if !fastwebsockets::upgrade::is_upgrade_request(req) {
        return error(
            StatusCode::BAD_REQUEST,
            "not_websocket",
            "/connect needs a WebSocket upgrade",
        );
    }
    let params = match ConnectParams::parse(req.uri().query().unwrap_or("")) {
        Ok(params) => params,
        Err(message) => return error(StatusCode::BAD_REQUEST, "bad_query", message),
    };
    match fastwebsockets::upgrade::upgrade(req) {
        Ok((resp, socket)) => {
            // The connection task is waiting for exactly this; the channel has room.
            let _ = upgrades.try_send(Upgrade { socket, params });
            resp.map(|_| http::full(Bytes::new()))
        }
        Err(e) => error(StatusCode::BAD_REQUEST, "bad_upgrade", e.to_string()),
    }
}

/// How long a refused request's body is still read and thrown away after the answer.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads and drops what is left of a refused request's body for [`LINGER`] at most (and no
/// more than an upload may hold), so the answer is not lost: closing a socket with unread
/// data sends a reset, which would take the answer with it before the client reads it.
fn linger(mut body: Incoming) {
    use http_body_util::BodyExt;
    tokio::spawn(async move {
        let mut left = UPLOAD_LIMIT_BYTES;
        let drain = async {
            while let Some(Ok(frame)) = body.frame().await {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                left = left.saturating_sub(n);
                if left == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    });
}

async fn upload(app: &App, req: Request<Incoming>) -> Response<Body> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > UPLOAD_LIMIT_BYTES) {
        return too_large();
    }
    let slot = match app.session.begin_upload() {
        Ok(slot) => slot,
        Err(why) => {
            linger(req.into_body());
            return error(StatusCode::CONFLICT, "conflict", why);
        }
    };
    let started = std::time::Instant::now();
    let spool = match spool(req.into_body(), UPLOAD_LIMIT_BYTES, "upload", ".zip").await {
        Ok(Some(spool)) => spool,
        Ok(None) => return too_large(),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                format!("the upload stopped: {e}; the session can start without it"),
            );
        }
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_body",
                format!("reading the upload failed: {e}"),
            );
        }
    };
    let received = started.elapsed();
    match unpack::unpack(spool.file.path(), &app.workspace, &unpack::Limits::DEFAULT).await {
        Ok(done) => {
            slot.done(spool.bytes);
            let (files, bytes, archive_bytes) = (done.files, done.bytes, spool.bytes);
            let unpacked = started.elapsed() - received;
            tracing::info!(
                files,
                bytes,
                archive_bytes,
                ?received,
                ?unpacked,
                "workspace uploaded"
            );
            http::json(StatusCode::OK, &UploadDone { files, bytes })
        }
        Err(e) if e.is_bad_input() => {
            tracing::warn!("upload refused: {e}");
            error(StatusCode::BAD_REQUEST, "bad_archive", e.to_string())
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unpack_failed",
            e.to_string(),
        ),
    }
}

/// The largest `POST /ttl` body read: `{"in_sec":N}` is a few dozen bytes.
const TTL_BODY_MAX_BYTES: usize = 1024;

/// `POST /ttl`: moves the session's deadline (protocol: "The deadline").
async fn ttl(app: &App, req: Request<Incoming>) -> Response<Body> {
    use http_body_util::{BodyExt, Limited};
    let body = match Limited::new(req.into_body(), TTL_BODY_MAX_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_body", e.to_string()),
    };
    let set = match serde_json::from_slice::<SetTtl>(&body) {
        Ok(set) if set.in_sec > 0 => set,
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_body",
                "in_sec must be at least 1",
            );
        }
        Err(e) => {
            let message = format!("the body is not {{\"in_sec\":N}}: {e}");
            return error(StatusCode::BAD_REQUEST, "bad_body", message);
        }
    };
    let left = app.deadline.set_in(set.in_sec).as_secs_f64().round() as u64;
    tracing::info!(in_sec = left, "the session's deadline moved");
    let expires_at = crate::clock::unix_now() + left;
    http::json(
        StatusCode::OK,
        &Ttl {
            in_sec: left,
            expires_at,
        },
    )
}

fn too_large() -> Response<Body> {
    let limit = UPLOAD_LIMIT_BYTES / (1024 * 1024);
    let mut resp = error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "the upload is larger than {limit} MiB; add entries to .gitignore or use --no-upload"
        ),
    );
    // The rest of the body stays unread, so this connection cannot carry another request.
    resp.headers_mut()
        .insert(CONNECTION, "close".parse().unwrap());
    resp
}

/// `200 ok`, with the program's exit code once it exited (protocol: `/healthz`), which is how
/// the daemon learns it while the runtime stays for its grace.
fn healthz(app: &App) -> Response<Body> {
    let mut resp = http::text("ok");
    if let Some(status) = app.session.span(0).exited {
        resp.headers_mut()
            .insert(EXIT_HEADER, hyper::header::HeaderValue::from(status.code));
    }
    resp
}
