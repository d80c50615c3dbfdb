//! Sync-back, the runtime's side (protocol/mod.rs, "Sync-back"): `GET /sync/manifest`,
//! `/sync/file` and `/sync/bundle`, answered from a watched and hashed listing of the
//! workspace, and `POST /sync/pulled`, which lets the runtime go once its work is pulled. Every walk, hash, read and git run happens off the async thread, which only
//! moves finished bytes.

mod bundle;
mod file;
mod hashes;
mod listing;
mod manifest;
mod repo;
mod retain;
mod watch;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::sync::{mpsc, oneshot};

use crate::net::http::{self, Body, error};
use crate::protocol::sync::{
    Pulled, SHA256_HEADER, SYNC_FILE_MAX_BYTES, parse_file_query, parse_pulled_query,
};
use file::{Refusal, Sent};
use manifest::Manifests;
use retain::Retention;

/// Chunks of a file read ahead of the client: enough to keep a fast link busy.
const CHUNKS_AHEAD: usize = 4;

/// The sync-back channel of one workspace.
pub(super) struct SyncBack {
    root: PathBuf,
    manifests: Arc<Manifests>,
    retention: Retention,
}

/// Why a manifest could not be made.
#[derive(Debug)]
pub(super) enum SyncError {
    /// The workspace holds more paths to list than a manifest may carry.
    TooManyEntries(PathBuf),
    Io {
        path: PathBuf,
        err: io::Error,
    },
    /// A blocking task died.
    Task(String),
}

impl SyncError {
    fn io(path: &Path, err: io::Error) -> SyncError {
        SyncError::Io {
            path: path.to_owned(),
            err,
        }
    }

    fn answer(&self) -> Response<Body> {
        match self {
            SyncError::TooManyEntries(_) => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_files",
                self.to_string(),
            ),
            _ => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "sync_failed",
                self.to_string(),
            ),
        }
    }
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::TooManyEntries(root) => write!(
                f,
                "{} holds more than {} files and symlinks to sync",
                root.display(),
                crate::protocol::sync::MANIFEST_MAX_ENTRIES
            ),
            SyncError::Io { path, err } => write!(f, "reading {}: {err}", path.display()),
            SyncError::Task(why) => write!(f, "sync task failed: {why}"),
        }
    }
}

impl std::error::Error for SyncError {}

impl SyncBack {
    pub(super) fn new(root: PathBuf) -> SyncBack {
        let manifests = Manifests::new(root.clone());
        SyncBack {
            root,
            manifests,
            retention: Retention::new(),
        }
    }

    /// Notes the workspace as uploaded, just before the program starts: unchanged since,
    /// it holds nothing to pull.
    pub(super) async fn remember_start(&self) {
        self.retention.remember_start(&self.manifests).await;
    }

    /// The program exited: whatever it wrote last counts as a change now, not after the
    /// watcher's debounce.
    pub(super) fn program_exited(&self) {
        self.manifests.changed();
    }

    /// Returns once every change of the workspace was pulled (see `retain.rs`).
    pub(super) async fn until_pulled(&self) {
        self.retention.until_pulled(&self.manifests).await;
    }

    /// `GET /sync/pulled`: whether work is kept for a pull.
    pub(super) async fn unpulled(&self) -> Response<Body> {
        let unpulled = self.retention.unpulled(&self.manifests, None).await;
        http::json(StatusCode::OK, &Pulled { unpulled })
    }

    /// `POST /sync/pulled?generation=G`: a client applied the manifest of generation `G`.
    pub(super) fn pulled(&self, query: Option<&str>) -> Response<Body> {
        match query.and_then(parse_pulled_query) {
            Some(generation) => {
                self.retention.pulled(generation);
                let mut resp = Response::new(http::full(Bytes::new()));
                *resp.status_mut() = StatusCode::NO_CONTENT;
                resp
            }
            None => error(
                StatusCode::BAD_REQUEST,
                "bad_query",
                "expected generation=GENERATION",
            ),
        }
    }

