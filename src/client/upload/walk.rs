//! Which paths `catty new` uploads: what git would keep (ignore rules through the `ignore`
//! crate, plus tracked files that match a rule), minus the names SPEC section 6 always skips,
//! with symlinks checked to stay inside the workspace.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use ignore::WalkBuilder;

/// Directories skipped at any depth with all their contents, whatever the ignore files say.
const SKIPPED_DIRS: &[&str] = &["node_modules", "__pycache__", ".venv", "venv"];
/// Names skipped at any depth, whatever their kind (as a `.gitignore` line without `/`).
const SKIPPED_NAMES: &[&str] = &[".git", ".env", ".DS_Store"];
const SKIPPED_SUFFIXES: &[&str] = &[".pyc", ".log"];

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
    for found in walker(&root, in_repo).build() {
        match found {
            Ok(dent) if dent.depth() > 0 => scanner.walked(&dent),
            Ok(_) => {}
            Err(err) => scanner.ws.warnings.push(format!("skipped: {err}")),
        }
    }
    if in_repo {
        scanner.tracked();
    }
    let mut ws = scanner.ws;
    ws.entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(ws)
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

/// SPEC section 6's defaults, with `.gitignore` semantics: `node_modules/` is a directory
/// only (not a symlink to one), `*.log` matches any kind.
pub fn always_skipped(name: &OsStr, is_dir: bool) -> bool {
    let name = name.as_bytes();
    let is = |list: &[&str]| list.iter().any(|n| name == n.as_bytes());
    (is_dir && is(SKIPPED_DIRS))
        || is(SKIPPED_NAMES)
        || SKIPPED_SUFFIXES
            .iter()
            .any(|s| name.ends_with(s.as_bytes()))
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
    fn walked(&mut self, dent: &ignore::DirEntry) {
        if let Some(err) = dent.error() {
            // A .gitignore that could not be read or parsed: git would warn too.
            self.ws.warnings.push(format!("ignore rules: {err}"));
        }
        let Ok(rel) = dent.path().strip_prefix(self.root) else {
            return;
        };
        self.seen.insert(rel.to_owned());
        match dent.metadata() {
            Ok(meta) => self.add(rel, &meta),
            Err(err) => self.ws.warnings.push(format!("skipped: {err}")),
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
                self.add(&rel, &meta);
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
                self.add(dir, &meta);
            }
        }
    }

    fn add(&mut self, rel: &Path, meta: &Metadata) {
        let ft = meta.file_type();
        let (kind, target) = if ft.is_dir() {
            (Kind::Dir, None)
        } else if ft.is_symlink() {
            match link_target(self.root, rel) {
                Ok(target) => (Kind::Symlink, Some(target)),
                Err(why) => return self.warn(rel, &why),
            }
        } else if ft.is_file() {
            if let Err(err) = std::fs::File::open(self.root.join(rel)) {
                return self.warn(rel, &format!("cannot read it: {err}"));
            }
            (Kind::File, None)
        } else {
            let what = if ft.is_fifo() {
                "a named pipe"
            } else {
                "a special file"
            };
            return self.warn(
                rel,
                &format!("{what}; only files, directories and symlinks are uploaded"),
            );
        };
        self.push(rel, kind, meta, target);
    }

    fn push(&mut self, rel: &Path, kind: Kind, meta: &Metadata, target: Option<PathBuf>) {
        let size = match (&kind, &target) {
            (Kind::File, _) => meta.len(),
            (_, Some(target)) => target.as_os_str().len() as u64,
            _ => 0,
        };
        self.ws.entries.push(Entry {
            path: rel.to_owned(),
            kind,
            size,
            mode: meta.mode() & 0o7777,
            mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            target,
        });
    }

    fn warn(&mut self, rel: &Path, why: &str) {
        self.ws
            .warnings
            .push(format!("skipped {}: {why}", rel.display()));
    }
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

/// The target to store for the symlink at `rel`, or why it is skipped. A target that resolves
/// inside the workspace both lexically and on disk is kept as written; one that only gets
/// there through other symlinks, or is absolute, is rewritten to the relative path of where it
/// really leads (the runtime refuses links through links and absolute targets).
fn link_target(root: &Path, rel: &Path) -> Result<PathBuf, String> {
    let path = root.join(rel);
    let target = std::fs::read_link(&path).map_err(|err| format!("cannot read the link: {err}"))?;
    let dir = rel.parent().unwrap_or(Path::new(""));
    let lexical = resolve(dir, &target);
    match std::fs::canonicalize(&path) {
        Ok(real) => {
            let real = real
                .strip_prefix(root)
                .map_err(|_| format!("its target {} is outside the workspace", target.display()))?;
            let as_written = lexical.as_deref() == Some(real) && !through_link(root, dir, &target);
            if target.is_relative() && as_written {
                Ok(target)
            } else {
                Ok(relative(dir, real))
            }
        }
        // Dangling: kept when it would dangle the same way over there.
        Err(_) => match lexical {
            Some(_) if target.is_relative() && !through_link(root, dir, &target) => Ok(target),
            Some(_) => Err("a dangling link through an absolute path or another link".into()),
            None => Err(format!(
                "its target {} is outside the workspace",
                target.display()
            )),
        },
    }
}

/// `dir/target` with `.` and `..` applied lexically, relative to the root; `None` when it
/// leaves the root (or is absolute).
fn resolve(dir: &Path, target: &Path) -> Option<PathBuf> {
    let mut at: Vec<&OsStr> = dir.iter().collect();
    for part in target.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                at.pop()?;
            }
            Component::Normal(name) => at.push(name),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(at.iter().collect())
}

/// Whether following `target` from `dir` lexically would step on a symlink.
fn through_link(root: &Path, dir: &Path, target: &Path) -> bool {
    let mut at = root.join(dir);
    target.components().any(|part| {
        match part {
            Component::ParentDir => {
                at.pop();
            }
            Component::Normal(name) => at.push(name),
            _ => return false,
        }
        at.symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
    })
}

/// The relative path from directory `from` to `to` (both relative to the same root).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let common = from
        .iter()
        .zip(to.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let ups = from.iter().skip(common).map(|_| OsStr::new(".."));
    let path: PathBuf = ups.chain(to.iter().skip(common)).collect();
    if path.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        path
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

    #[test]
    fn lexical_resolution() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(resolve(&p("a/b"), &p("../c")), Some(p("a/c")));
        assert_eq!(resolve(&p("a"), &p("./../../c")), None);
        assert_eq!(resolve(&p(""), &p("/etc/passwd")), None);
        assert_eq!(resolve(&p(""), &p(".")), Some(p("")));
    }

    #[test]
    fn relative_paths() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(relative(&p("a/b"), &p("a/c/d")), p("../c/d"));
        assert_eq!(relative(&p(""), &p("x")), p("x"));
        assert_eq!(relative(&p("a"), &p("")), p(".."));
        assert_eq!(relative(&p("a"), &p("a")), p("."));
    }
}
