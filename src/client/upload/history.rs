//! The git history that goes with an upload (`POST /git`): found and bundled in the
//! background from the moment `catty new` has scanned ([`History::start`]), then fitted into
//! what the zip left of the budget (whole, else cut at a depth) and sent ([`History::send`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper::header::CONTENT_LENGTH;
use indicatif::ProgressBar;
use tokio_util::io::ReaderStream;

use super::bundle::{self, Bundle};
use super::git::{self, Found, Repo};
use super::{
    ArchiveError, UploadBody, UploadError, answer_body, exchange, open_connection, parse_answer,
};
use super::{request, size::human};
use crate::client::progress::Stage;
use crate::net::RuntimeUrl;
use crate::protocol::UPLOAD_LIMIT_BYTES;
use crate::protocol::git::{GIT_BUNDLE_TYPE, GitDone, GitParams};
use crate::task::AbortOnDrop;

/// The depths tried in turn when the whole history does not fit: enough for `git log` to
/// show an agent the project's recent commits, then the least that still makes `git diff`
/// and `git commit` work.
const SHALLOW_DEPTHS: [u32; 2] = [50, 1];
/// Read size of the bundle's body.
const CHUNK_BYTES: usize = 256 * 1024;

/// The history being prepared; dropping it stops the work and removes its files.
pub struct History(AbortOnDrop<Prepared>);

/// What the background work found.
enum Prepared {
    NotGit,
    NotTopLevel {
        top: PathBuf,
    },
    /// The whole history's bundle: `Ok(None)` past the upload budget or without commits.
    Repo {
        repo: Repo,
        full: Result<Option<Bundle>, String>,
    },
}

/// What became of the history.
#[derive(Debug)]
pub enum HistoryOutcome {
    /// The directory is not in a git work tree: nothing was sent.
    NotGit,
    /// The directory is inside the work tree whose top is `top`: nothing was sent.
    NotTopLevel { top: PathBuf },
    /// The session is a git repository; `depth` says where a shallow history was cut.
    Sent {
        done: GitDone,
        bundle_bytes: u64,
        depth: Option<u32>,
    },
    /// The session has the files without a repository, for this reason.
    Failed(String),
}

impl HistoryOutcome {
    /// The line `catty new` prints about it, if any.
    pub fn note(&self) -> Option<String> {
        match self {
            HistoryOutcome::NotGit | HistoryOutcome::Sent { depth: None, .. } => None,
            HistoryOutcome::NotTopLevel { top } => Some(format!(
                "warning: this directory is inside the git repository {}, not at its top: the \
                 session gets the files without git (start catty new there for git in the session)",
                top.display()
            )),
            HistoryOutcome::Sent {
                depth: Some(depth), ..
            } => Some(format!(
                "the session's git history is shallow (the last {depth} commits): the whole \
                 history does not fit in the {} MiB upload beside the files",
                UPLOAD_LIMIT_BYTES / (1024 * 1024)
            )),
            HistoryOutcome::Failed(why) => Some(format!(
                "warning: the session has the files but no git repository: {why}"
            )),
        }
    }
}

impl History {
    /// Starts finding `dir`'s repository and bundling its whole history, in the background.
    pub fn start(dir: &Path) -> History {
        let dir = dir.to_owned();
        History(AbortOnDrop(tokio::spawn(
            async move { prepare(&dir).await },
        )))
    }

    /// Sends the history to the runtime at `connect_url` in at most `budget` bytes, cut
    /// shallow if it must be. With `progress`, a spinner while it is prepared and a bar while
    /// it is sent, on stderr.
    pub async fn send(
        mut self,
        connect_url: &str,
        token: &str,
        headers: &BTreeMap<String, String>,
        budget: u64,
        progress: bool,
    ) -> HistoryOutcome {
        let show = progress && !self.0.0.is_finished();
        let spinner = Stage::spinner_if("preparing the git history", None, show);
        let prepared = (&mut self.0.0).await;
        drop(spinner);
        let (repo, full) = match prepared {
            Ok(Prepared::NotGit) => return HistoryOutcome::NotGit,
            Ok(Prepared::NotTopLevel { top }) => return HistoryOutcome::NotTopLevel { top },
            Ok(Prepared::Repo { repo, full }) => (repo, full),
            Err(e) => return HistoryOutcome::Failed(format!("preparing it failed: {e}")),
        };
        let bundle = match fit(&repo, full, budget, progress).await {
            Ok(bundle) => bundle,
            Err(why) => return HistoryOutcome::Failed(why),
        };
        let params = GitParams {
            branch: repo.branch.clone(),
            shallow: bundle
                .as_ref()
                .map(|b| b.shallow.clone())
                .unwrap_or_default(),
            user_name: repo.user_name.clone(),
            user_email: repo.user_email.clone(),
        };
        let sent = post(
            connect_url,
            token,
            headers,
            &params,
            bundle.as_ref(),
            progress,
        )
        .await;
        match sent {
            Ok(done) => HistoryOutcome::Sent {
                done,
                bundle_bytes: bundle.as_ref().map_or(0, |b| b.bytes),
                depth: bundle.and_then(|b| b.depth),
            },
            // The upload's own wording would speak of an archive.
            Err(UploadError::Refused { status, message }) => {
                HistoryOutcome::Failed(format!("the runtime answered {status}: {message}"))
            }
            Err(e) => HistoryOutcome::Failed(e.to_string()),
        }
    }
}

