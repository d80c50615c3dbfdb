//! `catty diff`: the session's changes that the directory does not have yet, shown by git,
//! applying nothing. Both versions of each such path go into a scratch repository, the local
//! one first, and `git diff` compares the two trees (so modes, symlinks, binary files and
//! `--stat` read as in any repository).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use anyhow::{Context, bail};

use super::apply::{Say, SyncSession, blocking};
use super::check::{self, shown};
use super::decision::Local;
use super::disk::Root;
use super::fetch::{self, Dest, Fetched, Job};
use super::{Link, manifest};
use crate::protocol::sync::EntryKind;

/// Shows the session's changes against the local files (`--stat` with `stat`); returns the
/// exit code.
pub async fn diff(link: &Link, state_dir: &Path, here: &Path, stat: bool) -> anyhow::Result<i32> {
    let say: Say = Arc::new(|line| say!("{line}"));
    let sync = Arc::new(SyncSession::new(link, state_dir, here.to_owned(), say)?);
    let manifest = manifest(&sync.remote, None).await?;
    let s = sync.clone();
    let scratch = blocking(move || Scratch::with_local_versions(&s, manifest)).await?;
    if scratch.paths.is_empty() {
        say!("catty: this directory has every change of {}", link.label);
        return Ok(0);
    }
    let before = scratch.tree()?;
    let root = Arc::new(Root::open(&scratch.tree_dir())?);
    for (path, remote) in &scratch.paths {
        root.remove(path, |_| true)
            .with_context(|| format!("cannot prepare {}", shown(path)))?;
        match remote {
            Some(EntryKind::Symlink { target }) => root.symlink(path, target)?,
            Some(EntryKind::File {
                executable,
                size,
                sha256,
            }) => {
                let job = Job {
                    path: path.clone(),
                    executable: *executable,
                    size: *size,
                    sha256: sha256.clone(),
                    dest: Dest::Scratch,
                };
                match fetch::fetch(&sync.remote, root.clone(), job).await {
                    Fetched::Written => {}
                    Fetched::Retry(why) => bail!("{}: {why}; try again", shown(path)),
                    Fetched::Failed(line) => bail!("{line}"),
                }
            }
            None => {}
        }
    }
    let after = scratch.tree()?;
    let mut show = scratch.git();
    show.args([
        "diff",
        if stat { "--stat" } else { "--patch" },
        &before,
        &after,
    ]);
    // The user's own settings (colour, pager) apply to what is shown.
    show.env_remove("GIT_CONFIG_GLOBAL")
        .env_remove("GIT_CONFIG_NOSYSTEM");
    let status = show.status().context("cannot run git diff")?;
    Ok(if status.success() { 0 } else { 1 })
}

/// A scratch repository: `git/` is its git directory, `tree/` its working tree.
struct Scratch {
    dir: tempfile::TempDir,
    /// The paths shown, with the session's version (`None`: deleted there).
    paths: BTreeMap<String, Option<EntryKind>>,
}

impl Scratch {
    /// The paths whose session version is neither the base nor the local file, with the
    /// local versions copied into a new scratch repository.
    fn with_local_versions(
        sync: &SyncSession,
        manifest: crate::protocol::sync::Manifest,
    ) -> anyhow::Result<Scratch> {
        let base = sync.base()?;
        let project = Root::open(&base.dir)?;
        let checked = match check::check(manifest) {
            Ok(checked) => checked,
            Err(line) => bail!("{line}"),
        };
        for line in &checked.lines {
            sync.say(line);
        }
        let remote = &checked.entries;
        let mut paths = BTreeMap::new();
        let dir = tempfile::tempdir().context("cannot create a scratch directory")?;
        std::fs::create_dir(dir.path().join("tree"))?;
        let scratch_root = Root::open(&dir.path().join("tree"))?;
        for path in remote.keys().chain(base.files.keys()) {
            let theirs = remote.get(path);
            // Before the first sync an unlisted upload may be ignored there (see apply.rs).
            let unconfirmed = !base.confirmed && theirs.is_none();
            if theirs == base.files.get(path) || checked.refused.contains(path) || unconfirmed {
                continue;
            }
            let local = project.local(path)?;
            if matches!(&local, Local::Entry(mine) if Some(mine) == theirs)
                || (local == Local::Absent && theirs.is_none())
            {
                continue;
            }
            copy(&project, &scratch_root, path, &local)?;
            paths.insert(path.clone(), theirs.cloned());
        }
        let scratch = Scratch { dir, paths };
        let init = scratch.git().args(["init", "--quiet"]).status()?;
        if !init.success() {
            bail!("git init failed in {}", scratch.dir.path().display());
        }
        Ok(scratch)
    }

    fn tree_dir(&self) -> PathBuf {
        self.dir.path().join("tree")
    }

    /// Stages the whole working tree and writes it as a tree object; its id.
    fn tree(&self) -> anyhow::Result<String> {
        let add = self.git().args(["add", "--all", "--force"]).status()?;
        let out = self
            .git()
            .arg("write-tree")
            .stderr(Stdio::inherit())
            .output()?;
        if !add.success() || !out.status.success() {
            bail!("git could not record the versions to compare");
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// git on the scratch repository only: its own directories, no global or system
    /// configuration (no filters from the user's setup run on the session's files), no hooks.
    fn git(&self) -> std::process::Command {
        let mut git = std::process::Command::new("git");
        git.env("GIT_DIR", self.dir.path().join("git"))
            .env("GIT_WORK_TREE", self.tree_dir())
            .env_remove("GIT_INDEX_FILE")
            .env_remove("GIT_OBJECT_DIRECTORY")
            .env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .current_dir(self.tree_dir())
            .args(["-c", "core.hooksPath=/dev/null"])
            .stdin(Stdio::null());
        git
    }
}

/// Copies the local version of `path` into the scratch tree.
fn copy(project: &Root, scratch: &Root, path: &str, local: &Local) -> anyhow::Result<()> {
    match local {
        Local::Entry(EntryKind::Symlink { target }) => scratch.symlink(path, target)?,
        Local::Entry(EntryKind::File { executable, .. }) => {
            let mut from = project.open_file(path)?;
            let mut temp = scratch.temp_file(path)?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from.read(&mut buf)? {
                    0 => break,
                    n => temp.write(&buf[..n])?,
                }
            }
            temp.commit(*executable)?;
        }
        Local::Absent | Local::Other(_) => {}
    }
    Ok(())
}
