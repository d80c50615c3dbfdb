//! Which git repository a directory is, for the history that goes with its upload: the top
//! of a work tree (or not), its `HEAD` commit and branch, a shallow boundary of its own, and
//! the user's identity. git runs as the user runs it, in the user's environment.

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// What the directory is, as far as git is concerned.
#[derive(Debug)]
pub(super) enum Found {
    /// Not in a git work tree (or git is not installed).
    NotGit,
    /// Inside a work tree whose top is `top`.
    NotTopLevel {
        top: PathBuf,
    },
    TopLevel(Repo),
}

/// The top of a work tree.
#[derive(Debug, Clone)]
pub(super) struct Repo {
    pub root: PathBuf,
    /// `None` when there is no commit yet.
    pub head: Option<String>,
    /// `main` for `refs/heads/main`; `None` for a detached `HEAD`.
    pub branch: Option<String>,
    /// The repository's own shallow boundary (a shallow clone), empty otherwise.
    pub shallow: Vec<String>,
    pub user_name: Option<String>,
    pub user_email: Option<String>,
}

/// Looks `dir` up.
pub(super) async fn find(dir: &Path) -> Found {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Found::NotGit;
    };
    let Some(top) = git_line(&dir, &["rev-parse", "--show-toplevel"]).await else {
        return Found::NotGit;
    };
    match std::fs::canonicalize(&top) {
        Ok(top) if top == dir => {}
        Ok(top) => return Found::NotTopLevel { top },
        Err(_) => return Found::NotGit,
    }
    let head = git_line(&dir, &["rev-parse", "--verify", "-q", "HEAD^{commit}"]).await;
    let branch = git_line(&dir, &["symbolic-ref", "-q", "HEAD"]).await;
    let branch = branch.and_then(|b| Some(b.strip_prefix("refs/heads/")?.to_string()));
    let shallow = match git_line(&dir, &["rev-parse", "--git-path", "shallow"]).await {
        Some(path) => read_shallow(&dir.join(path)),
        None => Vec::new(),
    };
    Found::TopLevel(Repo {
        head,
        branch,
        shallow,
        user_name: git_line(&dir, &["config", "--get", "user.name"]).await,
        user_email: git_line(&dir, &["config", "--get", "user.email"]).await,
        root: dir,
    })
}

/// The commits of a `shallow` file; empty when there is none.
fn read_shallow(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(str::to_string).collect()
}

/// The first line `git ARGS` prints in `dir`, if it succeeds and prints one.
pub(super) async fn git_line(dir: &Path, args: &[&str]) -> Option<String> {
    let out = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().next()?.trim_end();
    (out.status.success() && !line.is_empty()).then(|| line.to_string())
}