async fn prepare(dir: &Path) -> Prepared {
    match git::find(dir).await {
        Found::NotGit => Prepared::NotGit,
        Found::NotTopLevel { top } => Prepared::NotTopLevel { top },
        Found::TopLevel(repo) => {
            let full = match repo.head {
                Some(_) => bundle::full(&repo, UPLOAD_LIMIT_BYTES).await,
                None => Ok(None),
            };
            Prepared::Repo { repo, full }
        }
    }
}

/// The bundle to send within `budget`: the whole history, else the deepest cut that fits.
/// `None` for a repository without commits.
async fn fit(
    repo: &Repo,
    full: Result<Option<Bundle>, String>,
    budget: u64,
    progress: bool,
) -> Result<Option<Bundle>, String> {
    if repo.head.is_none() {
        return Ok(None);
    }
    if let Some(full) = full?.filter(|b| b.bytes <= budget) {
        return Ok(Some(full));
    }
    let spinner = Stage::spinner_if("cutting the git history to fit", None, progress);
    let cut = cut(repo, budget).await;
    drop(spinner);
    cut.map(Some)
}

/// The deepest of [`SHALLOW_DEPTHS`] whose bundle fits in `budget`.
async fn cut(repo: &Repo, budget: u64) -> Result<Bundle, String> {
    for depth in SHALLOW_DEPTHS {
        if let Some(bundle) = bundle::shallow(repo, depth, budget).await? {
            return Ok(bundle);
        }
    }
    Err(format!(
        "even its last commit takes more than the {} the files left of the upload budget",
        human(budget)
    ))
}

/// `POST /git` with `bundle` (an empty body without one).
async fn post(
    connect_url: &str,
    token: &str,
    headers: &BTreeMap<String, String>,
    params: &GitParams,
    bundle: Option<&Bundle>,
    progress: bool,
) -> Result<GitDone, UploadError> {
    let runtime = RuntimeUrl::parse(connect_url).map_err(|bad| UploadError::BadUrl(bad.0))?;
    let bytes = bundle.map_or(0, |b| b.bytes);
    let bar = Stage::bytes_if("sending git history", bytes, progress && bytes > 0);
    let body = match bundle {
        Some(bundle) => file_body(bundle.file.path(), bar.bar().clone()).await?,
        None => Empty::new().map_err(|never| match never {}).boxed(),
    };
    let target = runtime.git_path(&params.to_query());
    let mut req = request(&runtime, target, GIT_BUNDLE_TYPE, token, headers, body)?;
    req.headers_mut().insert(CONTENT_LENGTH, bytes.into());
    let conn = open_connection(&runtime).await?;
    let answer = exchange(conn, req).await;
    drop(bar);
    parse_answer(&answer_body(&runtime.git_url(), answer)?)
}

/// The bundle file as a body, counted on `bar`.
async fn file_body(path: &Path, bar: ProgressBar) -> Result<UploadBody, UploadError> {
    let file = tokio::fs::File::open(path).await.map_err(|err| {
        let path = path.to_owned();
        UploadError::Archive(ArchiveError::Read { path, err })
    })?;
    let chunks = ReaderStream::with_capacity(file, CHUNK_BYTES).map_ok(move |chunk: Bytes| {
        bar.inc(chunk.len() as u64);
        Frame::data(chunk)
    });
    Ok(StreamBody::new(chunks).boxed())
}
