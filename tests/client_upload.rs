//! The workspace upload: git itself is the oracle for which paths are kept (here), archives go
//! through the runtime's own unpacker and uploads to a real `catty exec` (`archive.rs`), plus
//! the size check and the memory bound of streaming (`size.rs`) and measurements
//! (`measure.rs`).

mod archive;
mod measure;
mod size;

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::repo::{git, git_oracle, write_file};
use crate::common::run_alone;
use catty::client::upload::{self, Kind, Workspace};

const MIB: u64 = 1024 * 1024;

/// Scanned files and symlinks (git lists no directories).
fn non_dirs(ws: &Workspace) -> BTreeSet<String> {
    let paths = ws.entries.iter().filter(|e| e.kind != Kind::Dir);
    paths
        .map(|e| e.path.to_str().unwrap().to_string())
        .collect()
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

/// A repository exercising every rule kind of reference/crates.md section 4, the defaults,
/// and symlinks of each sort.
fn git_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q"]);
    git(root, &["config", "user.email", "test@example.com"]);
    git(root, &["config", "user.name", "test"]);
    let rules = "*.tmp\n!keep.tmp\n/root_only.txt\nbuild/\n**/gen/**\nsecret/\n!secret/allowed.txt\n\
                 ignored_dir/\ntracked_ignored.txt\ndocs/*.draft\n";
    write_file(root, ".gitignore", rules.as_bytes());
    write_file(root, ".git/info/exclude", b"info_excluded.txt\n");
    write_file(root, "sub/.gitignore", b"*.dat\n!important.dat\n");
    write_file(root, "ignored_dir/.gitignore", b"!*\n");
    let paths = "README.md src/main.rs src/build build/out.o build/tracked.txt a.tmp keep.tmp \
                 deep/x/b.tmp deep/x/keep.tmp root_only.txt sub/root_only.txt x/gen/y/z.txt gen.txt \
                 secret/allowed.txt secret/s.txt ignored_dir/inner/o.txt tracked_ignored.txt \
                 info_excluded.txt docs/a.draft docs/sub/b.draft sub/a.dat sub/important.dat \
                 sub/deeper/b.dat sub/deeper/important.dat node_modules/x.js .venv/bin/python \
                 venv/lib.py sub/venv/x.py .env a/.env a/.env.example __pycache__/m.pyc x.pyc \
                 debug.log logs.log/inner.txt .DS_Store sub/.DS_Store .editorconfig";
    for path in paths.split_whitespace() {
        write_file(root, path, format!("content of {path}\n").as_bytes());
    }
    write_file(root, "exec.sh", b"#!/bin/sh\necho hi\n");
    std::fs::set_permissions(root.join("exec.sh"), PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::create_dir(root.join("empty")).unwrap();
    symlink("src/main.rs", root.join("link_in")).unwrap();
    symlink("src", root.join("link_dir")).unwrap();
    symlink("link_in", root.join("link_chain")).unwrap();
    symlink(root.join("README.md"), root.join("link_abs")).unwrap();
    symlink("missing.txt", root.join("dangling")).unwrap();
    symlink("/etc/hostname", root.join("link_out")).unwrap();
    symlink("../../outside.txt", root.join("sub/link_up")).unwrap();
    let fifo = Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .unwrap();
    assert!(fifo.success());
    // Tracked although ignored: git keeps them. Tracked .env: the defaults still win.
    git(
        root,
        &[
            "add",
            "-f",
            "tracked_ignored.txt",
            "build/tracked.txt",
            "a/.env",
            "README.md",
        ],
    );
    git(root, &["commit", "-q", "-m", "init"]);
    dir
}

#[test]
fn scan_keeps_what_git_keeps() {
    let dir = git_fixture();
    let root = dir.path();
    let ws = upload::scan(root).unwrap();
    let oracle = git_oracle(root);
    // The fixture means what it says about git (so the comparison below is not vacuous).
    let kept_paths = "tracked_ignored.txt build/tracked.txt src/build keep.tmp deep/x/keep.tmp \
                  sub/root_only.txt docs/sub/b.draft sub/important.dat sub/deeper/important.dat \
                  .editorconfig a/.env.example link_dir link_out";
    for kept in kept_paths.split_whitespace() {
        assert!(oracle.contains(kept), "git keeps {kept}");
    }
    let gone_paths = "secret/allowed.txt ignored_dir/inner/o.txt info_excluded.txt x/gen/y/z.txt \
                  build/out.o docs/a.draft root_only.txt a/.env fifo";
    for gone in gone_paths.split_whitespace() {
        assert!(!oracle.contains(gone), "git or the defaults drop {gone}");
    }
    let outside = set(&["link_out", "sub/link_up"]);
    let expected: BTreeSet<String> = oracle.difference(&outside).cloned().collect();
    assert_eq!(non_dirs(&ws), expected);

    let find = |p: &str| ws.entries.iter().find(|e| e.path == Path::new(p)).unwrap();
    for (link, target) in [
        ("link_in", "src/main.rs"),
        ("link_dir", "src"),
        ("link_chain", "src/main.rs"),
        ("link_abs", "README.md"),
        ("dangling", "missing.txt"),
    ] {
        assert_eq!(find(link).kind, Kind::Symlink, "{link}");
        assert_eq!(
            find(link).target.as_deref(),
            Some(Path::new(target)),
            "{link}"
        );
    }
    assert_eq!(find("exec.sh").mode, 0o755);
    assert_eq!(find("empty").kind, Kind::Dir);
    let warnings = ws.warnings.join("\n");
    for warned in ["link_out", "sub/link_up", "fifo"] {
        assert!(
            warnings.contains(warned),
            "a warning names {warned}: {warnings}"
        );
    }
    assert_eq!(ws.warnings.len(), 3, "{warnings}");
}

/// The user's excludes file (`core.excludesFile` in ~/.gitconfig) applies like git's. HOME is
/// per process, so the comparison runs in a child: this test binary, run again.
#[test]
fn the_global_excludes_file_applies() {
    let (home, repo) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let excludes = home.path().join("my-excludes");
    std::fs::write(&excludes, "*.secret\n").unwrap();
    let config = format!("[core]\n\texcludesFile = {}\n", excludes.display());
    std::fs::write(home.path().join(".gitconfig"), config).unwrap();
    git(repo.path(), &["init", "-q"]);
    for path in ["a.secret", "b.txt", "sub/c.secret"] {
        write_file(repo.path(), path, b"x");
    }
    run_alone("client_upload::global_excludes_child", |child| {
        child
            .env("HOME", home.path())
            .env("CATTY_TEST_REPO", repo.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("GIT_CONFIG_GLOBAL");
    });
}

#[test]
#[ignore = "run by the_global_excludes_file_applies with its own HOME"]
fn global_excludes_child() {
    let repo = PathBuf::from(std::env::var_os("CATTY_TEST_REPO").expect("run by the parent"));
    let ws = upload::scan(&repo).unwrap();
    assert_eq!(git_oracle(&repo), set(&["b.txt"]));
    assert_eq!(non_dirs(&ws), set(&["b.txt"]));
}

#[test]
fn scan_from_a_subdirectory_applies_the_repository_rules() {
    let dir = git_fixture();
    let sub = dir.path().join("sub");
    let ws = upload::scan(&sub).unwrap();
    let expected: BTreeSet<String> = git_oracle(&sub)
        .into_iter()
        .filter(|p| p != "link_up")
        .collect();
    assert!(expected.contains("root_only.txt") && expected.contains("deeper/important.dat"));
    assert_eq!(non_dirs(&ws), expected);
}

#[test]
fn outside_a_repository_gitignore_files_still_apply() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert!(
        !root.ancestors().any(|d| d.join(".git").exists()),
        "the temp dir is in no repo"
    );
    write_file(root, ".gitignore", b"*.tmp\nbuild/\n/top.txt\n");
    write_file(root, "sub/.gitignore", b"!b.tmp\n");
    for path in [
        "a.tmp",
        "keep.txt",
        "build/o.txt",
        "src/build",
        "top.txt",
        "sub/top.txt",
        "sub/b.tmp",
        "node_modules/m.js",
        ".env",
        "x.log",
        ".hidden",
        "q/__pycache__/c.pyc",
    ] {
        write_file(root, path, b"x");
    }
    let ws = upload::scan(root).unwrap();
    let expected = set(&[
        ".gitignore",
        "keep.txt",
        "src/build",
        "sub/top.txt",
        "sub/.gitignore",
        "sub/b.tmp",
        ".hidden",
    ]);
    assert_eq!(non_dirs(&ws), expected);
    assert!(ws.warnings.is_empty(), "{:?}", ws.warnings);
}

fn random_file(path: &Path, bytes: u64, seed: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let (mut x, mut left, mut buf) = (seed | 1, bytes, vec![0u8; MIB as usize]);
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(MIB) as usize;
        out.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    out.flush().unwrap();
}
