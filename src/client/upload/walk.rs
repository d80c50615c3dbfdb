//! Which paths `catty new` uploads: what git would keep (ignore rules through the `ignore`
//! crate, plus tracked files that match a rule), minus the names SPEC section 6 always skips,
//! with symlinks checked to stay inside the workspace.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use ignore::{WalkBuilder, WalkState};

use super::link::link_target;
use crate::protocol::workspace;

/// The paths to upload, sorted so that every directory comes before its contents.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    pub entries: Vec<Entry>,
    /// What was skipped and why (outside symlinks, unreadable paths); the caller prints them.
    pub warnings: Vec<String>,
}

impl Workspace {
    /// Bytes the archive's entries hold before compression (files and link targets).
    pub fn total_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// One path to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the workspace root; never empty, no `.` or `..`.
    pub path: PathBuf,
    pub kind: Kind,
    /// A file's length, a symlink target's length, 0 for a directory.
    pub size: u64,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub mtime: SystemTime,
    /// A symlink's target, relative, resolving inside the workspace.
    pub target: Option<PathBuf>,
}

/// The workspace root cannot be walked at all.
#[derive(Debug)]
pub struct ScanError {
    pub root: PathBuf,
    pub err: io::Error,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot read the directory {}: {}",
            self.root.display(),
            self.err
        )
    }
}

impl std::error::Error for ScanError {}

/// Lists what to upload from `root`. Unreadable paths and symlinks leaving the workspace are
/// skipped with a warning. Empty directories are kept (git drops them; they cost nothing and
/// tools may expect them).
pub fn scan(root: &Path) -> Result<Workspace, ScanError> {
    scan_counting(root, &|| {})
}

/// [`scan`], calling `found` for each file (or link) the walk meets, for a count on screen.
pub(crate) fn scan_counting(
    root: &Path,
    found: &(dyn Fn() + Sync),
) -> Result<Workspace, ScanError> {
    let root = std::fs::canonicalize(root)
        .and_then(|dir| match dir.is_dir() {
            true => Ok(dir),
            false => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )),
        })
        .map_err(|err| ScanError {
            root: root.to_owned(),
            err,
        })?;
    let in_repo = root.ancestors().any(|dir| dir.join(".git").exists());
    let mut scanner = Scanner {
        root: &root,
        ws: Workspace::default(),
        seen: HashSet::new(),
    };
    for walked in walk(&root, in_repo, found) {
        scanner.walked(walked);
    }
    if in_repo {
        scanner.tracked();
    }
    let mut ws = scanner.ws;
    ws.entries.sort_by(|a, b| a.path.cmp(&b.path));
    // The walk's threads report in no particular order.
    ws.warnings.sort();
    Ok(ws)
}

/// One path of the walk, examined on the walker's thread that found it.
#[derive(Default)]
struct Walked {
    /// A problem met there: ignore rules that could not be read, or the walk's own error.
    warning: Option<String>,
    /// The path relative to the root, and its entry or why it is skipped.
    path: Option<(PathBuf, Result<Entry, String>)>,
}

/// Walks `root` on several threads: most of a scan is a stat of each path and an open of each
/// file, which the cores share.
fn walk(root: &Path, in_repo: bool, counted: &(dyn Fn() + Sync)) -> Vec<Walked> {
    let (found, walked) = std::sync::mpsc::channel();
    walker(root, in_repo).build_parallel().run(|| {
        let found = found.clone();
        Box::new(move |dent| {
            if dent
                .as_ref()
                .is_ok_and(|d| d.file_type().is_some_and(|t| !t.is_dir()))
            {
                counted();
            }
            // Only fails once the receiver is gone, which outlives the walk.
            let _ = found.send(examine(root, dent));
            WalkState::Continue
        })
    });
    drop(found);
    walked.into_iter().collect()
}

/// Stats (and for a file, opens) what the walk found; the root itself contributes nothing.
fn examine(root: &Path, found: Result<ignore::DirEntry, ignore::Error>) -> Walked {
    let dent = match found {
        Ok(dent) if dent.depth() == 0 => return Walked::default(),
        Ok(dent) => dent,
        Err(err) => {
            let warning = Some(format!("skipped: {err}"));
            return Walked {
                warning,
                path: None,
            };
        }
    };
    // A .gitignore that could not be read or parsed: git would warn too.
    let warning = dent.error().map(|err| format!("ignore rules: {err}"));
    let path = dent.path().strip_prefix(root).ok().map(|rel| {
        let entry = match dent.metadata() {
            Ok(meta) => entry(root, rel, &meta),
            Err(err) => Err(format!("skipped: {err}")),
        };
        (rel.to_owned(), entry)
    });
    Walked { warning, path }
}

