//! The workspace upload: git itself is the oracle for which paths are kept, archives go
//! through the runtime's own unpacker, uploads go to a real `catty exec`, plus the size check
//! and the memory bound of streaming.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use crate::common::repo::{git, git_oracle, write_file};
use crate::common::{DEADLINE, HEAVY, Runtime, TOKEN, run_alone};
use catty::client::upload::{self, ArchiveError, Kind, SizeError, UploadError, Workspace};
use catty::exec::unpack;
use catty::protocol::UPLOAD_LIMIT_BYTES;
use tokio::io::AsyncReadExt;

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

/// 2001-02-03 04:05:07 UTC: an odd second, which DOS time cannot hold.
fn fixed_mtime() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(981_173_107)
}

fn set_mtime(path: &Path, mtime: SystemTime) {
    std::fs::File::open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

/// Files of every mode and size class, odd names, links, empty and private directories.
fn round_trip_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_file(root, "exec.sh", b"#!/bin/sh\necho hi\n");
    write_file(root, "private.txt", b"secret\n");
    write_file(
        root,
        "src/lib.rs",
        b"pub fn f() {}\n".repeat(1000).as_slice(),
    );
    write_file(root, "empty.txt", b"");
    write_file(root, "ünï cödé.txt", b"utf-8\n");
    write_file(root, OsStr::from_bytes(b"raw\xffname.txt"), b"not utf-8\n");
    random_file(&root.join("big.bin"), 3 * MIB + 12_345, 7);
    std::fs::create_dir_all(root.join("empty_dir")).unwrap();
    std::fs::create_dir_all(root.join("private_dir")).unwrap();
    symlink("src/lib.rs", root.join("link")).unwrap();
    symlink("src", root.join("dirlink")).unwrap();
    // Lexically src/lib.rs, and so on disk too, but through another link: rewritten, since the
    // runtime refuses links that pass through links.
    std::fs::create_dir(root.join("sib_real")).unwrap();
    symlink("sib_real", root.join("sib_link")).unwrap();
    symlink("sib_link/../src/lib.rs", root.join("via")).unwrap();
    let mode = |p: &str, m: u32| {
        std::fs::set_permissions(root.join(p), PermissionsExt::from_mode(m)).unwrap();
    };
    mode("exec.sh", 0o755);
    mode("private.txt", 0o600);
    mode("private_dir", 0o700);
    for entry in walk_tree(root).keys().rev() {
        if !root.join(entry).is_symlink() {
            set_mtime(&root.join(entry), fixed_mtime());
        }
    }
    dir
}

/// Every path under `root` (not following links), deepest last.
fn walk_tree(root: &Path) -> BTreeMap<PathBuf, std::fs::Metadata> {
    let mut found = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(root.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let path = rel.join(entry.file_name());
            let meta = std::fs::symlink_metadata(root.join(&path)).unwrap();
            if meta.is_dir() {
                stack.push(path.clone());
            }
            found.insert(path, meta);
        }
    }
    found
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

/// Asserts that `copy` holds exactly the scanned entries of `original`, with their contents,
/// modes, link targets and mtimes (to DOS time's 2 seconds).
fn assert_same_tree(ws: &Workspace, original: &Path, copy: &Path) {
    let tree = walk_tree(copy);
    let paths: BTreeSet<&PathBuf> = ws.entries.iter().map(|e| &e.path).collect();
    assert_eq!(tree.keys().collect::<BTreeSet<_>>(), paths);
    for entry in &ws.entries {
        let meta = &tree[&entry.path];
        let (from, to) = (original.join(&entry.path), copy.join(&entry.path));
        match entry.kind {
            Kind::Symlink => {
                assert!(meta.is_symlink(), "{}", entry.path.display());
                let target = std::fs::read_link(&to).unwrap();
                assert_eq!(Some(target), entry.target, "{}", entry.path.display());
                continue;
            }
            Kind::Dir => assert!(meta.is_dir()),
            Kind::File => assert!(std::fs::read(&to).unwrap() == std::fs::read(&from).unwrap()),
        }
        assert_eq!(meta.mode() & 0o7777, entry.mode, "{}", entry.path.display());
        let lag = entry
            .mtime
            .duration_since(meta.modified().unwrap())
            .unwrap();
        assert!(
            lag < Duration::from_secs(2),
            "{}: {lag:?}",
            entry.path.display()
        );
    }
}

