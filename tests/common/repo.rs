//! Workspaces on disk for the upload tests, and git as the oracle of what an upload keeps: the
//! files git lists (tracked, plus untracked and not ignored) minus catty's default skips.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Runs `git ARGS` in `dir`, which must succeed; its stdout.
pub fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Writes `data` to `root/rel`, making the directories on the way.
pub fn write_file(root: &Path, rel: impl AsRef<Path>, data: impl AsRef<[u8]>) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// The tests' own reading of SPEC section 6's defaults, for a path from `git ls-files`.
fn default_skipped(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let (name, dirs) = parts.split_last().unwrap();
    let any_kind = |n: &str| {
        [".git", ".env", ".DS_Store"].contains(&n) || n.ends_with(".pyc") || n.ends_with(".log")
    };
    let dir_only = |n: &str| ["node_modules", "__pycache__", ".venv", "venv"].contains(&n);
    any_kind(name) || dirs.iter().any(|d| any_kind(d) || dir_only(d))
}

/// What git keeps in `dir` (tracked, plus untracked and not ignored), minus the defaults.
pub fn git_oracle(dir: &Path) -> BTreeSet<String> {
    let out = git(
        dir,
        &[
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "-z",
        ],
    );
    out.split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8(p.to_vec()).unwrap())
        .filter(|p| !default_skipped(p))
        .collect()
}
