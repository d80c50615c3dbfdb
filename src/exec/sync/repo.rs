//! The workspace's git repository, asked read-only: `git` with hooks and fsmonitor off, none
//! of the runtime's variables (no `GIT_*`, no `HOME`, so no global config), a fixed `PATH`,
//! never above the workspace, and killed past a timeout.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

pub(super) use crate::protocol::git::is_object_name;

/// The longest a short git command (`ls-files`, `rev-parse`, …) may run.
pub(super) const GIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where git is looked for: the system's places, whatever the agent did to its own `PATH`.
const GIT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Whether the workspace is a git repository: `.git` at its root (a directory or a gitfile).
pub(super) async fn is_repo(root: &Path) -> bool {
    tokio::fs::symlink_metadata(root.join(".git")).await.is_ok()
}

/// `git ARGS` in `root`, set up as the module says; the caller picks stdout and stderr.
/// `safe.directory` is left alone: a repository someone else owns stays refused.
pub(super) fn git(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    cmd.env_clear()
        .env("PATH", GIT_PATH)
        .env("LC_ALL", "C")
        // Read-only commands must not refresh the index: its write is a change to the watcher.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_TERMINAL_PROMPT", "0")
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
        ])
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(parent) = root.parent() {
        cmd.env("GIT_CEILING_DIRECTORIES", parent);
    }
    cmd
}

/// Runs a short git command to its end; its output, or why it could not run (the workspace
/// named). A failing git is an `Ok` with its status.
pub(super) async fn run(root: &Path, args: &[&str]) -> Result<Output, String> {
    let what = || format!("git {} in {}", args.join(" "), root.display());
    let child = git(root, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", what()))?;
    // On a timeout the child is dropped, and so killed.
    match tokio::time::timeout(GIT_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(format!("{}: {e}", what())),
        Err(_) => Err(format!(
            "{} took longer than {} s",
            what(),
            GIT_TIMEOUT.as_secs()
        )),
    }
}

/// The files git tracks (`git ls-files -z`), NUL-separated; empty outside a repository or
/// when git fails (logged): the walk alone then decides.
pub(super) async fn tracked(root: &Path) -> Vec<u8> {
    if !is_repo(root).await {
        return Vec::new();
    }
    match run(root, &["ls-files", "--cached", "-z"]).await {
        Ok(out) if out.status.success() => out.stdout,
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            tracing::debug!(
                "sync: git ls-files in {}: {}",
                root.display(),
                stderr.trim()
            );
            Vec::new()
        }
        Err(why) => {
            tracing::warn!("sync: {why}");
            Vec::new()
        }
    }
}

/// The commit `HEAD` names, when the workspace is a repository with one.
pub(super) async fn head(root: &Path) -> Option<String> {
    if !is_repo(root).await {
        return None;
    }
    let out = run(root, &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]).await;
    let out = out.ok().filter(|out| out.status.success())?;
    let sha = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    is_object_name(&sha).then_some(sha)
}

/// Whether the commit `sha` is in the repository.
pub(super) async fn has_commit(root: &Path, sha: &str) -> bool {
    let spec = format!("{sha}^{{commit}}");
    let out = run(root, &["cat-file", "-e", &spec]).await;
    out.is_ok_and(|out| out.status.success())
}

/// Whether commit `a` is `b` or one of its ancestors.
pub(super) async fn is_ancestor(root: &Path, a: &str, b: &str) -> bool {
    let out = run(root, &["merge-base", "--is-ancestor", a, b]).await;
    out.is_ok_and(|out| out.status.success())
}