#[tokio::test]
async fn zip_round_trips_through_the_runtime_unpacker() {
    let dir = round_trip_fixture();
    let root = dir.path();
    let ws = upload::scan(root).unwrap();
    assert!(ws.warnings.is_empty(), "{:?}", ws.warnings);
    let zip = tempfile::NamedTempFile::new().unwrap();
    let out = tokio::fs::File::create(zip.path()).await.unwrap();
    let mut progressed = 0;
    let written = upload::write_zip(&ws, root, out, |n| progressed += n)
        .await
        .unwrap();
    assert_eq!(written, std::fs::metadata(zip.path()).unwrap().len());
    assert_eq!(progressed, ws.total_bytes());

    let unpacked = tempfile::tempdir().unwrap();
    let done = unpack::unpack(zip.path(), unpacked.path(), &unpack::Limits::DEFAULT)
        .await
        .unwrap();
    let files = ws.entries.iter().filter(|e| e.kind == Kind::File);
    assert_eq!(done.files, files.clone().count() as u64);
    assert_eq!(done.bytes, files.map(|e| e.size).sum::<u64>());
    assert_same_tree(&ws, root, unpacked.path());
    let via = ws
        .entries
        .iter()
        .find(|e| e.path == Path::new("via"))
        .unwrap();
    assert_eq!(via.target.as_deref(), Some(Path::new("src/lib.rs")));
    let exec = std::fs::metadata(unpacked.path().join("exec.sh")).unwrap();
    assert_eq!(exec.mode() & 0o777, 0o755, "still executable");
}

#[tokio::test]
async fn a_file_that_grew_after_the_scan_is_archived_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_file(root, "grows.txt", b"small at scan time\n");
    write_file(root, "stays.txt", b"unchanged\n");
    let ws = upload::scan(root).unwrap();
    // Past the size read in batches: it must be streamed, not cut or refused.
    let grown = b"now much larger\n".repeat(20_000);
    write_file(root, "grows.txt", &grown);
    let zip = tempfile::NamedTempFile::new().unwrap();
    let out = tokio::fs::File::create(zip.path()).await.unwrap();
    upload::write_zip(&ws, root, out, |_| {}).await.unwrap();
    let into = tempfile::tempdir().unwrap();
    unpack::unpack(zip.path(), into.path(), &unpack::Limits::DEFAULT)
        .await
        .unwrap();
    assert!(std::fs::read(into.path().join("grows.txt")).unwrap() == grown);
    assert_eq!(
        std::fs::read(into.path().join("stays.txt")).unwrap(),
        b"unchanged\n"
    );
}

#[tokio::test]
async fn upload_to_a_real_runtime() {
    let dir = git_fixture();
    let root = dir.path();
    let ws = upload::scan(root).unwrap();
    let runtime = Runtime::start(&["true"], &[]);
    let url = runtime.http();
    let headers = BTreeMap::from([("fly-force-instance-id".to_string(), "abc".to_string())]);
    let upload = |token: &'static str| upload::upload(&ws, root, &url, token, &headers, false);

    let refused = upload("wrong-token").await.unwrap_err();
    assert!(
        matches!(refused, UploadError::Refused { status, .. } if status == 401),
        "{refused:?}"
    );
    assert_eq!(refused.to_string(), "the runtime refused the token");

    // With a progress bar: drawn only on a terminal, but every code path runs.
    let done = upload::upload(&ws, root, &url, TOKEN, &headers, true)
        .await
        .unwrap();
    let files = ws.entries.iter().filter(|e| e.kind == Kind::File);
    assert_eq!(done.files, files.clone().count() as u64);
    assert_eq!(done.bytes, files.map(|e| e.size).sum::<u64>());
    assert_same_tree(&ws, root, runtime.workspace.path());

    let again = upload(TOKEN).await.unwrap_err();
    assert!(
        matches!(again, UploadError::Refused { status, .. } if status == 409),
        "{again:?}"
    );
    assert_eq!(
        again.to_string(),
        "the runtime refused the upload: the workspace was already uploaded"
    );
}

