//! Work is kept until it is pulled: a real `catty exec` stays after its program exits while
//! its workspace holds changes nobody acknowledged (at most `CATTY_RETAIN_SEC`), and the real
//! `catty stop` pulls before it stops, unless `--discard`.

use std::time::Duration;

use bytes::Bytes;
use catty::protocol::sync::{Manifest, Pulled};
use http_body_util::Full;
use hyper::{Request, StatusCode};

use crate::common::repo::write_file;
use crate::common::sync_server::{LABEL, SESSION_ID, SyncServer};
use crate::common::{Client, DEADLINE, HttpReply, Runtime, TOKEN, http_send, sized};

/// A runtime whose program writes a file and exits, kept `grace` seconds, at most `retain`.
async fn finished(script: &str, grace: &str, retain: &str) -> Runtime {
    let env = [("CATTY_GRACE_SEC", grace), ("CATTY_RETAIN_SEC", retain)];
    let rt = Runtime::start(&["sh", "-c", script], &env);
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    c.read_until("exit", |c| c.exit.is_some()).await;
    rt
}

async fn send(rt: &Runtime, req: hyper::http::request::Builder) -> HttpReply {
    let req = req
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Full::<Bytes>::default())
        .unwrap();
    http_send(rt.addr, req).await
}

#[tokio::test]
async fn a_changed_workspace_keeps_the_runtime_until_it_is_pulled() {
    let mut rt = finished("echo made > made.txt", "1", "60").await;
    // Well past the grace period of 1 s: still there.
    assert_eq!(rt.wait_exit(Duration::from_secs(3)), None);
    let manifest: Manifest = send(&rt, Request::get("/sync/manifest"))
        .await
        .json(StatusCode::OK);
    assert!(manifest.entries.iter().any(|e| e.path == "made.txt"));
    let pulled: Pulled = send(&rt, Request::get("/sync/pulled"))
        .await
        .json(StatusCode::OK);
    assert!(pulled.unpulled);
    let ack = format!("/sync/pulled?generation={}", manifest.generation);
    let reply = send(&rt, Request::post(ack)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(rt.wait_exit(DEADLINE), Some(0));
}

#[tokio::test]
async fn an_unchanged_workspace_ends_after_the_grace_period() {
    let mut rt = finished("true", "1", "600").await;
    assert_eq!(rt.wait_exit(DEADLINE), Some(0));
}

#[tokio::test]
async fn unpulled_work_is_kept_no_longer_than_the_retention() {
    let mut rt = finished("echo made > made.txt", "1", "2").await;
    assert_eq!(rt.wait_exit(DEADLINE), Some(0));
}

/// The TTL is a hard limit: unpulled work does not hold the runtime past it.
#[tokio::test]
async fn the_ttl_ends_a_runtime_that_keeps_work() {
    let env = [
        ("CATTY_GRACE_SEC", "1"),
        ("CATTY_RETAIN_SEC", "600"),
        ("CATTY_TTL_SEC", "3"),
    ];
    let mut rt = Runtime::start(&["sh", "-c", "echo made > made.txt"], &env);
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    c.read_until("exit", |c| c.exit.is_some()).await;
    assert_eq!(rt.wait_exit(DEADLINE), Some(0));
}

/// SIGTERM (the machine is shutting down) ends a runtime that keeps work at once.
#[tokio::test]
async fn sigterm_ends_a_runtime_that_keeps_work() {
    let mut rt = finished("echo made > made.txt", "1", "600").await;
    assert_eq!(rt.wait_exit(Duration::from_secs(2)), None);
    let pid = nix::unistd::Pid::from_raw(rt.pid());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(rt.wait_exit(Duration::from_secs(5)), Some(0));
}

#[tokio::test]
async fn an_ack_needs_the_token_and_a_generation() {
    let rt = Runtime::start(&["/bin/sh"], &[]);
    let bare = Request::post("/sync/pulled?generation=1")
        .body(Full::<Bytes>::default())
        .unwrap();
    assert_eq!(
        http_send(rt.addr, bare).await.status,
        StatusCode::UNAUTHORIZED
    );
    let reply = send(&rt, Request::post("/sync/pulled?generation=x")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

/// A session whose workspace holds a file the project lacks, and an empty project.
async fn session_with_a_change() -> (
    SyncServer,
    tempfile::TempDir,
    tempfile::TempDir,
    tempfile::TempDir,
) {
    let (remote, project, state) = (tempdir(), tempdir(), tempdir());
    write_file(remote.path(), "new.txt", "from the session\n");
    let server = SyncServer::start(remote.path()).await;
    // What `catty new` records: the session came from `project`, which was empty.
    let base = catty::client::sync::Base::empty(LABEL, project.path());
    base.save(&server.client_state(state.path()), SESSION_ID)
        .unwrap();
    (server, remote, project, state)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

async fn catty(
    server: &SyncServer,
    state: &tempfile::TempDir,
    cwd: &tempfile::TempDir,
    args: &[&str],
) -> (bool, String, String) {
    let run = server.catty(state.path(), cwd.path(), args).output();
    let out = tokio::time::timeout(DEADLINE, run)
        .await
        .expect("catty in time")
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[tokio::test]
async fn stop_pulls_the_work_first_and_says_so() {
    let (server, _remote, project, state) = session_with_a_change().await;
    let (ok, stdout, stderr) = catty(&server, &state, &project, &["stop", LABEL]).await;
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(
        std::fs::read_to_string(project.path().join("new.txt")).unwrap(),
        "from the session\n"
    );
    assert!(
        stderr.contains(&format!("catty: pulled {LABEL}")),
        "{stderr}"
    );
    assert!(stderr.contains("; stopping"), "{stderr}");
    assert!(stdout.contains(&format!("stopped {LABEL}")), "{stdout}");
    let (stopped, acks) = server.with(|s| (s.stopped, s.acks.clone()));
    assert!(stopped);
    assert_eq!(acks, [1]);
}

#[tokio::test]
async fn stop_discard_stops_without_pulling() {
    let (server, _remote, project, state) = session_with_a_change().await;
    let args = ["stop", "--discard", LABEL];
    let (ok, stdout, stderr) = catty(&server, &state, &project, &args).await;
    assert!(ok, "{stdout}{stderr}");
    assert!(!project.path().join("new.txt").exists());
    assert!(stdout.contains("its work was not pulled"), "{stdout}");
    let (stopped, fetched) = server.with(|s| (s.stopped, s.fetched.clone()));
    assert!(stopped);
    assert!(fetched.is_empty(), "{fetched:?}");
}

#[tokio::test]
async fn stop_without_a_known_directory_stops_nothing() {
    let (server, _remote, project, state) = session_with_a_change().await;
    let elsewhere = tempdir();
    std::fs::remove_dir_all(server.client_state(state.path()).join("sync")).unwrap();
    let (ok, stdout, stderr) = catty(&server, &state, &elsewhere, &["stop", LABEL]).await;
    assert!(!ok, "{stdout}{stderr}");
    assert!(stderr.contains("catty stop --discard"), "{stderr}");
    assert!(!project.path().join("new.txt").exists());
    assert!(!elsewhere.path().join("new.txt").exists());
    assert!(!server.with(|s| s.stopped));
}

/// Polls `done` every 20 ms until it holds, at most `within`.
async fn eventually(within: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// A change the long poll is not woken for (the generation grows silently) still comes back
/// shortly before the session's TTL: live sync asks for the manifest at once then.
#[tokio::test]
async fn live_sync_pulls_before_the_session_expires() {
    let (server, remote, project, state) = session_with_a_change().await;
    let mut link = server.link();
    // The last pull is due 20 s before the expiry: 3 to 4 s from now.
    link.expires_at = Some(catty::clock::unix_now() + 23);
    let say: catty::client::sync::Say = std::sync::Arc::new(|line: &str| panic!("{line}"));
    let state_dir = server.client_state(state.path());
    let live = catty::client::sync::Live::start(&link, &state_dir, project.path(), say).unwrap();
    let first = eventually(DEADLINE, || server.with(|s| s.acks == [1])).await;
    assert!(first, "the first round was not acknowledged");
    write_file(remote.path(), "late.txt", "just before the end\n");
    server.with(|s| s.generation += 1);
    // Well before the long poll's own 25 s are up.
    let late = project.path().join("late.txt");
    assert!(eventually(Duration::from_secs(15), || late.exists()).await);
    assert!(eventually(DEADLINE, || server.with(|s| s.acks == [1, 2])).await);
    live.stop().await;
}

#[tokio::test]
async fn stop_all_names_the_sessions_it_stops_without_pulling() {
    for unpulled in [true, false] {
        let (server, _remote, project, state) = session_with_a_change().await;
        server.with(|s| s.unpulled = unpulled);
        let args = ["stop-all-sessions-dangerously", "--yes-i-mean-it"];
        let (ok, stdout, stderr) = catty(&server, &state, &project, &args).await;
        assert!(ok, "{stdout}{stderr}");
        let named = format!("catty: stopped {LABEL} without pulling its work");
        assert_eq!(stderr.contains(&named), unpulled, "{stderr}");
        assert!(server.with(|s| s.stopped));
        assert!(!project.path().join("new.txt").exists());
    }
}