/// The `ignore` setup that matched git in every case of reference/crates.md section 4. Outside
/// a repository, git applies nothing; we still honour `.gitignore` files from `root` down.
fn walker(root: &Path, in_repo: bool) -> WalkBuilder {
    let mut builder = WalkBuilder::new(root);
    builder
        .standard_filters(true)
        .hidden(false)
        .ignore(false)
        .parents(in_repo)
        .require_git(in_repo)
        .follow_links(false)
        .filter_entry(|e| {
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            !always_skipped(e.file_name(), is_dir)
        });
    builder
}

/// SPEC section 6's defaults ([`workspace::always_skipped`]) for a file name.
pub fn always_skipped(name: &OsStr, is_dir: bool) -> bool {
    workspace::always_skipped(name.as_bytes(), is_dir)
}

/// Whether the defaults skip a (non-directory) path: by its name or any directory above it.
fn skipped_path(rel: &Path) -> bool {
    let mut parts = rel.iter().rev();
    let name = parts.next();
    name.is_some_and(|n| always_skipped(n, false)) || parts.any(|dir| always_skipped(dir, true))
}

struct Scanner<'a> {
    root: &'a Path,
    ws: Workspace,
    /// Paths the walker produced, so tracked files are added only once.
    seen: HashSet<PathBuf>,
}

impl Scanner<'_> {
    fn walked(&mut self, walked: Walked) {
        self.ws.warnings.extend(walked.warning);
        if let Some((rel, entry)) = walked.path {
            self.seen.insert(rel);
            self.push(entry);
        }
    }

    /// Adds what git tracks although an ignore rule matches it (`git add -f`): git keeps it.
    fn tracked(&mut self) {
        for rel in tracked_files(self.root) {
            if self.seen.contains(&rel) || skipped_path(&rel) {
                continue;
            }
            // Submodules are directories the walker already handled; deleted files are gone.
            if let Ok(meta) = std::fs::symlink_metadata(self.root.join(&rel))
                && !meta.is_dir()
            {
                self.add_parents(&rel);
                self.push(entry(self.root, &rel, &meta));
            }
        }
    }

    /// The directories above a tracked file inside an ignored one, so they keep their mode.
    fn add_parents(&mut self, rel: &Path) {
        for dir in rel
            .ancestors()
            .skip(1)
            .filter(|d| !d.as_os_str().is_empty())
        {
            if self.seen.insert(dir.to_owned())
                && let Ok(meta) = std::fs::symlink_metadata(self.root.join(dir))
            {
                self.push(entry(self.root, dir, &meta));
            }
        }
    }

    /// Keeps an entry, or the warning saying why the path is skipped.
    fn push(&mut self, entry: Result<Entry, String>) {
        match entry {
            Ok(entry) => self.ws.entries.push(entry),
            Err(warning) => self.ws.warnings.push(warning),
        }
    }
}

/// What to upload for `rel`, or a warning saying why it is skipped.
fn entry(root: &Path, rel: &Path, meta: &Metadata) -> Result<Entry, String> {
    let skipped = |why: &str| format!("skipped {}: {why}", rel.display());
    let ft = meta.file_type();
    let (kind, target) = if ft.is_dir() {
        (Kind::Dir, None)
    } else if ft.is_symlink() {
        let target = link_target(root, rel).map_err(|why| skipped(&why))?;
        (Kind::Symlink, Some(target))
    } else if ft.is_file() {
        if let Err(err) = std::fs::File::open(root.join(rel)) {
            return Err(skipped(&format!("cannot read it: {err}")));
        }
        (Kind::File, None)
    } else {
        let what = if ft.is_fifo() {
            "a named pipe"
        } else {
            "a special file"
        };
        return Err(skipped(&format!(
            "{what}; only files, directories and symlinks are uploaded"
        )));
    };
    let size = match (&kind, &target) {
        (Kind::File, _) => meta.len(),
        (_, Some(target)) => target.as_os_str().len() as u64,
        _ => 0,
    };
    Ok(Entry {
        path: rel.to_owned(),
        kind,
        size,
        mode: meta.mode() & 0o7777,
        mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        target,
    })
}

/// `git ls-files --cached`: empty when git is missing or fails (the walk alone is then used).
fn tracked_files(root: &Path) -> Vec<PathBuf> {
    let out = Command::new("git")
        .args(["ls-files", "--cached", "-z"])
        .current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => out
            .stdout
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(OsStr::from_bytes(p)))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        for (name, is_dir, skipped) in [
            ("node_modules", true, true),
            ("node_modules", false, false),
            ("venv", true, true),
            (".git", false, true),
            (".env", false, true),
            (".env.local", false, false),
            ("x.pyc", false, true),
            ("debug.log", true, true),
            (".log", false, true),
            ("log", false, false),
            (".DS_Store", false, true),
            (".editorconfig", false, false),
        ] {
            assert_eq!(
                always_skipped(OsStr::new(name), is_dir),
                skipped,
                "{name} dir={is_dir}"
            );
        }
    }
}