#[tokio::test]
async fn an_unreadable_file_aborts_the_body_instead_of_ending_it() {
    let dir = tempfile::tempdir().unwrap();
    random_file(&dir.path().join("a.txt"), 2 * MIB, 5);
    write_file(dir.path(), "b.txt", b"gone before the upload");
    let ws = upload::scan(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join("b.txt")).unwrap();
    // A bare socket shows exactly what the client sent, including how the body ended.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = async {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(DEADLINE, socket.read_to_end(&mut got)).await;
        read.expect("the client closes the connection").unwrap();
        got
    };
    let headers = BTreeMap::from([("x-extra".to_string(), "1".to_string())]);
    let upload = upload::upload(&ws, dir.path(), &url, "tok", &headers, false);
    let (result, got) = tokio::join!(upload, server);
    match result {
        Err(UploadError::Archive(ArchiveError::Read { path, .. })) => {
            assert!(path.ends_with("b.txt"))
        }
        other => panic!("expected a read error for b.txt, got {other:?}"),
    }
    let head =
        String::from_utf8_lossy(&got[..got.windows(4).position(|w| w == b"\r\n\r\n").unwrap()]);
    let head = head.to_lowercase();
    assert!(head.starts_with("post /upload http/1.1\r\n"), "{head}");
    for line in [
        "authorization: bearer tok",
        "content-type: application/zip",
        "transfer-encoding: chunked",
        "x-extra: 1",
    ] {
        assert!(head.contains(line), "{line} in {head}");
    }
    // a.txt was on its way before b.txt failed: the body streams while zipping.
    assert!(got.len() as u64 > MIB, "{} bytes arrived", got.len());
    assert!(
        !got.ends_with(b"0\r\n\r\n"),
        "the chunked body must not end cleanly"
    );
}

#[tokio::test]
async fn check_size_names_the_largest_files_and_directories() {
    let _turn = HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (path, mib, seed) in [
        ("data/a.bin", 48, 1),
        ("data/b.bin", 40, 2),
        ("other/c.bin", 20, 3),
        ("d.bin", 12, 4),
    ] {
        std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
        random_file(&root.join(path), mib * MIB, seed);
    }
    write_file(root, "small.txt", b"small");
    let ws = upload::scan(root).unwrap();
    let err = upload::check_size(&ws, root, UPLOAD_LIMIT_BYTES)
        .await
        .unwrap_err();
    let SizeError::TooLarge(too_large) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        too_large.largest_files[0],
        (PathBuf::from("data/a.bin"), 48 * MIB)
    );
    assert_eq!(too_large.largest_dirs[0], (PathBuf::from("data"), 88 * MIB));
    let message = err.to_string();
    println!("{message}");
    for part in [
        "100.0 MiB",
        "48.0 MiB  data/a.bin",
        "88.0 MiB  data/",
        "  /data/",
        "  /d.bin",
        "--no-upload",
        ".gitignore",
    ] {
        assert!(message.contains(part), "{part:?} in:\n{message}");
    }
}

#[tokio::test]
async fn check_size_lets_compressible_data_through() {
    let _turn = HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.bin", "b.bin", "c/d.bin"] {
        std::fs::create_dir_all(dir.path().join(name).parent().unwrap()).unwrap();
        // Sparse files: 50 MiB of zeros each without touching the disk.
        std::fs::File::create(dir.path().join(name))
            .unwrap()
            .set_len(50 * MIB)
            .unwrap();
    }
    let ws = upload::scan(dir.path()).unwrap();
    assert_eq!(ws.total_bytes(), 150 * MIB);
    upload::check_size(&ws, dir.path(), UPLOAD_LIMIT_BYTES)
        .await
        .unwrap();
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// The RSS measured is the whole process's: other tests of this crate would move it, so the
/// measurement runs alone in a process of its own.
#[test]
fn reading_files_streams_in_constant_memory() {
    let _turn = HEAVY.blocking_lock();
    run_alone("client_upload::constant_memory_child", |_| {});
}

#[tokio::test]
#[ignore = "run alone by reading_files_streams_in_constant_memory"]
async fn constant_memory_child() {
    let dir = tempfile::tempdir().unwrap();
    // Sparse: 300 MiB of zeros without touching the disk; reading it whole would show in RSS.
    let big = std::fs::File::create(dir.path().join("big.bin")).unwrap();
    big.set_len(300 * MIB).unwrap();
    let ws = upload::scan(dir.path()).unwrap();
    let before = rss_bytes();
    let written = upload::write_zip(&ws, dir.path(), tokio::io::sink(), |_| {})
        .await
        .unwrap();
    let growth = rss_bytes().saturating_sub(before);
    assert!(written < MIB, "zeros compress");
    assert!(growth < 50 * MIB, "RSS grew by {} MiB", growth / MIB);
}

