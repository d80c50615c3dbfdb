//! What the local files are known to equal, per session: recorded from the workspace when
//! `catty new` uploads it, moved path by path as sync applies or adopts the session's
//! versions, kept in `<state_dir>/sync/<session_id>.json` (0600, replaced atomically) with a
//! lock file beside it, so two clients on one directory take turns.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::decision::Local;
use super::disk::Root;
use crate::client::upload::{Kind, Workspace};
use crate::protocol::sync::EntryKind;

/// Threads that hash the workspace when a base is recorded.
const HASH_THREADS: usize = 4;

/// One session's base in its directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    pub label: String,
    /// The directory the session was started from (canonical), where its work comes back.
    pub dir: PathBuf,
    /// The git `HEAD` that was uploaded, if any: the bundle's prerequisite.
    #[serde(default)]
    pub head: Option<String>,
    /// Path → what the local file or symlink is known to equal.
    pub files: BTreeMap<String, EntryKind>,
    /// Path → the session's version last reported as a conflict (`None`: deleted there).
    #[serde(default)]
    pub conflicts: BTreeMap<String, Option<EntryKind>>,
    /// Whether a manifest of the session was applied since the upload. Until then an
    /// uploaded path the session does not list may be one its git ignores rather than one it
    /// deleted: the first round keeps such files here instead of deleting them.
    #[serde(default)]
    pub confirmed: bool,
    /// Whether changes come back while a client is attached (`catty new --no-sync` says no,
    /// for `catty connect` too).
    #[serde(default = "yes")]
    pub live: bool,
}

fn yes() -> bool {
    true
}

impl Base {
    /// A base that knows nothing: every session file that differs locally is a conflict.
    pub fn empty(label: &str, dir: &Path) -> Base {
        Base {
            label: label.to_string(),
            dir: dir.to_owned(),
            head: None,
            files: BTreeMap::new(),
            conflicts: BTreeMap::new(),
            confirmed: true,
            live: true,
        }
    }

    /// The base of an upload of `ws` from `dir`, with `dir`'s git `HEAD`. Blocking: it reads
    /// every file (on a few threads). Paths that are not UTF-8 are left out, as the
    /// manifest leaves them out.
    pub fn from_workspace(dir: &Path, ws: &Workspace) -> anyhow::Result<Base> {
        let dir = std::fs::canonicalize(dir)
            .with_context(|| format!("cannot read the directory {}", dir.display()))?;
        let root = Root::open(&dir).with_context(|| format!("cannot open {}", dir.display()))?;
        let wanted: Vec<_> = ws
            .entries
            .iter()
            .filter(|e| e.kind != Kind::Dir)
            .filter_map(|e| Some((e.path.to_str()?.to_string(), e)))
            .collect();
        let chunk = wanted.len().div_ceil(HASH_THREADS).max(1);
        let files = std::thread::scope(|scope| {
            let workers: Vec<_> = wanted
                .chunks(chunk)
                .map(|part| scope.spawn(|| hash_part(&root, part)))
                .collect();
            let mut files = BTreeMap::new();
            for worker in workers {
                files.extend(worker.join().expect("a hashing thread does not panic"));
            }
            files
        });
        Ok(Base {
            head: git_head(&dir),
            files,
            confirmed: false,
            ..Base::empty("", &dir)
        })
    }

    /// Records this base for `session_id` in `state_dir`.
    pub fn save(&self, state_dir: &Path, session_id: &str) -> anyhow::Result<()> {
        Store::new(state_dir).save(session_id, self)
    }

    /// The base recorded for `session_id`, if this machine has one.
    pub fn load(state_dir: &Path, session_id: &str) -> anyhow::Result<Option<Base>> {
        Store::new(state_dir).load(session_id)
    }
}

fn hash_part(
    root: &Root,
    part: &[(String, &crate::client::upload::Entry)],
) -> Vec<(String, EntryKind)> {
    let mut files = Vec::with_capacity(part.len());
    for (path, entry) in part {
        let kind = match (&entry.kind, &entry.target) {
            // As uploaded: the scan may have rewritten a target to where it really leads.
            (Kind::Symlink, Some(target)) => target.to_str().map(|target| EntryKind::Symlink {
                target: target.to_string(),
            }),
            (Kind::File, _) => match root.local(path) {
                Ok(Local::Entry(kind @ EntryKind::File { .. })) => Some(kind),
                // Gone or changed kind since the scan: the upload did not carry it either.
                _ => None,
            },
            _ => None,
        };
        files.extend(kind.map(|kind| (path.clone(), kind)));
    }
    files
}

