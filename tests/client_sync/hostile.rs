//! A hostile runtime: every entry that would write outside the project, into `.git/`, through
//! a symlink, or past a limit is refused with one line naming it, and nothing lands beside the
//! project.

use catty::protocol::sync::{EntryKind, ManifestEntry};

use super::{Fixture, temp_files};
use crate::common::repo::git;
use crate::common::sync_server::sha256;

fn file(path: &str, bytes: &[u8]) -> ManifestEntry {
    let kind = EntryKind::File {
        executable: false,
        size: bytes.len() as u64,
        sha256: sha256(bytes),
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

/// Serves `entries` (their bytes `evil`), pulls, and returns what was said on stderr.
async fn pull_hostile(f: &Fixture, entries: Vec<ManifestEntry>) -> String {
    f.server.with(|s| {
        for entry in &entries {
            s.bytes.insert(entry.path.clone(), b"evil".to_vec());
        }
        s.extra = entries;
    });
    f.pull().await.1
}

#[track_caller]
fn assert_refused(stderr: &str, path: &str, why: &str) {
    let line = format!("catty: refused {path} from the session: {why}");
    assert!(stderr.contains(&line), "expected {line:?} in:\n{stderr}");
}

#[tokio::test]
async fn a_parent_path_is_refused() {
    let f = Fixture::empty().await;
    let stderr = pull_hostile(&f, vec![file("../x", b"evil")]).await;
    assert_refused(&stderr, "../x", "a . or .. component");
    f.assert_nothing_outside();
}

#[tokio::test]
async fn an_absolute_path_is_refused() {
    let f = Fixture::empty().await;
    let outside = f.parent.path().join("x");
    let path = outside.to_str().unwrap();
    let stderr = pull_hostile(&f, vec![file(path, b"evil")]).await;
    assert_refused(&stderr, path, "an absolute path");
    f.assert_nothing_outside();
}

#[tokio::test]
async fn a_path_climbing_out_through_a_directory_is_refused() {
    let f = Fixture::empty().await;
    let stderr = pull_hostile(&f, vec![file("a/../../x", b"evil")]).await;
    assert_refused(&stderr, "a/../../x", "a . or .. component");
    f.assert_nothing_outside();
    assert!(!f.local().join("a").exists());
}

#[tokio::test]
async fn a_git_hook_is_refused() {
    let f = Fixture::empty().await;
    git(&f.local(), &["init", "-q"]);
    let stderr = pull_hostile(&f, vec![file(".git/hooks/pre-commit", b"evil")]).await;
    assert_refused(&stderr, ".git/hooks/pre-commit", "a path inside .git/");
    assert!(!f.local().join(".git/hooks/pre-commit").exists());
}

#[tokio::test]
async fn a_symlink_to_etc_and_a_file_through_it_are_refused() {
    let f = Fixture::empty().await;
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let entries = vec![link("link", "/etc"), file("link/passwd", b"evil")];
    let stderr = pull_hostile(&f, entries).await;
    assert_refused(&stderr, "link", "a symlink to an absolute path (/etc)");
    assert_refused(
        &stderr,
        "link/passwd",
        "link is not a directory in the session",
    );
    assert!(std::fs::symlink_metadata(f.local().join("link")).is_err());
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd);
}

#[tokio::test]
async fn nothing_is_written_through_a_local_symlink() {
    let f = Fixture::empty().await;
    std::os::unix::fs::symlink("..", f.local().join("out")).unwrap();
    let stderr = pull_hostile(&f, vec![file("out/escaped", b"evil")]).await;
    let line = "catty: conflict: out/escaped is in the way here (out is a symlink)";
    assert!(stderr.contains(line), "{stderr}");
    f.assert_nothing_outside();
}

#[tokio::test]
async fn a_symlink_pointing_outside_is_refused() {
    let f = Fixture::empty().await;
    let stderr = pull_hostile(&f, vec![link("a", "../../outside")]).await;
    assert_refused(
        &stderr,
        "a",
        "a symlink pointing outside the directory (../../outside)",
    );
    assert!(std::fs::symlink_metadata(f.local().join("a")).is_err());
}

#[tokio::test]
async fn a_file_over_the_size_limit_is_refused_unfetched() {
    let f = Fixture::empty().await;
    let mut huge = file("huge.bin", b"evil");
    if let EntryKind::File { size, .. } = &mut huge.kind {
        *size = 10 << 30;
    }
    let stderr = pull_hostile(&f, vec![huge]).await;
    let why = "listed at 10737418240 bytes, over the limit of 104857600";
    assert_refused(&stderr, "huge.bin", why);
    assert_eq!(f.server.with(|s| s.fetched.len()), 0);
}

#[tokio::test]
async fn bytes_that_do_not_match_their_hash_are_not_written() {
    let f = Fixture::empty().await;
    f.server.with(|s| {
        s.extra = vec![file("x.txt", b"good")];
        s.bytes.insert("x.txt".into(), b"evil".to_vec());
    });
    let (_, stderr) = f.pull().await;
    let why = "it sent bytes whose sha256 differs from the listed one";
    assert_refused(&stderr, "x.txt", why);
    assert!(!f.local().join("x.txt").exists());
    assert_eq!(temp_files(&f.local()), Vec::<std::path::PathBuf>::new());
}
