//! The size check before an upload, the runtime's limit, and the memory an upload takes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{MIB, random_file};
use crate::common::repo::write_file;
use crate::common::{HEAVY, Runtime, TOKEN, run_alone};
use catty::client::upload::{self, SizeError, UploadError};
use catty::protocol::UPLOAD_LIMIT_BYTES;

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
    run_alone("client_upload::size::constant_memory_child", |_| {});
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