/// A sink that checks, at every write, that the archive is not being held back: what was read
/// from disk and is not yet written stays below `max_lag`.
struct LagCheck<'a> {
    read: &'a std::cell::Cell<u64>,
    written: u64,
    writes: u64,
    max_lag: u64,
}

impl tokio::io::AsyncWrite for LagCheck<'_> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.written += buf.len() as u64;
        self.writes += 1;
        let lag = self.read.get().saturating_sub(self.written);
        assert!(lag < self.max_lag, "{lag} bytes read but not written");
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn the_archive_leaves_as_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    // Incompressible, so the archive is as large as the data: holding it back would show.
    random_file(&dir.path().join("a.bin"), 16 * MIB, 11);
    random_file(&dir.path().join("b.bin"), 8 * MIB, 12);
    let ws = upload::scan(dir.path()).unwrap();
    let read = std::cell::Cell::new(0);
    let mut sink = LagCheck {
        read: &read,
        written: 0,
        writes: 0,
        max_lag: MIB,
    };
    let progress = |n| read.set(read.get() + n);
    let written = upload::write_zip(&ws, dir.path(), &mut sink, progress)
        .await
        .unwrap();
    assert_eq!((sink.written, read.get()), (written, 24 * MIB));
    assert!(sink.writes > 100, "{} writes", sink.writes);
}

#[tokio::test]
async fn an_archive_past_the_limit_gets_the_runtime_refusal() {
    let _turn = HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    random_file(&dir.path().join("big.bin"), UPLOAD_LIMIT_BYTES + MIB, 13);
    let ws = upload::scan(dir.path()).unwrap();
    let runtime = Runtime::start(&["true"], &[]);
    let headers = BTreeMap::new();
    let err = upload::upload(&ws, dir.path(), &runtime.http(), TOKEN, &headers, false).await;
    let err = err.unwrap_err();
    println!("{err:?}\n{err}");
    assert!(
        matches!(err, UploadError::Refused { status, .. } if status == 413),
        "{err:?}"
    );
}

