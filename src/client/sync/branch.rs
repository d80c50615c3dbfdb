//! Commits made in the session come back as the branch `catty/<label>`: a bundle from
//! `GET /sync/bundle`, bounded, fetched by git into that branch alone (forced), hooks off,
//! objects checked. HEAD, the index, the stash and the working tree are never touched.

use std::fmt;
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::apply::SyncSession;
use super::base::Base;
use crate::protocol::sync::{BUNDLE_MAX_BYTES, SYNC_BUNDLE_PATH};

/// What became of the session's commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Branch {
    /// The directory is not in a git repository, or the session has none.
    NoRepository,
    /// The session's `HEAD` is what was uploaded (or it has no commit).
    NoCommits,
    /// `name` now points at `head`; `commits` counts those after the uploaded `HEAD`.
    Updated {
        name: String,
        head: String,
        commits: Option<u64>,
    },
    Failed(String),
}

impl fmt::Display for Branch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Branch::NoRepository => f.write_str("no git repository"),
            Branch::NoCommits => f.write_str("no new commits"),
            Branch::Updated {
                name,
                head,
                commits,
            } => {
                let short = head.get(..12).unwrap_or(head);
                write!(f, "branch {name} at {short}")?;
                match commits {
                    Some(1) => f.write_str(" (1 new commit)"),
                    Some(n) => write!(f, " ({n} new commits)"),
                    None => Ok(()),
                }
            }
            Branch::Failed(why) => write!(f, "the session's commits were not fetched: {why}"),
        }
    }
}

/// Fetches the session's commits when its `HEAD` (`session_head`, from the manifest) is not
/// the uploaded one.
pub(super) async fn fetch(sync: &SyncSession, base: &Base, session_head: Option<&str>) -> Branch {
    let Some(session_head) = session_head else {
        return Branch::NoRepository;
    };
    if base.head.as_deref() == Some(session_head) {
        return Branch::NoCommits;
    }
    if !in_repository(&base.dir).await {
        return Branch::NoRepository;
    }
    match fetch_bundle(sync, base).await {
        Ok(branch) => branch,
        Err(e) => Branch::Failed(format!("{e:#}")),
    }
}

async fn fetch_bundle(sync: &SyncSession, base: &Base) -> anyhow::Result<Branch> {
    let name = branch_name(&sync.label)?;
    let endpoint = match &base.head {
        Some(head) => format!("{SYNC_BUNDLE_PATH}?base={head}"),
        None => SYNC_BUNDLE_PATH.to_string(),
    };
    let wait = std::time::Duration::from_secs(120);
    let mut reply = sync.remote.get(&endpoint, wait).await?;
    if reply.status.as_u16() == 204 {
        return Ok(Branch::NoCommits);
    }
    let temp = sync.store.temp_file()?;
    let mut file = tokio::fs::File::from_std(temp.reopen()?);
    let mut size = 0u64;
    while let Some(chunk) = reply.chunk().await? {
        size += chunk.len() as u64;
        if size > BUNDLE_MAX_BYTES {
            bail!("the session's bundle is over the limit of {BUNDLE_MAX_BYTES} bytes");
        }
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    drop(file);
    let refspec = format!("+HEAD:refs/heads/{name}");
    let bundle = temp.path().as_os_str().to_owned();
    let fetch = git(&base.dir)
        .args(["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"])
        .arg(&bundle)
        .arg(&refspec)
        .output()
        .await
        .context("cannot run git")?;
    if !fetch.status.success() {
        // What git says may quote the bundle's ref names: no control characters reach the
        // terminal.
        let stderr = String::from_utf8_lossy(&fetch.stderr);
        let plain = stderr.trim().replace(|c: char| c.is_control(), " ");
        bail!("git fetch: {plain}");
    }
    let head = rev_parse(&base.dir, &format!("refs/heads/{name}")).await?;
    let commits = match &base.head {
        Some(uploaded) => count(&base.dir, &format!("{uploaded}..{head}")).await,
        None => None,
    };
    Ok(Branch::Updated {
        name,
        head,
        commits,
    })
}

/// `catty/<label>`, when the label makes a plain branch name.
fn branch_name(label: &str) -> anyhow::Result<String> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let plain = !label.is_empty()
        && label.chars().all(fine)
        && !label.starts_with(['.', '-'])
        && !label.contains("..")
        && !label.ends_with(".lock");
    match plain {
        true => Ok(format!("catty/{label}")),
        false => bail!("{label:?} cannot name a branch"),
    }
}

/// git in `dir`, its hooks off (a fetch runs the reference-transaction hook), objects checked
/// as they arrive, no automatic gc.
fn git(dir: &Path) -> Command {
    let mut git = Command::new("git");
    git.current_dir(dir)
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "transfer.fsckObjects=true",
        ])
        .args(["-c", "gc.auto=0", "-c", "maintenance.auto=false"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    git
}

async fn in_repository(dir: &Path) -> bool {
    let out = git(dir)
        .args(["rev-parse", "--git-dir"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    out.is_ok_and(|status| status.success())
}

async fn rev_parse(dir: &Path, rev: &str) -> anyhow::Result<String> {
    let out = git(dir)
        .args(["rev-parse", "--verify", rev])
        .output()
        .await?;
    let head = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match out.status.success() {
        true => Ok(head),
        false => bail!(
            "git rev-parse {rev}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

async fn count(dir: &Path, range: &str) -> Option<u64> {
    let out = git(dir)
        .args(["rev-list", "--count", range])
        .output()
        .await
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_make_plain_branch_names() {
        assert_eq!(
            branch_name("brave-tiger-1234").unwrap(),
            "catty/brave-tiger-1234"
        );
        for bad in ["", "-x", ".x", "a..b", "a/b", "a b", "x.lock", "a~1"] {
            assert!(branch_name(bad).is_err(), "{bad:?}");
        }
    }
}
