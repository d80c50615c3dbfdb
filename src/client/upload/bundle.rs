//! The bundles of a repository's `HEAD`: the full history, or one cut at a depth (fetched
//! shallow into a scratch repository, then bundled there). Each is written to a temporary file
//! and abandoned as soon as it passes its size limit.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::git::Repo;
use crate::protocol::git::SHALLOW_MAX;

/// Read size while copying git's output.
const CHUNK_BYTES: usize = 256 * 1024;

/// A bundle on disk, removed when dropped.
#[derive(Debug)]
pub(super) struct Bundle {
    pub file: tempfile::NamedTempFile,
    pub bytes: u64,
    /// The commits whose parents it leaves out; empty for a whole history.
    pub shallow: Vec<String>,
    /// The depth it was cut at, if it was.
    pub depth: Option<u32>,
}

/// The whole history of `HEAD`; `Ok(None)` if it passes `limit` bytes (or, from a shallow
/// clone, names more boundaries than a request may carry).
pub(super) async fn full(repo: &Repo, limit: u64) -> Result<Option<Bundle>, String> {
    if repo.shallow.len() > SHALLOW_MAX {
        return Ok(None);
    }
    let mut cmd = Command::new("git");
    cmd.args(["bundle", "create", "-q", "-", "HEAD"])
        .current_dir(&repo.root);
    let Some((file, bytes)) = capped(cmd, limit).await? else {
        return Ok(None);
    };
    Ok(Some(Bundle {
        file,
        bytes,
        shallow: repo.shallow.clone(),
        depth: None,
    }))
}

/// The last `depth` commits of `HEAD` (along every parent); `Ok(None)` past `limit` bytes.
pub(super) async fn shallow(repo: &Repo, depth: u32, limit: u64) -> Result<Option<Bundle>, String> {
    let scratch = tempfile::Builder::new()
        .prefix("catty-history-")
        .tempdir()
        .map_err(|e| format!("cannot make a scratch directory: {e}"))?;
    let at = scratch.path();
    run(at, &["init", "-q", "--bare"]).await?;
    let depth_arg = format!("--depth={depth}");
    let source = repo.root.as_os_str().to_string_lossy();
    run(
        at,
        &["fetch", "-q", "--no-tags", &depth_arg, &source, "HEAD"],
    )
    .await?;
    run(at, &["update-ref", "--no-deref", "HEAD", "FETCH_HEAD"]).await?;
    let shallow = std::fs::read_to_string(at.join("shallow")).unwrap_or_default();
    let shallow: Vec<String> = shallow.lines().map(str::to_string).collect();
    if shallow.len() > SHALLOW_MAX {
        return Ok(None);
    }
    let mut cmd = Command::new("git");
    cmd.args(["bundle", "create", "-q", "-", "HEAD"])
        .current_dir(at);
    let Some((file, bytes)) = capped(cmd, limit).await? else {
        return Ok(None);
    };
    Ok(Some(Bundle {
        file,
        bytes,
        shallow,
        depth: Some(depth),
    }))
}

/// Runs `git ARGS` in `dir`, which must succeed.
async fn run(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run git: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(failed(args, &out.stderr)),
    }
}

/// Copies `cmd`'s stdout into a temporary file; `Ok(None)` (git killed) once it passes
/// `limit` bytes.
async fn capped(
    mut cmd: Command,
    limit: u64,
) -> Result<Option<(tempfile::NamedTempFile, u64)>, String> {
    let file = tempfile::Builder::new()
        .prefix("catty-history-")
        .suffix(".bundle")
        .tempfile()
        .map_err(|e| format!("cannot make a temporary file: {e}"))?;
    let mut out = tokio::fs::File::from_std(file.reopen().map_err(|e| e.to_string())?);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let child_ref = &mut child;
    let copy = async move {
        let (mut buf, mut total) = (vec![0u8; CHUNK_BYTES], 0u64);
        loop {
            let n = stdout.read(&mut buf).await.map_err(|e| e.to_string())?;
            total += n as u64;
            if total > limit {
                // git's pack-objects writes the pack: closing the pipe (stdout dropped here)
                // ends it, as the kill ends git.
                let _ = child_ref.start_kill();
                return Ok::<_, String>(total);
            }
            if n == 0 {
                out.flush().await.map_err(|e| e.to_string())?;
                return Ok(total);
            }
            out.write_all(&buf[..n]).await.map_err(|e| e.to_string())?;
        }
    };
    let mut complaint = Vec::new();
    let (copied, _) = tokio::join!(copy, stderr.read_to_end(&mut complaint));
    let total = copied.map_err(|e| format!("writing the bundle failed: {e}"))?;
    if total > limit {
        return Ok(None);
    }
    let status = child.wait().await.map_err(|e| e.to_string())?;
    match status.success() {
        true => Ok(Some((file, total))),
        false => Err(failed(&["bundle", "create"], &complaint)),
    }
}

fn failed(args: &[&str], stderr: &[u8]) -> String {
    let stderr = String::from_utf8_lossy(stderr);
    let what = args.iter().take(2).copied().collect::<Vec<_>>().join(" ");
    format!("git {what} failed: {}", stderr.trim().replace('\n', "; "))
}
