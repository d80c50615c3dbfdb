//! The live follower, driven through the library (`catty new` attaches to a real runtime, whose
//! sync endpoints are not in this tree yet): changes appear within the deadline, lines go to
//! the sink it was given and only when there is something to say, and finishing pulls once more.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catty::client::sync::{Live, Say};

use super::Fixture;
use crate::common::DEADLINE;
use crate::common::repo::write_file;

/// A follower of the fixture's session, and what it said.
fn follow(f: &Fixture) -> (Live, Arc<Mutex<Vec<String>>>) {
    let said = Arc::new(Mutex::new(Vec::new()));
    let sink = said.clone();
    let say: Say = Arc::new(move |line: &str| sink.lock().unwrap().push(line.to_string()));
    let live = Live::start(&f.server.link(), &f.state_dir(), &f.local(), say).unwrap();
    (live, said)
}

/// Waits until the project's `path` holds `bytes`; how long that took.
pub(super) async fn appears(f: &Fixture, path: &str, bytes: &[u8]) -> Duration {
    let start = Instant::now();
    while std::fs::read(f.local().join(path)).ok().as_deref() != Some(bytes) {
        assert!(start.elapsed() < DEADLINE, "{path} did not arrive");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn a_file_saved_in_the_session_appears_while_following() {
    let f = Fixture::repo(&[("a.txt", b"one\n")]).await;
    let (live, said) = follow(&f);
    write_file(&f.remote(), "src/new.rs", "fn new() {}\n");
    f.changed();
    appears(&f, "src/new.rs", b"fn new() {}\n").await;
    live.stop().await;
    assert_eq!(*said.lock().unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn a_conflict_while_following_is_said_once_through_the_sink() {
    let f = Fixture::repo(&[("a.txt", b"one\n")]).await;
    write_file(&f.local(), "a.txt", "mine\n");
    let (live, said) = follow(&f);
    write_file(&f.remote(), "a.txt", "theirs\n");
    f.changed();
    write_file(&f.remote(), "b.txt", "b\n");
    f.changed();
    appears(&f, "b.txt", b"b\n").await;
    let counts = live.stop().await;
    let said = said.lock().unwrap().clone();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].starts_with("catty: conflict: a.txt changed here and in the session"));
    assert_eq!(counts.conflicts, 1);
}

#[tokio::test]
async fn finishing_pulls_what_the_follower_has_not_seen() {
    let f = Fixture::repo(&[("a.txt", b"one\n")]).await;
    let (live, _) = follow(&f);
    write_file(&f.remote(), "late.txt", "written as the program exited\n");
    // No new generation: only the last pull can bring it.
    let summary = live.finish().await.unwrap().unwrap();
    let late = std::fs::read(f.local().join("late.txt")).unwrap();
    assert_eq!(late, b"written as the program exited\n");
    assert_eq!(summary.counts.added, 1);
}

#[tokio::test]
async fn a_runtime_without_sync_endpoints_ends_following_quietly() {
    let f = Fixture::repo(&[("a.txt", b"one\n")]).await;
    let mut link = f.server.link();
    link.connect_url.push_str("/old-runtime");
    let said = Arc::new(Mutex::new(Vec::new()));
    let sink = said.clone();
    let say: Say = Arc::new(move |line: &str| sink.lock().unwrap().push(line.to_string()));
    let live = Live::start(&link, &f.state_dir(), &f.local(), say).unwrap();
    let last = tokio::time::timeout(DEADLINE, live.finish()).await.unwrap();
    assert!(last.unwrap().is_none(), "no last pull from such a runtime");
    assert_eq!(*said.lock().unwrap(), Vec::<String>::new());
}

/// Waits until the server has seen more than `seen` long polls begin to wait.
async fn a_poll_waits(f: &Fixture, seen: usize) -> usize {
    let start = Instant::now();
    while f.server.waits() <= seen {
        assert!(start.elapsed() < DEADLINE, "no long poll waits");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    f.server.waits()
}

/// `catty extend` moves the session's end: the pull that comes 20 s before it follows, asked
/// at once rather than waited for (a long poll would not see this change for 25 s).
#[tokio::test]
async fn the_last_pull_follows_a_moved_deadline() {
    let f = Fixture::repo(&[("a.txt", b"one\n")]).await;
    let mut link = f.server.link();
    link.expires_at = Some(catty::clock::unix_now() + 3600);
    let say: Say = Arc::new(|_: &str| {});
    let live = Live::start(&link, &f.state_dir(), &f.local(), say).unwrap();
    write_file(&f.remote(), "first.txt", "1\n");
    f.changed();
    appears(&f, "first.txt", b"1\n").await;
    let seen = a_poll_waits(&f, 0).await;
    // The end comes near: the pull before it is due in 2 s.
    live.expiry().moved(catty::clock::unix_now() + 22);
    a_poll_waits(&f, seen).await;
    write_file(&f.remote(), "quiet.txt", "q\n");
    f.server.with(|s| s.generation += 1);
    let took = appears(&f, "quiet.txt", b"q\n").await;
    assert!(took < Duration::from_secs(15), "pulled after {took:?}");
    live.stop().await;
}