/// Writes `files` source-like files (lines of identifiers, which deflate like code) totalling
/// about `bytes`, 100 to a directory.
fn source_tree(root: &Path, files: u64, bytes: u64) {
    const WORDS: &[&str] = &[
        "let", "fn", "self", "match", "Some", "None", "return", "impl", "struct", "pub", "use",
        "mut", "if", "else", "for", "in", "while", "loop", "async", "await", "Result", "Option",
        "String", "Vec", "u64", "usize", "path", "entry", "buf", "error", "value", "config",
        "session", "client", "server", "=", "(", ")", "{", "}", ";", "->", "::", "&", ".",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..files {
        let mut text = String::new();
        let size = bytes / files / 2 + next() % (bytes / files);
        while (text.len() as u64) < size {
            let word = WORDS[(next() % WORDS.len() as u64) as usize];
            let id = next() % 500;
            text.push_str(&format!("{word} name_{id}"));
            text.push(if next() % 8 == 0 { '\n' } else { ' ' });
        }
        write_file(
            root,
            format!("dir_{:03}/file_{i}.rs", i / 100),
            text.as_bytes(),
        );
    }
}

fn mb_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

/// `cargo test --release --test tests -- --ignored client_upload::measure --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement; prints numbers, asserts nothing about speed"]
async fn measure_scan_and_upload() {
    let dir = tempfile::tempdir().unwrap();
    source_tree(dir.path(), 40_000, 80 * MIB);
    let start = Instant::now();
    let ws = upload::scan(dir.path()).unwrap();
    let scan = start.elapsed();
    let raw = ws.total_bytes();
    let start = Instant::now();
    let zipped = upload::write_zip(&ws, dir.path(), tokio::io::sink(), |_| {})
        .await
        .unwrap();
    let zip = start.elapsed();
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = tokio::fs::File::create(file.path()).await.unwrap();
    upload::write_zip(&ws, dir.path(), out, |_| {})
        .await
        .unwrap();
    let (start, into) = (Instant::now(), tempfile::tempdir().unwrap());
    unpack::unpack(file.path(), into.path(), &unpack::Limits::DEFAULT)
        .await
        .unwrap();
    let unpack = start.elapsed();
    let runtime = Runtime::start(&["true"], &[]);
    let start = Instant::now();
    let url = runtime.http();
    let done = upload::upload(&ws, dir.path(), &url, TOKEN, &BTreeMap::new(), false).await;
    let upload = start.elapsed();
    assert_eq!(done.unwrap().files, 40_000);
    println!(
        "{} entries, {:.1} MB raw, {:.1} MB zipped (level {})",
        ws.entries.len(),
        raw as f64 / 1e6,
        zipped as f64 / 1e6,
        upload::DEFLATE_LEVEL
    );
    println!(
        "scan {scan:.2?}; zip to a sink {zip:.2?} ({:.0} MB/s raw)",
        mb_per_s(raw, zip)
    );
    println!("unpack alone (as the runtime does after receiving): {unpack:.2?}");
    println!(
        "upload to a local runtime (zip + send + unpack) {upload:.2?} ({:.0} MB/s raw); \
        scan + upload {:.2?}",
        mb_per_s(raw, upload),
        scan + upload
    );
}

/// Compression alone, per level, on a corpus of real source code when one is at hand (the
/// cargo registry's unpacked crates), otherwise on the generated tree.
#[tokio::test]
#[ignore = "a measurement; prints numbers, asserts nothing about speed"]
async fn measure_deflate_levels() {
    let generated = tempfile::tempdir().unwrap();
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let corpus = home
        .map(|h| h.join("registry/src"))
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| {
            source_tree(generated.path(), 40_000, 80 * MIB);
            generated.path().to_owned()
        });
    let ws = upload::scan(&corpus).unwrap();
    let files: Vec<_> = ws
        .entries
        .iter()
        .filter(|e| e.kind == Kind::File)
        .map(|e| std::fs::read(corpus.join(&e.path)).unwrap())
        .collect();
    let raw: u64 = files.iter().map(|f| f.len() as u64).sum();
    println!(
        "corpus {} ({} files, {:.1} MB)",
        corpus.display(),
        files.len(),
        raw as f64 / 1e6
    );
    for level in [1, 2, 3, 6, 9] {
        let start = Instant::now();
        let mut archive = Vec::new();
        let mut zip = async_zip::tokio::write::ZipFileWriter::with_tokio(&mut archive);
        for (i, data) in files.iter().enumerate() {
            let name = format!("{i}").into();
            let entry = async_zip::ZipEntryBuilder::new(name, async_zip::Compression::Deflate)
                .deflate_option(async_zip::DeflateOption::Other(level));
            zip.write_entry_whole(entry, data).await.unwrap();
        }
        zip.close().await.unwrap();
        let (time, zipped) = (start.elapsed(), archive.len());
        println!(
            "level {level}: {time:.2?} ({:.0} MB/s), {:.1} MB compressed ({:.1}%)",
            mb_per_s(raw, time),
            zipped as f64 / 1e6,
            100.0 * zipped as f64 / raw as f64
        );
    }
}

/// The runtime answers 401 and 409 without reading the body: the answer must still come
/// through while most of a large body is unsent.
#[tokio::test]
async fn early_refusals_arrive_while_a_large_body_is_unsent() {
    let dir = tempfile::tempdir().unwrap();
    random_file(&dir.path().join("big.bin"), 16 * MIB, 21);
    let ws = upload::scan(dir.path()).unwrap();
    let runtime = Runtime::start(&["true"], &[]);
    let (url, headers) = (runtime.http(), BTreeMap::new());
    let upload = |token| upload::upload(&ws, dir.path(), &url, token, &headers, false);
    let refused = upload("wrong-token").await.unwrap_err();
    assert!(
        matches!(refused, UploadError::Refused { status, .. } if status == 401),
        "{refused:?}"
    );
    upload(TOKEN).await.unwrap();
    let again = upload(TOKEN).await.unwrap_err();
    assert!(
        matches!(again, UploadError::Refused { status, .. } if status == 409),
        "{again:?}"
    );
}
