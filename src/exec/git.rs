//! `POST /git` (protocol/mod.rs, "The history"): after the upload, a bundle of the user's
//! `HEAD` makes the workspace a git repository. The body is spooled under what the zip left of
//! the budget; git runs in `git/command.rs`'s confinement, the steps are `git/repo.rs`; any
//! failure removes the `.git` it made.

mod command;
mod repo;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_LENGTH, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::server::{App, authorized};
use super::spool::{Spooled, spool};
use crate::net::http::{self, Body, error};
use crate::protocol::git::{BUNDLE_SIGNATURES, GitDone, GitParams};
use command::Git;
use repo::RepoError;

/// The longest the git steps may take: a 100 MiB bundle indexes in well under a minute even
/// on a small machine; past this something is wrong, and the program is waiting.
const GIT_TIMEOUT: Duration = Duration::from_secs(300);

pub(super) async fn receive(app: &App, req: Request<Incoming>) -> Response<Body> {
    match history(app, req).await {
        Ok(answer) => answer,
        Err(refusal) => refusal.answer(),
    }
}

/// The whole request; an early answer is the `Err`.
async fn history(app: &App, req: Request<Incoming>) -> Result<Response<Body>, Refusal> {
    let params = admit(app, &req)?;
    let slot = app.session.begin_history();
    let slot = slot.map_err(|why| Refusal::new(StatusCode::CONFLICT, "conflict", why))?;
    let started = Instant::now();
    let spooled = read_bundle(app, req, slot.budget()).await?;
    let bundle = (spooled.bytes > 0).then(|| spooled.file.path());
    // Declared after the slot, so dropped before it: a retry never finds a half-made .git.
    let cleanup = Cleanup(Some(app.workspace.join(".git")));
    let head = make(app, bundle, &params).await?;
    cleanup.keep();
    slot.done();
    let (bytes, took, shallow) = (spooled.bytes, started.elapsed(), !params.shallow.is_empty());
    tracing::info!(bytes, ?took, shallow, "git history in place");
    Ok(http::json(StatusCode::OK, &GitDone { head, shallow }))
}

/// The token, the method and the query.
fn admit(app: &App, req: &Request<Incoming>) -> Result<GitParams, Refusal> {
    if !authorized(app, req) {
        let why = "missing or wrong bearer token";
        return Err(Refusal::new(StatusCode::UNAUTHORIZED, "unauthorized", why));
    }
    if req.method() != Method::POST {
        let why = format!("{} is not allowed on /git", req.method());
        return Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            why,
        ));
    }
    GitParams::parse(req.uri().query().unwrap_or(""))
        .map_err(|why| Refusal::new(StatusCode::BAD_REQUEST, "bad_query", why))
}

/// Spools the body within `budget` and checks it starts like a bundle (or is empty).
async fn read_bundle(app: &App, req: Request<Incoming>, budget: u64) -> Result<Spooled, Refusal> {
    let declared = req.headers().get(CONTENT_LENGTH);
    let declared = declared.and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > budget) {
        return Err(too_large(budget));
    }
    if std::fs::symlink_metadata(app.workspace.join(".git")).is_ok() {
        let why = "the uploaded workspace already has a .git";
        return Err(Refusal::new(StatusCode::CONFLICT, "conflict", why));
    }
    let spooled = match spool(req.into_body(), budget, "git", ".bundle").await {
        Ok(Some(spooled)) => spooled,
        Ok(None) => return Err(too_large(budget)),
        Err(e) => {
            let why = format!("reading the bundle failed: {e}");
            return Err(Refusal::new(StatusCode::BAD_REQUEST, "bad_body", why));
        }
    };
    match (spooled.bytes > 0).then(|| not_a_bundle(spooled.file.path())) {
        Some(Some(why)) => Err(Refusal::new(StatusCode::BAD_REQUEST, "bad_bundle", why)),
        _ => Ok(spooled),
    }
}

/// Runs the git steps under the deadline; their errors as answers.
async fn make(
    app: &App,
    bundle: Option<&Path>,
    params: &GitParams,
) -> Result<Option<String>, Refusal> {
    let git = Git::new(&app.workspace, &app.child_env);
    let made = repo::make(&git, bundle, params, &app.child_env);
    match tokio::time::timeout(GIT_TIMEOUT, made).await {
        Ok(Ok(head)) => Ok(head),
        Ok(Err(RepoError::BadInput(why))) => {
            tracing::warn!("history refused: {why}");
            Err(Refusal::new(StatusCode::BAD_REQUEST, "bad_bundle", why))
        }
        Ok(Err(RepoError::Failed(why))) => {
            tracing::warn!("history failed: {why}");
            Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "git_failed",
                why,
            ))
        }
        Err(_) => {
            let why = format!("git took longer than {} s", GIT_TIMEOUT.as_secs());
            Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "git_failed",
                why,
            ))
        }
    }
}

/// Why the spooled body is not a git bundle, if it is not: git's own message for a file
/// that is not one would talk about repositories.
fn not_a_bundle(path: &Path) -> Option<String> {
    let mut start = [0u8; 16];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut start));
    match read {
        Ok(()) if BUNDLE_SIGNATURES.contains(&&start[..]) => None,
        Ok(()) | Err(_) => Some("the body is not a git bundle (no bundle header)".into()),
    }
}

/// A `413` for a body past `budget`.
fn too_large(budget: u64) -> Refusal {
    let left = budget / 1024;
    let why = format!("the history is larger than the {left} KiB the upload left of its budget");
    Refusal {
        // The rest of the body stays unread, so this connection cannot carry another request.
        close: true,
        ..Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", why)
    }
}

/// An answer other than `200`: an error body, and whether the connection must close.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    why: String,
    close: bool,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, why: impl Into<String>) -> Refusal {
        let (why, close) = (why.into(), false);
        Refusal {
            status,
            code,
            why,
            close,
        }
    }

    fn answer(self) -> Response<Body> {
        let mut resp = error(self.status, self.code, self.why);
        if self.close {
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Removes the `.git` being made unless [`Cleanup::keep`] is called: on an error, a timeout,
/// or a client that hangs up (the future is dropped).
struct Cleanup(Option<PathBuf>);

impl Cleanup {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(dot_git) = self.0.take()
            && let Err(e) = std::fs::remove_dir_all(&dot_git)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", dot_git.display());
        }
    }
}
