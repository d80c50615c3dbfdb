//! `GET /sync/bundle`: the workspace's commits as a git bundle of `HEAD`, with the uploaded
//! commit as its prerequisite when the workspace has it. Streamed from `git bundle create` as
//! git writes it, and cut (the answer then ends in an error) past `BUNDLE_MAX_BYTES` or
//! [`BUNDLE_TIMEOUT`], or when git fails.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, ChildStdout};
use tokio::time::{Instant, timeout_at};

use super::repo;
use crate::net::http::{self, Body, error};
use crate::protocol::sync::BUNDLE_MAX_BYTES;

/// The longest a bundle may take to make and send: a whole history of 200 MiB on a slow link.
const BUNDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// The reads of git's output.
const CHUNK_BYTES: usize = 64 * 1024;

/// The most of git's complaints kept for the log.
const STDERR_MAX_BYTES: u64 = 4096;

/// Answers `GET /sync/bundle` with `query` (`base=SHA` or nothing).
pub(super) async fn answer(root: &Path, query: Option<&str>) -> Response<Body> {
    let base = match query.unwrap_or_default() {
        "" => None,
        query => match query.strip_prefix("base=") {
            Some(base) => Some(base),
            None => return error(StatusCode::BAD_REQUEST, "bad_query", "expected base=SHA"),
        },
    };
    let Some(head) = repo::head(root).await else {
        return no_content();
    };
    let base = match base {
        Some(base) if repo::is_object_name(base) && repo::has_commit(root, base).await => {
            Some(base)
        }
        _ => None,
    };
    if let Some(base) = base
        && repo::is_ancestor(root, &head, base).await
    {
        return no_content();
    }
    match Bundle::start(root, base).await {
        Ok(bundle) => {
            let mut resp = Response::new(bundle.body());
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-git-bundle"),
            );
            resp
        }
        Err(why) => {
            tracing::warn!("sync: {why}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "bundle_failed", why)
        }
    }
}

fn no_content() -> Response<Body> {
    let mut resp = Response::new(http::full(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// A running `git bundle create` and what it has said.
struct Bundle {
    root: PathBuf,
    child: Child,
    stdout: ChildStdout,
    stderr: Option<ChildStderr>,
    /// Read before answering, so a git that fails at once is a 500, not a cut answer.
    first: Option<Bytes>,
    sent: u64,
    deadline: Instant,
    done: bool,
}

impl Bundle {
    async fn start(root: &Path, base: Option<&str>) -> Result<Bundle, String> {
        let exclude = base.map(|base| format!("^{base}"));
        let mut args = vec!["bundle", "create", "-", "HEAD"];
        args.extend(exclude.as_deref());
        let mut child = repo::git(root, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run git bundle in {}: {e}", root.display()))?;
        let (Some(stdout), stderr) = (child.stdout.take(), child.stderr.take()) else {
            return Err("git bundle: no output pipe".into());
        };
        let mut bundle = Bundle {
            root: root.to_owned(),
            child,
            stdout,
            stderr,
            first: None,
            sent: 0,
            deadline: Instant::now() + BUNDLE_TIMEOUT,
            done: false,
        };
        match bundle.read().await {
            Ok(Some(first)) => bundle.first = Some(first),
            Ok(None) => return Err(bundle.failure("wrote nothing").await),
            Err(why) => return Err(why),
        }
        Ok(bundle)
    }

    /// The rest of the bundle as a body: what git writes, then its end or an error.
    fn body(self) -> Body {
        let frames = futures_util::stream::unfold(self, |mut bundle| async move {
            if bundle.done {
                return None;
            }
            let next = match bundle.first.take() {
                Some(first) => Ok(Some(first)),
                None => bundle.read().await,
            };
            let frame = match next {
                Ok(Some(chunk)) => Ok(Frame::data(chunk)),
                Ok(None) => match bundle.finish().await {
                    Ok(()) => return None,
                    Err(why) => Err(why),
                },
                Err(why) => Err(why),
            };
            bundle.done = frame.is_err();
            if let Err(why) = &frame {
                tracing::warn!("sync: {why}");
            }
            Some((frame.map_err(std::io::Error::other), bundle))
        });
        StreamBody::new(frames).boxed_unsync()
    }

    /// Git's next chunk; `None` at its end.
    async fn read(&mut self) -> Result<Option<Bytes>, String> {
        let mut buf = BytesMut::with_capacity(CHUNK_BYTES);
        let read = timeout_at(self.deadline, self.stdout.read_buf(&mut buf)).await;
        match read {
            Err(_) => Err(self.late()),
            Ok(Err(e)) => Err(format!(
                "reading git bundle in {}: {e}",
                self.root.display()
            )),
            Ok(Ok(0)) => Ok(None),
            Ok(Ok(n)) => {
                self.sent += n as u64;
                if self.sent > BUNDLE_MAX_BYTES {
                    let mib = BUNDLE_MAX_BYTES / (1024 * 1024);
                    let root = self.root.display();
                    return Err(format!("the bundle of {root} is larger than {mib} MiB"));
                }
                Ok(Some(buf.freeze()))
            }
        }
    }

    /// Once git's output has ended: whether it succeeded.
    async fn finish(&mut self) -> Result<(), String> {
        match self.status().await {
            Ok(status) if status.success() => Ok(()),
            Ok(_) => Err(self.failure("failed").await),
            Err(why) => Err(why),
        }
    }

    async fn status(&mut self) -> Result<ExitStatus, String> {
        match timeout_at(self.deadline, self.child.wait()).await {
            Err(_) => Err(self.late()),
            Ok(Err(e)) => Err(format!("git bundle in {}: {e}", self.root.display())),
            Ok(Ok(status)) => Ok(status),
        }
    }

    /// Why git failed, with what it said.
    async fn failure(&mut self, what: &str) -> String {
        let mut said = String::new();
        if let Some(stderr) = self.stderr.take() {
            let mut stderr = stderr.take(STDERR_MAX_BYTES);
            let _ = timeout_at(self.deadline, stderr.read_to_string(&mut said)).await;
        }
        let status = self
            .status()
            .await
            .map(|s| s.to_string())
            .unwrap_or_default();
        let root = self.root.display();
        format!("git bundle in {root} {what} ({status}): {}", said.trim())
    }

    fn late(&self) -> String {
        let secs = BUNDLE_TIMEOUT.as_secs();
        format!(
            "git bundle in {} took longer than {secs} s",
            self.root.display()
        )
    }
}
