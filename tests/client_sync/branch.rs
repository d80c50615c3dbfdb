//! Commits made in the session arrive as the branch `catty/<label>` with their parents, while
//! the local HEAD, index and stash stay as they were.

use super::{Fixture, commit};
use crate::common::repo::{git, write_file};
use crate::common::sync_server::LABEL;

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap().trim().to_string()
}

/// A session with two commits on top of the uploaded one, served as a bundle.
async fn two_commits() -> (Fixture, [String; 3]) {
    let f = Fixture::repo(&[("a.txt", b"one\n"), ("b.txt", b"b\n")]).await;
    let uploaded = text(git(&f.remote(), &["rev-parse", "HEAD"]));
    write_file(&f.remote(), "a.txt", "one\ntwo\n");
    commit(&f.remote(), "second");
    write_file(&f.remote(), "c.txt", "c\n");
    commit(&f.remote(), "third");
    let bundle = f.state.path().join("session.bundle");
    let range = format!("{uploaded}..HEAD");
    git(
        &f.remote(),
        &["bundle", "create", "-q", bundle.to_str().unwrap(), &range],
    );
    f.server.with(|s| s.bundle = Some(bundle));
    let second = text(git(&f.remote(), &["rev-parse", "HEAD~1"]));
    let third = text(git(&f.remote(), &["rev-parse", "HEAD"]));
    (f, [uploaded, second, third])
}

#[tokio::test]
async fn session_commits_arrive_as_a_branch_with_their_parents() {
    let (f, [uploaded, second, third]) = two_commits().await;
    let (stdout, _) = f.pull().await;
    let branch = format!("catty/{LABEL}");
    assert_eq!(text(git(&f.local(), &["rev-parse", &branch])), third);
    let parents = text(git(
        &f.local(),
        &["rev-list", "--parents", "-n", "2", &branch],
    ));
    assert_eq!(parents, format!("{third} {second}\n{second} {uploaded}"));
    assert!(
        stdout.contains(&format!(
            "branch {branch} at {} (2 new commits)",
            &third[..12]
        )),
        "{stdout}"
    );
}

#[tokio::test]
async fn the_bundle_is_asked_for_on_top_of_the_uploaded_head() {
    let (f, [uploaded, ..]) = two_commits().await;
    f.pull().await;
    let queries = f.server.with(|s| s.bundle_queries.clone());
    assert_eq!(queries, [format!("base={uploaded}")]);
}

#[tokio::test]
async fn head_index_and_stash_are_untouched() {
    let (f, [uploaded, ..]) = two_commits().await;
    write_file(&f.local(), "b.txt", "stashed\n");
    git(
        &f.local(),
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t.invalid",
            "stash",
            "-q",
        ],
    );
    write_file(&f.local(), "b.txt", "staged\n");
    git(&f.local(), &["add", "b.txt"]);
    let before = |args: &[&str]| text(git(&f.local(), args));
    let (index, stash) = (
        before(&["ls-files", "-s"]),
        before(&["rev-parse", "refs/stash"]),
    );
    let head_ref = before(&["symbolic-ref", "HEAD"]);
    f.pull().await;
    assert_eq!(before(&["rev-parse", "HEAD"]), uploaded);
    assert_eq!(before(&["symbolic-ref", "HEAD"]), head_ref);
    assert_eq!(before(&["ls-files", "-s"]), index);
    assert_eq!(before(&["rev-parse", "refs/stash"]), stash);
}
