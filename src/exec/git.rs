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
use hyper::header::{CONNECTION, CONTENT_LENGTH};
use hyper::{Method, Request, Response, StatusCode};

use super::server::{App, authorized};
use super::spool::spool;
use crate::net::http::{self, Body, error};
use crate::protocol::git::{BUNDLE_SIGNATURES, GitDone, GitParams};
use command::Git;
use repo::RepoError;

/// The longest the git steps may take: a 100 MiB bundle indexes in well under a minute even
/// on a small machine; past this something is wrong, and the program is waiting.
const GIT_TIMEOUT: Duration = Duration::from_secs(300);

pub(super) async fn receive(app: &App, req: Request<Incoming>) -> Response<Body> {
    if !authorized(app, &req) {
        let why = "missing or wrong bearer token";
        return error(StatusCode::UNAUTHORIZED, "unauthorized", why);
    }
    if req.method() != Method::POST {
        let why = format!("{} is not allowed on /git", req.method());
        return error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", why);
    }
    let params = match GitParams::parse(req.uri().query().unwrap_or("")) {
        Ok(params) => params,
        Err(why) => return error(StatusCode::BAD_REQUEST, "bad_query", why),
    };
    let slot = match app.session.begin_history() {
        Ok(slot) => slot,
        Err(why) => return error(StatusCode::CONFLICT, "conflict", why),
    };
    let budget = slot.budget();
    let declared = req.headers().get(CONTENT_LENGTH);
    let declared = declared.and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > budget) {
        return too_large(budget);
    }
    let dot_git = app.workspace.join(".git");
    if std::fs::symlink_metadata(&dot_git).is_ok() {
        let why = "the uploaded workspace already has a .git";
        return error(StatusCode::CONFLICT, "conflict", why);
    }
    let started = Instant::now();
    let spooled = match spool(req.into_body(), budget, "git", ".bundle").await {
        Ok(Some(spooled)) => spooled,
        Ok(None) => return too_large(budget),
        Err(e) => {
            let why = format!("reading the bundle failed: {e}");
            return error(StatusCode::BAD_REQUEST, "bad_body", why);
        }
    };
    let bundle = spooled.file.path();
    let bundle = (spooled.bytes > 0).then_some(bundle);
    if let Some(why) = bundle.and_then(not_a_bundle) {
        return error(StatusCode::BAD_REQUEST, "bad_bundle", why);
    }
    // Declared after the slot, so dropped before it: a retry never finds a half-made .git.
    let cleanup = Cleanup(Some(dot_git));
    let git = Git::new(&app.workspace, &app.child_env);
    let made = repo::make(&git, bundle, &params, &app.child_env);
    let answer = match tokio::time::timeout(GIT_TIMEOUT, made).await {
        Ok(Ok(head)) => head,
        Ok(Err(RepoError::BadInput(why))) => {
            tracing::warn!("history refused: {why}");
            return error(StatusCode::BAD_REQUEST, "bad_bundle", why);
        }
        Ok(Err(RepoError::Failed(why))) => {
            tracing::warn!("history failed: {why}");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "git_failed", why);
        }
        Err(_) => {
            let why = format!("git took longer than {} s", GIT_TIMEOUT.as_secs());
            return error(StatusCode::INTERNAL_SERVER_ERROR, "git_failed", why);
        }
    };
    cleanup.keep();
    slot.done();
    let (bytes, took, shallow) = (spooled.bytes, started.elapsed(), !params.shallow.is_empty());
    tracing::info!(bytes, ?took, shallow, "git history in place");
    let done = GitDone {
        head: answer,
        shallow,
    };
    http::json(StatusCode::OK, &done)
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

fn too_large(budget: u64) -> Response<Body> {
    let left = budget / 1024;
    let mut resp = error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the history is larger than the {left} KiB the upload left of its budget"),
    );
    // The rest of the body stays unread, so this connection cannot carry another request.
    resp.headers_mut()
        .insert(CONNECTION, "close".parse().unwrap());
    resp
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
