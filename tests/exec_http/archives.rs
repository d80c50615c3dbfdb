//! What an upload leaves: a good archive intact and only once, hostile ones refused with
//! nothing written, and clients that hang up mid-body or during extraction.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use crate::common::{DEADLINE, HttpReply, peak_rss_bytes};
use catty::protocol::api::UploadDone;
use hyper::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::fixtures::{
    BIG_FILE, BIG_FILE_MIB, BIG_ZIP, Entry, MIB, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, zips,
};
use super::{Sandbox, listing, upload_head};

#[tokio::test]
async fn a_good_archive_arrives_intact_and_only_once() {
    let s = Sandbox::start(&["sleep", "100"]);
    let good = &zips().good;
    let files: Vec<&Entry> = good.iter().filter(|e| e.mode & S_IFMT == S_IFREG).collect();
    // The fixture has what this test is about.
    let perms: Vec<u32> = files.iter().map(|e| e.mode & 0o777).collect();
    assert!(
        perms.contains(&0o755) && perms.contains(&0o644),
        "{perms:?}"
    );
    assert!(good.iter().any(|e| e.mode & S_IFMT == S_IFLNK));

    let done = s.upload_ok("good.zip").await;
    let bytes = files.iter().map(|e| e.data.len() as u64).sum();
    let files = files.len() as u64;
    assert_eq!(done, UploadDone { files, bytes });
    for entry in good {
        assert_arrived(s.ws(), entry);
    }

    let before = listing(s.ws());
    let err = s.upload("good.zip").await.error(StatusCode::CONFLICT);
    assert_eq!(err.code, "conflict");
    assert_eq!(listing(s.ws()), before);
}

/// `entry` is in `ws` with its content (or link target), permissions and mtime.
fn assert_arrived(ws: &Path, entry: &Entry) {
    let path = ws.join(entry.name.trim_end_matches('/'));
    let meta = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let name = &entry.name;
    match entry.mode & S_IFMT {
        S_IFLNK => {
            assert!(meta.file_type().is_symlink(), "{name} is a symlink");
            let target = std::fs::read_link(&path).unwrap();
            assert_eq!(target.as_os_str().as_bytes(), entry.data, "{name}");
            let resolved = path.canonicalize().unwrap();
            assert!(resolved.starts_with(ws.canonicalize().unwrap()), "{name}");
            return;
        }
        S_IFDIR => assert!(meta.is_dir(), "{name} is a directory"),
        _ => {
            assert!(meta.is_file(), "{name} is a file");
            assert_eq!(std::fs::read(&path).unwrap(), entry.data, "{name}");
        }
    }
    let mode = meta.permissions().mode() & 0o777;
    assert_eq!(mode, entry.mode & 0o777, "{name}: mode {mode:o}");
    assert_eq!(meta.mtime(), entry.mtime, "{name}: mtime");
}