    /// `GET /sync/manifest[?after=G]`.
    pub(super) async fn manifest(&self, query: Option<&str>) -> Response<Body> {
        let after = match query.unwrap_or_default() {
            "" => None,
            query => match query.strip_prefix("after=").and_then(|g| g.parse().ok()) {
                Some(after) => Some(after),
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_query",
                        "expected after=GENERATION",
                    );
                }
            },
        };
        match self.manifests.wait(after).await {
            Ok(snapshot) => {
                let mut resp = Response::new(http::full(snapshot.json.clone()));
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                resp
            }
            Err(e) => e.answer(),
        }
    }

    /// `GET /sync/file?path=P`: a regular file of the manifest, streamed.
    pub(super) async fn file(&self, query: Option<&str>) -> Response<Body> {
        let Some(path) = query.and_then(parse_file_query) else {
            return error(StatusCode::BAD_REQUEST, "bad_query", "expected path=PATH");
        };
        if !listing::is_clean(&path) {
            let message = format!("{path:?} is not a relative path without . or ..");
            return error(StatusCode::BAD_REQUEST, "bad_path", message);
        }
        let snapshot = match self.manifests.latest().await {
            Ok(snapshot) => snapshot,
            Err(e) => return e.answer(),
        };
        let Some(known) = snapshot.files.get(&path).cloned() else {
            return not_a_file(&path);
        };
        let (head_tx, head_rx) = oneshot::channel();
        let (chunks_tx, chunks) = mpsc::channel(CHUNKS_AHEAD);
        let (root, manifests, rel) = (self.root.clone(), self.manifests.clone(), path.clone());
        // Ends by itself: at the file's end, or at the next chunk once the body is dropped.
        tokio::task::spawn_blocking(move || {
            let root_fd = match hashes::open_root(&root) {
                Ok(fd) => fd,
                Err(err) => return drop(head_tx.send(Err(Refusal::Io(err)))),
            };
            if file::send(&root_fd, &rel, &known, head_tx, chunks_tx) == Sent::Mismatch {
                manifests.distrust(rel);
            }
        });
        match head_rx.await {
            Ok(Ok(head)) => file_answer(head, chunks),
            Ok(Err(refusal)) => self.refused(&path, refusal),
            Err(_) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "read_failed",
                "the reader died",
            ),
        }
    }

    fn refused(&self, path: &str, refusal: Refusal) -> Response<Body> {
        match refusal {
            Refusal::NotAFile => not_a_file(path),
            Refusal::TooLarge(size) => {
                let message = format!(
                    "{path} holds {size} bytes, more than the {SYNC_FILE_MAX_BYTES} a file may"
                );
                error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
            }
            Refusal::Io(err) => {
                let message = format!("reading {}: {err}", self.root.join(path).display());
                error(StatusCode::INTERNAL_SERVER_ERROR, "read_failed", message)
            }
        }
    }

    /// `GET /sync/bundle[?base=SHA]`.
    pub(super) async fn bundle(&self, query: Option<&str>) -> Response<Body> {
        bundle::answer(&self.root, query).await
    }
}

fn not_a_file(path: &str) -> Response<Body> {
    let message = format!("{path} is not a file of the manifest");
    error(StatusCode::NOT_FOUND, "not_found", message)
}

/// The 200 of `/sync/file`: the head, then the chunks as the reader sends them.
fn file_answer(head: file::Head, chunks: mpsc::Receiver<io::Result<Bytes>>) -> Response<Body> {
    let frames = futures_util::stream::unfold(chunks, |mut chunks| async move {
        let chunk = chunks.recv().await?;
        Some((chunk.map(Frame::data), chunks))
    });
    let mut resp = Response::new(StreamBody::new(frames).boxed_unsync());
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(head.size));
    if let Ok(sha256) = HeaderValue::from_str(&head.sha256) {
        headers.insert(SHA256_HEADER, sha256);
    }
    resp
}
