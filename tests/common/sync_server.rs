//! A session as sync-back sees it, in one small in-process server: the runtime's `/sync/…`
//! endpoints serving a directory as the session's workspace (manifest, files, a git bundle),
//! plus canned hostile entries and faults (a file that stalls half-way), and the daemon's
//! `GET /v1/sessions/{label}` pointing at itself, so the real `catty pull` finds it (plus
//! the list, a session's stop and stop-all, for `catty stop`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use catty::protocol::api::{SessionInfo, SessionState};
use catty::protocol::sync::{EntryKind, Manifest, ManifestEntry, parse_file_query};
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::TOKEN;

pub const LABEL: &str = "brave-tiger-1234";
pub const SESSION_ID: &str = "s-0123456789abcdef";
const DAEMON_TOKEN: &str = "daemon-token-for-sync-tests";

type Body = BoxBody<Bytes, Infallible>;

/// What the session holds, and the faults to play; tests change it through [`SyncServer::with`].
#[derive(Default)]
pub struct Session {
    /// The workspace served (never its `.git/`).
    pub tree: PathBuf,
    pub generation: u64,
    /// Entries listed besides the tree's (hostile ones).
    pub extra: Vec<ManifestEntry>,
    /// Bytes served for a path instead of the tree's file.
    pub bytes: HashMap<String, Vec<u8>>,
    /// The bundle `GET /sync/bundle` answers, when the session has commits.
    pub bundle: Option<PathBuf>,
    /// This file's answer stops half-way and never ends.
    pub stall: Option<String>,
    pub stalled: bool,
    /// Every `/sync/file` path asked for, and every `/sync/bundle` query.
    pub fetched: Vec<String>,
    pub bundle_queries: Vec<String>,
    /// Every generation `POST /sync/pulled` acknowledged.
    pub acks: Vec<u64>,
    /// What `GET /sync/pulled` answers.
    pub unpulled: bool,
    /// Whether `POST /v1/sessions/{id}/stop` was called.
    pub stopped: bool,
}

pub struct SyncServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _task: catty::task::AbortOnDrop<()>,
}

struct Shared {
    session: Mutex<Session>,
    changed: Notify,
    /// Long polls that began to wait, each after it read the generation.
    waits: std::sync::atomic::AtomicUsize,
}

impl SyncServer {
    /// Serves `tree` as the session's workspace.
    pub async fn start(tree: &Path) -> SyncServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let session = Session {
            tree: tree.to_owned(),
            generation: 1,
            ..Session::default()
        };
        let shared = Arc::new(Shared {
            session: Mutex::new(session),
            changed: Notify::new(),
            waits: Default::default(),
        });
        let task = tokio::spawn(serve(listener, addr, shared.clone()));
        SyncServer {
            addr,
            shared,
            _task: catty::task::AbortOnDrop(task),
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        f(&mut self.shared.session.lock().unwrap())
    }

    /// The workspace changed: a new generation, and long polls answer.
    pub fn bump(&self) {
        self.with(|s| s.generation += 1);
        self.shared.changed.notify_waiters();
    }