#[tokio::test]
async fn hostile_archives_are_400_naming_the_entry_and_leave_nothing() {
    let (mut checks, mut names) = (JoinSet::new(), HashMap::new());
    for case in &zips().cases {
        if let Some(bad) = &case.bad_entry {
            let check = checks.spawn(reject_hostile(case.file.clone(), bad.clone()));
            names.insert(check.id(), &case.file);
        }
    }
    assert!(names.len() >= 10, "only {} hostile cases", names.len());
    let mut failures = Vec::new();
    while let Some(done) = checks.join_next_with_id().await {
        if let Err(err) = done {
            let name = names[&err.id()];
            let panic = err.into_panic();
            let msg = panic
                .downcast_ref::<String>()
                .map_or("panicked", String::as_str);
            failures.push(format!("{name}: {msg}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An archive refused as a whole (more entries than allowed) is refused before its entries
/// are read: a 400 saying why, nothing written, and the runtime's memory barely moved.
#[tokio::test]
async fn archives_over_the_limits_are_refused_before_reading_them() {
    let refused: Vec<_> = zips()
        .cases
        .iter()
        .filter(|c| c.message.is_some())
        .collect();
    assert!(!refused.is_empty());
    for case in refused {
        let s = Sandbox::start(&["sleep", "100"]);
        let idle = peak_rss_bytes(s.rt.pid());
        let err = s.upload(&case.file).await.error(StatusCode::BAD_REQUEST);
        assert_eq!(err.code, "bad_archive", "{}", case.file);
        let message = case.message.as_deref().unwrap();
        assert!(
            err.message.contains(message),
            "{}: {}",
            case.file,
            err.message
        );
        let used = peak_rss_bytes(s.rt.pid()).saturating_sub(idle);
        assert!(used < 64 * MIB, "{}: {used} bytes", case.file);
        s.assert_untouched(&case.file);
        s.upload_ok("good.zip").await;
    }
}

/// A fresh runtime refuses `file` naming `bad`, writes nothing, and then takes a good upload.
async fn reject_hostile(file: String, bad: String) {
    let s = Sandbox::start(&["sleep", "100"]);
    let err = s.upload(&file).await.error(StatusCode::BAD_REQUEST);
    assert_eq!(err.code, "bad_archive", "{file}");
    let quoted = format!("\"{bad}\"");
    assert!(err.message.contains(&quoted), "{file}: {}", err.message);
    if bad.starts_with('/') {
        assert!(!Path::new(&bad).exists(), "{file} wrote {bad}");
    }
    s.assert_untouched(&file);
    s.upload_ok("good.zip").await;
}

#[tokio::test]
async fn a_client_hanging_up_mid_body_leaves_nothing_and_the_slot_open() {
    let s = Sandbox::start(&["sleep", "100"]);
    let zip = std::fs::read(zips().dir.join(BIG_ZIP)).unwrap();
    let conn = start_upload(s.rt.addr, &zip[..zip.len() / 2], zip.len()).await;
    drop(conn);
    let _: UploadDone = upload_when_free(&s).await.json(StatusCode::OK);
    assert_eq!(listing(s.ws()), good_listing());
    assert!(
        listing(&s.root.path().join("tmp")).is_empty(),
        "the spool is gone"
    );
}

#[tokio::test]
async fn a_client_hanging_up_during_extraction_leaves_all_or_nothing() {
    let s = Sandbox::start(&["sleep", "100"]);
    let zip = std::fs::read(zips().dir.join(BIG_ZIP)).unwrap();
    let conn = start_upload(s.rt.addr, &zip, zip.len()).await;
    let big = s.ws().join(BIG_FILE);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !big.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "extraction never began"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    drop(conn);
    let reply = upload_when_free(&s).await;
    if reply.status == StatusCode::OK {
        // Cancelled: the partial upload is gone and good.zip went into an empty workspace.
        assert_eq!(listing(s.ws()), good_listing());
    } else {
        // Finished before the hang-up was noticed: then it is complete.
        assert_eq!(reply.error(StatusCode::CONFLICT).code, "conflict");
        assert_eq!(std::fs::metadata(&big).unwrap().len(), BIG_FILE_MIB * MIB);
    }
}

/// What `listing` shows of a workspace holding good.zip.
fn good_listing() -> Vec<String> {
    let names = zips().good.iter().map(|e| e.name.trim_end_matches('/'));
    let mut names: Vec<String> = names.map(String::from).collect();
    names.sort();
    names
}

/// Sends an upload head declaring `declared` body bytes and then `body`; leaves the
/// connection open and unanswered.
async fn start_upload(addr: SocketAddr, body: &[u8], declared: usize) -> TcpStream {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let head = upload_head(addr, &format!("content-length: {declared}\r\n"));
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    conn
}

/// Uploads good.zip once the upload slot is free again. Only the runtime's message tells
/// "another upload is in progress" from "already uploaded"; both are 409 `conflict`.
async fn upload_when_free(s: &Sandbox) -> HttpReply {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let reply = s.upload("good.zip").await;
        let text = String::from_utf8_lossy(&reply.body);
        let busy = reply.status == StatusCode::CONFLICT && text.contains("in progress");
        if !busy || tokio::time::Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
