//! The steps that make an uploaded workspace a git repository: init, the shallow file, the
//! bundle's `HEAD` fetched and put on the user's branch, the index reset to it (the files stay:
//! they are the user's uncommitted changes), the defaults' tracked files marked as absent on
//! purpose, and an identity where there is none.

use std::path::Path;

use super::command::Git;
use crate::protocol::git::GitParams;
use crate::protocol::workspace::always_skipped;

/// Why the workspace could not be made a repository.
#[derive(Debug)]
pub(super) enum RepoError {
    /// The request is at fault: a bundle git refuses, a bad branch name (400).
    BadInput(String),
    /// git or the disk failed (500).
    Failed(String),
}

/// Makes the workspace a repository at the bundle's `HEAD` (none: a repository without
/// commits). Returns that commit. On error, `.git` is left for the caller to remove.
pub(super) async fn make(
    git: &Git,
    bundle: Option<&Path>,
    params: &GitParams,
    child_env: &[(String, String)],
) -> Result<Option<String>, RepoError> {
    use RepoError::{BadInput, Failed};
    git.run(&["init", "-q"]).await.map_err(Failed)?;
    let head = match bundle {
        Some(bundle) => Some(fetch(git, bundle, &params.shallow).await?),
        None => None,
    };
    let branch = params.branch.as_ref().map(|b| format!("refs/heads/{b}"));
    match (&head, &branch) {
        (Some(head), Some(branch)) => {
            let update = git.run(&["update-ref", branch, head]).await;
            update.map_err(|e| BadInput(format!("branch {branch:?}: {e}")))?;
            git.run(&["symbolic-ref", "HEAD", branch])
                .await
                .map_err(Failed)?;
        }
        (Some(head), None) => {
            let detach = git.run(&["update-ref", "--no-deref", "HEAD", head]).await;
            detach.map_err(Failed)?;
        }
        (None, Some(branch)) => {
            let unborn = git.run(&["symbolic-ref", "HEAD", branch]).await;
            unborn.map_err(|e| BadInput(format!("branch {branch:?}: {e}")))?;
        }
        (None, None) => {}
    }
    if head.is_some() {
        git.run(&["reset", "-q"]).await.map_err(Failed)?;
        skip_defaults(git).await.map_err(Failed)?;
    }
    set_identity(git, params, child_env).await.map_err(Failed)?;
    Ok(head)
}

/// Writes the shallow boundary, fetches the bundle's `HEAD` and returns its commit.
async fn fetch(git: &Git, bundle: &Path, shallow: &[String]) -> Result<String, RepoError> {
    use RepoError::{BadInput, Failed};
    let dot_git = git.dot_git();
    if !shallow.is_empty() {
        let lines: String = shallow.iter().map(|c| format!("{c}\n")).collect();
        let path = dot_git.join("shallow");
        let written = tokio::fs::write(&path, lines).await;
        written.map_err(|e| Failed(format!("writing {}: {e}", path.display())))?;
    }
    let args = [
        "fetch".as_ref(),
        "-q".as_ref(),
        "--no-tags".as_ref(),
        "--no-recurse-submodules".as_ref(),
        bundle.as_os_str(),
        "HEAD".as_ref(),
    ];
    git.run(&args)
        .await
        .map_err(|e| BadInput(format!("the bundle was refused: {e}")))?;
    let head = git
        .run(&["rev-parse", "--verify", "-q", "FETCH_HEAD^{commit}"])
        .await
        .map_err(|_| BadInput("the bundle's HEAD is not a commit".into()))?;
    // FETCH_HEAD names the spooled file, which is about to go.
    let _ = tokio::fs::remove_file(dot_git.join("FETCH_HEAD")).await;
    Ok(String::from_utf8_lossy(&head).trim().to_string())
}

/// Tracked files the upload leaves out by default (`.env`, `*.log`, `node_modules/…`) would
/// show as deleted, and `git commit -a` would delete them: they are marked skip-worktree, so
/// git leaves them alone. Files the user deleted still show as deleted.
async fn skip_defaults(git: &Git) -> Result<(), String> {
    let deleted = git.run(&["ls-files", "-z", "--deleted"]).await?;
    let skipped: Vec<&[u8]> = deleted
        .split(|&b| b == 0)
        .filter(|path| !path.is_empty() && default_skipped(path))
        .collect();
    if skipped.is_empty() {
        return Ok(());
    }
    let input: Vec<u8> = skipped
        .iter()
        .flat_map(|p| p.iter().chain(&[0]))
        .copied()
        .collect();
    let args = ["update-index", "-z", "--skip-worktree", "--stdin"];
    git.run_with_input(&args, Some(input)).await.map(drop)
}

/// Whether the upload's defaults leave out a file at `path` (`/`-separated): by its own name
/// or a directory's above it.
fn default_skipped(path: &[u8]) -> bool {
    let mut parts = path.split(|&b| b == b'/').rev();
    let name = parts.next().unwrap_or_default();
    always_skipped(name, false) || parts.any(|dir| always_skipped(dir, true))
}

/// Sets the client's identity in the repository's config when the program's environment has
/// none (`git commit` would fail); an identity of the program's own is left alone.
async fn set_identity(
    git: &Git,
    params: &GitParams,
    child_env: &[(String, String)],
) -> Result<(), String> {
    let given = [
        ("user.name", &params.user_name),
        ("user.email", &params.user_email),
    ];
    if given.iter().all(|(_, v)| v.is_none()) || git.has_identity(child_env).await {
        return Ok(());
    }
    for (key, value) in given {
        if let Some(value) = value {
            git.run(&["config", key, value]).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_skip_by_name_or_directory() {
        for (path, skipped) in [
            ("debug.log", true),
            ("a/.env", true),
            ("node_modules/x/index.js", true),
            ("src/node_modules", false),
            ("src/main.rs", false),
            (".env.example", false),
        ] {
            assert_eq!(default_skipped(path.as_bytes()), skipped, "{path}");
        }
    }
}