    /// How many long polls began to wait so far: a change made after this grew, without
    /// [`SyncServer::bump`], is not seen by those polls until they time out.
    pub fn waits(&self) -> usize {
        self.shared.waits.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How the client reaches this session (the library's view of `catty pull`).
    pub fn link(&self) -> catty::client::sync::Link {
        catty::client::sync::Link::from(session_info(self.addr))
    }

    /// Prepares `state` (an `XDG_STATE_HOME`) so a client finds this server as its daemon;
    /// the client's state directory.
    pub fn client_state(&self, state: &Path) -> PathBuf {
        let dir = state.join("catty");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("api.token"), DAEMON_TOKEN).unwrap();
        dir
    }

    /// `catty ARGS` in `cwd` with the state under `state`, started (not waited for).
    pub fn catty(&self, state: &Path, cwd: &Path, args: &[&str]) -> tokio::process::Command {
        self.client_state(state);
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_catty"));
        cmd.args(args)
            .current_dir(cwd)
            .env("CATTY_API_ADDR", self.addr.to_string())
            .env("XDG_STATE_HOME", state)
            .env("HOME", state)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        cmd
    }
}

/// The manifest of `session`: its tree's files and symlinks, then the extra entries.
pub fn manifest_of(session: &Session) -> Manifest {
    let mut entries = tree_entries(&session.tree);
    entries.extend(session.extra.iter().cloned());
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Manifest {
        generation: session.generation,
        entries,
        head: git_head(&session.tree),
    }
}

/// Every file and symlink under `root` but `.git/`, as a manifest lists them.
pub fn tree_entries(root: &Path) -> Vec<ManifestEntry> {
    let mut entries = Vec::new();
    walk(root, root, &mut entries);
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<ManifestEntry>) {
    for dent in std::fs::read_dir(dir).unwrap() {
        let path = dent.unwrap().path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let kind = if meta.is_dir() {
            if rel != ".git" {
                walk(root, &path, out);
            }
            continue;
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            EntryKind::Symlink {
                target: target.to_str().unwrap().into(),
            }
        } else {
            let bytes = std::fs::read(&path).unwrap();
            EntryKind::File {
                executable: std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111
                    != 0,
                size: bytes.len() as u64,
                sha256: sha256(&bytes),
            }
        };
        out.push(ManifestEntry { path: rel, kind });
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn git_head(dir: &Path) -> Option<String> {
    if !dir.join(".git").exists() {
        return None;
    }
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn serve(listener: TcpListener, addr: SocketAddr, shared: Arc<Shared>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(&shared, addr, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new();
            let _ = conn.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn respond(shared: &Shared, addr: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if path == "/healthz" {
        return super::daemon_healthz().map(|body| body.boxed());
    }
    let daemon_auth = auth == format!("Bearer {DAEMON_TOKEN}");
    if daemon_auth && path == "/v1/sessions" {
        let list = serde_json::json!({ "sessions": [session_info(addr)] });
        return full(200, &list.to_string());
    }
    if daemon_auth && path == "/v1/sessions/stop-all" {
        shared.session.lock().unwrap().stopped = true;
        return full(200, r#"{"stopped":1}"#);
    }
    if let Some(session) = path.strip_prefix("/v1/sessions/") {
        let (session, stop) = match session.strip_suffix("/stop") {
            Some(session) => (session, true),
            None => (session, false),
        };
        if auth != format!("Bearer {DAEMON_TOKEN}") {
            return full(
                401,
                r#"{"error":{"code":"unauthorized","message":"bad token"}}"#,
            );
        }
        if session != LABEL && session != SESSION_ID {
            return full(
                404,
                r#"{"error":{"code":"not_found","message":"no such session"}}"#,
            );
        }
        let mut info = session_info(addr);
        if stop {
            shared.session.lock().unwrap().stopped = true;
            info.state = SessionState::Stopped;
        }
        return full(200, &serde_json::to_string(&info).unwrap());
    }
    if auth != format!("Bearer {TOKEN}") {
        return full(
            401,
            r#"{"error":{"code":"unauthorized","message":"bad token"}}"#,
        );
    }
    match path.as_str() {
        "/sync/manifest" => manifest(shared, &query).await,
        "/sync/file" => file(shared, &query),
        "/sync/bundle" => bundle(shared, &query),
        "/sync/pulled" if req.method() == hyper::Method::GET => {
            let unpulled = shared.session.lock().unwrap().unpulled;
            full(200, &format!(r#"{{"unpulled":{unpulled}}}"#))
        }
        "/sync/pulled" => {
            let generation = catty::protocol::sync::parse_pulled_query(&query).unwrap();
            shared.session.lock().unwrap().acks.push(generation);
            full(204, "")
        }
        _ => full(
            404,
            r#"{"error":{"code":"not_found","message":"no such endpoint"}}"#,
        ),
    }
}

/// The session as the daemon describes it, its runtime at `addr`.
fn session_info(addr: SocketAddr) -> SessionInfo {
    super::running_session(SESSION_ID, LABEL, addr)
}

/// `GET /sync/manifest[?after=G]`: waits (at most 25 s) while the generation is still `G`.
async fn manifest(shared: &Shared, query: &str) -> Response<Body> {
    let after: Option<u64> = query.strip_prefix("after=").and_then(|g| g.parse().ok());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    loop {
        let changed = shared.changed.notified();
        let generation = shared.session.lock().unwrap().generation;
        if after.is_none_or(|after| generation > after) {
            break;
        }
        shared
            .waits
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            break;
        }
    }
    let manifest = manifest_of(&shared.session.lock().unwrap());
    full(200, &serde_json::to_string(&manifest).unwrap())
}

/// `GET /sync/file?path=P`: the bytes (or the stand-in), with the manifest's SHA-256.
fn file(shared: &Shared, query: &str) -> Response<Body> {
    let Some(path) = parse_file_query(query) else {
        return full(
            400,
            r#"{"error":{"code":"bad_request","message":"bad query"}}"#,
        );
    };
    let mut session = shared.session.lock().unwrap();
    session.fetched.push(path.clone());
    let in_tree = |session: &Session| {
        let file = session.tree.join(&path);
        let meta = std::fs::symlink_metadata(&file).ok()?;
        meta.is_file().then(|| std::fs::read(&file).ok()).flatten()
    };
    // As the manifest lists it: an extra entry, else the tree's file (without a full walk).
    let listed = match session.extra.iter().find(|e| e.path == path) {
        Some(ManifestEntry {
            kind: EntryKind::File { sha256, .. },
            ..
        }) => Some(sha256.clone()),
        Some(_) => None,
        None => in_tree(&session).map(|bytes| sha256(&bytes)),
    };
    let Some(listed_sha) = listed else {
        return full(
            404,
            r#"{"error":{"code":"not_found","message":"not a file"}}"#,
        );
    };
    let bytes = match session.bytes.get(&path) {
        Some(bytes) => bytes.clone(),
        None => in_tree(&session).unwrap_or_default(),
    };
    let body = if session.stall.as_deref() == Some(path.as_str()) {
        session.stalled = true;
        let half = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
        let first = futures_util::stream::once(async move { Ok(Frame::data(half)) });
        BodyExt::boxed(StreamBody::new(
            first.chain(futures_util::stream::pending()),
        ))
    } else {
        Full::new(Bytes::from(bytes)).boxed()
    };
    Response::builder()
        .header("x-catty-sha256", listed_sha)
        .header("content-type", "application/octet-stream")
        .body(body)
        .unwrap()
}

/// `GET /sync/bundle[?base=SHA]`: the bundle set, else `204`.
fn bundle(shared: &Shared, query: &str) -> Response<Body> {
    let mut session = shared.session.lock().unwrap();
    session.bundle_queries.push(query.to_string());
    match &session.bundle {
        Some(path) => {
            let bytes = std::fs::read(path).unwrap();
            Response::new(Full::new(Bytes::from(bytes)).boxed())
        }
        None => Response::builder()
            .status(204)
            .body(Full::new(Bytes::new()).boxed())
            .unwrap(),
    }
}

fn full(status: u16, body: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap()
}