/// `git rev-parse HEAD` in `dir`, when it is in a repository with a commit.
pub(super) fn git_head(dir: &Path) -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--verify", "--quiet", "HEAD"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let head = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !head.is_empty()).then_some(head)
}

/// The sync state directory, `<state_dir>/sync`.
pub(super) struct Store {
    dir: PathBuf,
}

impl Store {
    pub(super) fn new(state_dir: &Path) -> Store {
        Store {
            dir: state_dir.join("sync"),
        }
    }

    /// Where the session's versions of conflicting files are kept.
    pub(super) fn conflicts(&self, session_id: &str) -> anyhow::Result<PathBuf> {
        let dir = self.conflicts_path(session_id)?;
        crate::private_dir::create(&dir)?;
        Ok(dir)
    }

    /// The same directory, not made.
    pub(super) fn conflicts_path(&self, session_id: &str) -> anyhow::Result<PathBuf> {
        Ok(self.dir.join(checked_id(session_id)?).join("conflicts"))
    }

    /// A temp file in the store, removed on drop (a bundle on its way to git).
    pub(super) fn temp_file(&self) -> anyhow::Result<tempfile::NamedTempFile> {
        crate::private_dir::create(&self.dir)?;
        tempfile::NamedTempFile::new_in(&self.dir)
            .with_context(|| format!("cannot create a temp file in {}", self.dir.display()))
    }

    /// Takes the session's lock, waiting for another client's round to end. Blocking; held
    /// until the file is closed.
    pub(super) fn lock(&self, session_id: &str) -> anyhow::Result<File> {
        crate::private_dir::create(&self.dir)?;
        let path = self.dir.join(format!("{}.lock", checked_id(session_id)?));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(file)
    }

    pub(super) fn load(&self, session_id: &str) -> anyhow::Result<Option<Base>> {
        let path = self.base_file(session_id)?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let base = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a base catty can read", path.display()))?;
        Ok(Some(base))
    }

    /// Replaces the base file atomically: a temp file (0600), fsync, rename.
    pub(super) fn save(&self, session_id: &str, base: &Base) -> anyhow::Result<()> {
        let path = self.base_file(session_id)?;
        let mut temp = self.temp_file()?;
        let write = serde_json::to_writer(std::io::BufWriter::new(&mut temp), base)
            .map_err(std::io::Error::from)
            .and_then(|()| temp.flush())
            .and_then(|()| temp.as_file().sync_all());
        write.with_context(|| format!("cannot write {}", path.display()))?;
        temp.persist(&path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(())
    }

    fn base_file(&self, session_id: &str) -> anyhow::Result<PathBuf> {
        crate::private_dir::create(&self.dir)?;
        Ok(self.dir.join(format!("{}.json", checked_id(session_id)?)))
    }
}

/// A session id as a file name: the daemon makes them, but a name with `/` or `..` would
/// lead elsewhere.
fn checked_id(session_id: &str) -> anyhow::Result<&str> {
    let fine = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if session_id.is_empty() || session_id.len() > 64 || !session_id.chars().all(fine) {
        bail!("{session_id:?} is not a session id");
    }
    Ok(session_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_round_trips_in_a_private_file() {
        let state = tempfile::tempdir().unwrap();
        let mut base = Base::empty("brave-tiger-1", Path::new("/x"));
        base.files
            .insert("l".into(), EntryKind::Symlink { target: "a".into() });
        base.conflicts.insert("gone".into(), None);
        base.save(state.path(), "s-1").unwrap();
        assert_eq!(Base::load(state.path(), "s-1").unwrap(), Some(base));
        assert_eq!(Base::load(state.path(), "s-2").unwrap(), None);
        let meta = std::fs::metadata(state.path().join("sync/s-1.json")).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
        assert_eq!(mode & 0o777, 0o600);
        assert!(Base::load(state.path(), "../s-1").is_err());
    }
}
