//! Both sides changed a file: the local version always survives, one line names the file and
//! says where the session's version is, and that version is there.

use std::path::PathBuf;

use super::Fixture;
use crate::common::repo::write_file;

/// The path a conflict line for `file` points at, checked to exist.
#[track_caller]
fn kept_at(stderr: &str, file: &str) -> PathBuf {
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&format!("catty: conflict: {file} ")))
        .unwrap_or_else(|| panic!("no conflict line for {file} in:\n{stderr}"));
    let at = line.split("the session's version is at ").nth(1).unwrap();
    PathBuf::from(at.split(" (copy it").next().unwrap())
}

async fn both_edited() -> (Fixture, String) {
    let f = Fixture::repo(&[("src/x.rs", b"base\n")]).await;
    write_file(&f.local(), "src/x.rs", "mine\n");
    write_file(&f.remote(), "src/x.rs", "theirs\n");
    let (_, stderr) = f.pull().await;
    (f, stderr)
}

#[tokio::test]
async fn local_and_remote_edits_keep_the_local_file() {
    let (f, _) = both_edited().await;
    assert_eq!(
        std::fs::read(f.local().join("src/x.rs")).unwrap(),
        b"mine\n"
    );
}

#[tokio::test]
async fn local_and_remote_edits_keep_the_session_version_where_the_line_says() {
    let (f, stderr) = both_edited().await;
    let at = kept_at(&stderr, "src/x.rs");
    assert!(at.starts_with(f.state_dir()), "{at:?}");
    assert_eq!(std::fs::read(at).unwrap(), b"theirs\n");
}

#[tokio::test]
async fn a_conflict_is_said_once() {
    let (f, _) = both_edited().await;
    write_file(&f.remote(), "other.txt", "new\n");
    let (stdout, stderr) = f.pull().await;
    assert_eq!(stderr, "", "said again");
    assert!(
        stdout.contains("1 added, 0 deleted, 0 conflicts"),
        "{stdout}"
    );
}

#[tokio::test]
async fn taking_the_session_version_ends_the_conflict() {
    let (f, stderr) = both_edited().await;
    std::fs::copy(kept_at(&stderr, "src/x.rs"), f.local().join("src/x.rs")).unwrap();
    write_file(&f.remote(), "src/x.rs", "theirs, later\n");
    f.pull().await;
    let x = std::fs::read(f.local().join("src/x.rs")).unwrap();
    assert_eq!(x, b"theirs, later\n");
}

#[tokio::test]
async fn local_delete_and_remote_edit_keep_the_file_deleted() {
    let f = Fixture::repo(&[("notes.md", b"base\n")]).await;
    std::fs::remove_file(f.local().join("notes.md")).unwrap();
    write_file(&f.remote(), "notes.md", "theirs\n");
    let (_, stderr) = f.pull().await;
    assert!(!f.local().join("notes.md").exists());
    assert!(
        stderr.contains("notes.md was deleted here but changed in the session"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(kept_at(&stderr, "notes.md")).unwrap(),
        b"theirs\n"
    );
}

#[tokio::test]
async fn local_edit_and_remote_delete_keep_the_local_file() {
    let f = Fixture::repo(&[("notes.md", b"base\n")]).await;
    write_file(&f.local(), "notes.md", "mine\n");
    std::fs::remove_file(f.remote().join("notes.md")).unwrap();
    let (_, stderr) = f.pull().await;
    assert_eq!(
        std::fs::read(f.local().join("notes.md")).unwrap(),
        b"mine\n"
    );
    let line =
        "catty: conflict: notes.md changed here but was deleted in the session; yours is kept";
    assert!(stderr.contains(line), "{stderr}");
}
