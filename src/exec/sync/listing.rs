//! What sync-back lists: every file and symlink git would track in the workspace (its ignore
//! files from the root down, `.git/info/exclude`, and tracked files even when ignored) minus
//! the defaults of `protocol::workspace` and `.git`. The upload's walk applies the same rules
//! on the client; this one also names the directories it looked into, for the watcher.

use std::collections::HashSet;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use ignore::WalkBuilder;

use super::SyncError;
use super::hashes::Stamp;
use crate::protocol::sync::MANIFEST_MAX_ENTRIES;
use crate::protocol::workspace::always_skipped;

/// What a walk found.
#[derive(Debug, Default)]
pub(super) struct Listing {
    /// Files and symlinks, sorted by path.
    pub(super) found: Vec<Found>,
    /// Every directory the listing looks into, `""` for the root, sorted.
    pub(super) dirs: Vec<String>,
}

#[derive(Debug)]
pub(super) struct Found {
    /// Relative, `/`-separated, clean ([`is_clean`]).
    pub(super) path: String,
    pub(super) what: What,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum What {
    /// A regular file, as `lstat` saw it.
    File(Stamp),
    /// A symlink and its target as stored.
    Symlink(String),
}

/// Lists `root`. `tracked` is `git ls-files -z`'s output (empty outside a repository).
/// Names that are not UTF-8 are left out, and so are fifos, sockets and devices.
pub(super) fn list(root: &Path, tracked: &[u8]) -> Result<Listing, SyncError> {
    let io = |err| SyncError::io(root, err);
    if !std::fs::symlink_metadata(root).map_err(io)?.is_dir() {
        return Err(io(std::io::ErrorKind::NotADirectory.into()));
    }
    let mut listing = Listing::default();
    for dent in walker(root).build() {
        let dent = match dent {
            Ok(dent) => dent,
            Err(err) => {
                tracing::debug!("sync listing of {}: {err}", root.display());
                continue;
            }
        };
        let Some(rel) = dent.path().strip_prefix(root).ok().and_then(Path::to_str) else {
            continue;
        };
        if dent.file_type().is_some_and(|t| t.is_dir()) {
            listing.dirs.push(rel.to_owned());
        } else if let Some(found) = dent.metadata().ok().and_then(|m| found(root, rel, &m)) {
            listing.found.push(found);
            if listing.found.len() > MANIFEST_MAX_ENTRIES {
                return Err(SyncError::TooManyEntries(root.to_owned()));
            }
        }
    }
    add_tracked(root, tracked, &mut listing);
    if listing.found.len() > MANIFEST_MAX_ENTRIES {
        return Err(SyncError::TooManyEntries(root.to_owned()));
    }
    listing.found.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    listing.dirs.sort_unstable();
    listing.dirs.dedup();
    Ok(listing)
}

/// The `ignore` walk that matches git: ignore files apply with or without a repository,
/// hidden files are kept, links are not followed, and the defaults prune whole subtrees.
fn walker(root: &Path) -> WalkBuilder {
    let mut builder = WalkBuilder::new(root);
    builder
        .standard_filters(true)
        .hidden(false)
        .ignore(false)
        .parents(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|e| {
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            e.file_name().to_str().is_some() && !always_skipped(e.file_name().as_bytes(), is_dir)
        });
    builder
}

/// The entry for the file or symlink at `rel`; `None` for other kinds and for a symlink
/// whose target is not UTF-8.
fn found(root: &Path, rel: &str, meta: &Metadata) -> Option<Found> {
    let kind = meta.file_type();
    let what = if kind.is_file() {
        What::File(Stamp::of(meta))
    } else if kind.is_symlink() {
        let target = std::fs::read_link(root.join(rel)).ok()?;
        What::Symlink(target.into_os_string().into_string().ok()?)
    } else {
        return None;
    };
    Some(Found {
        path: rel.to_owned(),
        what,
    })
}

/// Adds what git tracks although an ignore rule matches it (`git add -f`): git keeps it. Only
/// through real directories: a tracked path under a directory since replaced by a symlink is
/// not followed out.
fn add_tracked(root: &Path, tracked: &[u8], listing: &mut Listing) {
    if tracked.is_empty() {
        return;
    }
    let seen: HashSet<&str> = listing.found.iter().map(|f| f.path.as_str()).collect();
    let mut real_dirs: HashSet<String> = listing.dirs.iter().cloned().collect();
    let mut extra = Vec::new();
    for rel in tracked
        .split(|&b| b == 0)
        .filter_map(|p| std::str::from_utf8(p).ok())
    {
        if rel.is_empty() || seen.contains(rel) || !is_clean(rel) || skipped_path(rel) {
            continue;
        }
        let parents: Vec<&str> = rel.match_indices('/').map(|(i, _)| &rel[..i]).collect();
        if !parents
            .iter()
            .all(|dir| real_dir(root, dir, &mut real_dirs))
        {
            continue;
        }
        if let Some(found) = std::fs::symlink_metadata(root.join(rel))
            .ok()
            .and_then(|meta| found(root, rel, &meta))
        {
            extra.push(found);
            listing.dirs.extend(parents.iter().map(|d| d.to_string()));
        }
    }
    listing.found.extend(extra);
}

/// Whether `dir` (relative) is a directory and not a symlink, remembering the ones that are.
fn real_dir(root: &Path, dir: &str, known: &mut HashSet<String>) -> bool {
    if known.contains(dir) {
        return true;
    }
    let real = std::fs::symlink_metadata(root.join(dir)).is_ok_and(|m| m.is_dir());
    if real {
        known.insert(dir.to_owned());
    }
    real
}

/// Whether the defaults skip a (non-directory) path: by its name or a directory above it.
fn skipped_path(rel: &str) -> bool {
    let mut parts = rel.rsplit('/');
    let name = parts.next().unwrap_or_default();
    always_skipped(name.as_bytes(), false) || parts.any(|dir| always_skipped(dir.as_bytes(), true))
}

/// Whether `path` is relative and `/`-separated with no empty, `.` or `..` component (and no
/// NUL): the only paths sync-back names or reads.
pub(super) fn is_clean(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\0')
        && path.split('/').all(|c| !matches!(c, "" | "." | ".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        for good in ["a", "a/b.txt", ".hidden/x", "a..b", "..a/b"] {
            assert!(is_clean(good), "{good}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "./a", "a/./b", "..", "a/../b", "a\0b",
        ] {
            assert!(!is_clean(bad), "{bad:?}");
        }
    }

    #[test]
    fn defaults_skip_a_path_by_its_name_or_a_directory_above() {
        assert!(skipped_path("a/node_modules/x.js"));
        assert!(skipped_path("debug.log"));
        assert!(skipped_path("sub/.git/config"));
        assert!(!skipped_path("node_modules"), "a file of that name");
        assert!(!skipped_path("src/main.rs"));
    }

    #[test]
    fn the_walk_applies_ignore_files_without_a_repository() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (rel, data) in [
            (".gitignore", "out/\n*.tmp\n"),
            ("src/a.rs", ""),
            ("out/b", ""),
            ("x.tmp", ""),
            ("node_modules/m.js", ""),
            (".hidden", ""),
        ] {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, data).unwrap();
        }
        std::os::unix::fs::symlink("src/a.rs", root.join("link")).unwrap();
        let listing = list(root, b"").unwrap();
        let paths: Vec<&str> = listing.found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, [".gitignore", ".hidden", "link", "src/a.rs"]);
        assert_eq!(listing.found[2].what, What::Symlink("src/a.rs".into()));
        assert_eq!(listing.dirs, ["", "src"]);
    }
}
