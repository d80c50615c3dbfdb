//! Archives of a scanned workspace: through the runtime's own unpacker and to a real
//! `catty exec`, written as they are read, and what a refusal or an unreadable file does.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{MIB, git_fixture, random_file};
use crate::common::repo::write_file;
use crate::common::{DEADLINE, Runtime, TOKEN};
use catty::client::upload::{self, ArchiveError, Kind, UploadError, Workspace};
use catty::exec::unpack;
use tokio::io::AsyncReadExt;

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
