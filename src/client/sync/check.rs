//! What a runtime's manifest may ask for, judged before anything is written (SPEC section 9,
//! last bullet): relative `/`-separated paths with no `.`, `..` or empty component, nothing in
//! `.git/` or excluded by the upload defaults, bounded sizes, well-formed hashes, and symlinks
//! that stay inside the directory.

use std::collections::{BTreeMap, BTreeSet};

use crate::protocol::sync::{EntryKind, MANIFEST_MAX_ENTRIES, Manifest, SYNC_FILE_MAX_BYTES};
use crate::protocol::workspace::always_skipped;

/// Longest path and symlink target accepted (Linux's `PATH_MAX`).
const PATH_MAX_BYTES: usize = 4096;
/// Longest path component accepted (Linux's `NAME_MAX`).
const NAME_MAX_BYTES: usize = 255;

/// A manifest split into what may be applied and what is refused.
#[derive(Debug, Default)]
pub(super) struct Checked {
    pub entries: BTreeMap<String, EntryKind>,
    /// Refused paths, as sent: the round leaves them alone (neither written nor deleted).
    pub refused: BTreeSet<String>,
    /// One line per refusal, naming the path and why.
    pub lines: Vec<String>,
}

/// Splits `manifest`; `Err` refuses it whole (too many entries).
pub(super) fn check(manifest: Manifest) -> Result<Checked, String> {
    if manifest.entries.len() > MANIFEST_MAX_ENTRIES {
        return Err(format!(
            "the session's manifest lists {} entries, over the limit of {MANIFEST_MAX_ENTRIES}",
            manifest.entries.len()
        ));
    }
    let mut checked = Checked::default();
    let refuse = |checked: &mut Checked, path: &str, why: String| {
        checked
            .lines
            .push(format!("refused {} from the session: {why}", shown(path)));
        checked.refused.insert(path.to_string());
    };
    let mut seen = BTreeSet::new();
    // Every path listed, refused or not: a file below a refused symlink is refused too.
    let listed: BTreeSet<String> = manifest.entries.iter().map(|e| e.path.clone()).collect();
    for entry in manifest.entries {
        if !seen.insert(entry.path.clone()) {
            checked.entries.remove(&entry.path);
            refuse(&mut checked, &entry.path, "it is listed twice".into());
            continue;
        }
        let problem = path_problem(&entry.path).or_else(|| kind_problem(&entry.path, &entry.kind));
        match problem {
            Some(why) => refuse(&mut checked, &entry.path, why),
            None => {
                checked.entries.insert(entry.path, entry.kind);
            }
        }
    }
    // A path below a file or symlink of the same manifest would be written through it.
    let nested: Vec<(String, String)> = checked
        .entries
        .keys()
        .filter_map(|path| {
            let parent = ancestors(path).find(|dir| listed.contains(*dir))?;
            Some((path.clone(), parent.to_string()))
        })
        .collect();
    for (path, parent) in nested {
        checked.entries.remove(&path);
        let why = format!("{} is not a directory in the session", shown(&parent));
        refuse(&mut checked, &path, why);
    }
    Ok(checked)
}

/// Why `path` cannot be written, if it cannot.
pub(super) fn path_problem(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("an empty path".into());
    }
    if path.starts_with('/') {
        return Some("an absolute path".into());
    }
    if path.contains('\0') {
        return Some("a NUL byte in the path".into());
    }
    if path.len() > PATH_MAX_BYTES {
        return Some(format!("a path longer than {PATH_MAX_BYTES} bytes"));
    }
    let parts: Vec<&str> = path.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let is_dir = i + 1 < parts.len();
        let why = match *part {
            "" => "an empty path component",
            "." | ".." => "a . or .. component",
            _ if part.eq_ignore_ascii_case(".git") => "a path inside .git/ (git writes there)",
            _ if part.len() > NAME_MAX_BYTES => "a name longer than 255 bytes",
            _ if always_skipped(part.as_bytes(), is_dir) => "a name the upload defaults exclude",
            _ => continue,
        };
        return Some(why.into());
    }
    None
}

fn kind_problem(path: &str, kind: &EntryKind) -> Option<String> {
    match kind {
        EntryKind::File { size, sha256, .. } => {
            if *size > SYNC_FILE_MAX_BYTES {
                return Some(format!(
                    "listed at {size} bytes, over the limit of {SYNC_FILE_MAX_BYTES}"
                ));
            }
            let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
            (sha256.len() != 64 || !sha256.bytes().all(hex))
                .then(|| "a malformed sha256".to_string())
        }
        EntryKind::Symlink { target } => target_problem(path, target),
    }
}

/// Why the symlink at `path` may not point to `target`: it must be relative and, resolved
/// lexically from the link's own directory, stay inside and out of `.git/`.
fn target_problem(path: &str, target: &str) -> Option<String> {
    if target.is_empty() || target.contains('\0') || target.len() > PATH_MAX_BYTES {
        return Some("a symlink with an empty, NUL or overlong target".into());
    }
    if target.starts_with('/') {
        return Some(format!("a symlink to an absolute path ({})", shown(target)));
    }
    let mut at: Vec<&str> = path.split('/').collect();
    at.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if at.pop().is_none() {
                    return Some(format!(
                        "a symlink pointing outside the directory ({})",
                        shown(target)
                    ));
                }
            }
            _ => at.push(part),
        }
    }
    at.iter()
        .any(|part| part.eq_ignore_ascii_case(".git"))
        .then(|| format!("a symlink pointing into .git/ ({})", shown(target)))
}

/// The directories above `path`, nearest first (`a/b/c` → `a/b`, `a`).
pub(super) fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = path;
    std::iter::from_fn(move || {
        let (dir, _) = rest.rsplit_once('/')?;
        rest = dir;
        Some(dir)
    })
}

/// A path as printed: as is when it is plain, quoted with escapes when it holds spaces or
/// control characters (a hostile name must not move the user's cursor or colour the screen).
pub(crate) fn shown(path: &str) -> String {
    match path.chars().any(|c| c.is_control() || c.is_whitespace()) {
        true => format!("{path:?}"),
        false => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::sync::ManifestEntry;

    fn file(path: &str, size: u64) -> ManifestEntry {
        let sha256 = "0".repeat(64);
        let kind = EntryKind::File {
            executable: false,
            size,
            sha256,
        };
        ManifestEntry {
            path: path.into(),
            kind,
        }
    }

    fn link(path: &str, target: &str) -> ManifestEntry {
        let target = target.into();
        ManifestEntry {
            path: path.into(),
            kind: EntryKind::Symlink { target },
        }
    }

    fn refused(entries: Vec<ManifestEntry>) -> BTreeSet<String> {
        let manifest = Manifest {
            generation: 1,
            entries,
            head: None,
        };
        check(manifest).unwrap().refused
    }

    #[test]
    fn bad_paths_are_refused() {
        for bad in [
            "",
            "/etc/x",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/",
            ".git/hooks/pre-commit",
            "sub/.GIT/config",
            "node_modules/x",
            "a\0b",
            ".env",
        ] {
            assert!(path_problem(bad).is_some(), "{bad:?}");
        }
        for good in [
            "a",
            "src/main.rs",
            ".gitignore",
            "a..b",
            "node_modules",
            "x.git",
        ] {
            assert_eq!(path_problem(good), None, "{good:?}");
        }
    }

    #[test]
    fn symlinks_stay_inside() {
        assert_eq!(target_problem("a/l", "../b"), None);
        assert_eq!(target_problem("a/b/l", "../../c/./d"), None);
        assert!(target_problem("l", "/etc").is_some());
        assert!(target_problem("a", "../../outside").is_some());
        assert!(target_problem("a/l", "../../x").is_some());
        assert!(target_problem("l", ".git/hooks").is_some());
        assert!(target_problem("l", "").is_some());
    }

    #[test]
    fn sizes_hashes_duplicates_and_nesting() {
        let mut bad_hash = file("h", 1);
        if let EntryKind::File { sha256, .. } = &mut bad_hash.kind {
            *sha256 = "AB".repeat(32);
        }
        let all = refused(vec![
            file("big", SYNC_FILE_MAX_BYTES + 1),
            bad_hash,
            file("twice", 1),
            file("twice", 2),
            link("link", "sub"),
            file("link/passwd", 1),
            file("ok", SYNC_FILE_MAX_BYTES),
        ]);
        let expected = ["big", "h", "twice", "link/passwd"];
        assert_eq!(all, expected.iter().map(|s| s.to_string()).collect());
    }

    #[test]
    fn too_many_entries_refuse_the_manifest() {
        let manifest = Manifest {
            generation: 1,
            entries: vec![file("a", 1); MANIFEST_MAX_ENTRIES + 1],
            head: None,
        };
        assert!(check(manifest).is_err());
    }

    #[test]
    fn hostile_names_are_escaped() {
        assert_eq!(shown("src/x.rs"), "src/x.rs");
        assert_eq!(shown("a\x1b[2Jb"), r#""a\u{1b}[2Jb""#);
        assert_eq!(shown("a b"), r#""a b""#);
    }
}
