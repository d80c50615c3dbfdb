//! Sessions through the daemon with the local provider: create, attach, list, get by label
//! and id, stop; a region refused; the TTL backstop; stop-all, including a runtime the daemon has no record of.

use std::process::{Command, Stdio};

use crate::common::api::Daemon;
use crate::common::api::proc::{alive, signal, wait_until};
use crate::common::{Client, DEADLINE, sized};
use catty::protocol::api::SessionState;
use hyper::StatusCode;

fn is_label(label: &str) -> bool {
    let parts: Vec<&str> = label.split('-').collect();
    parts.len() == 3
        && parts[..2]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[2].len() == 4
        && parts[2].bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test]
async fn create_attach_list_stop() {
    let d = Daemon::start(false);
    let created = d.create_bash().await;
    assert!(is_label(&created.label), "{}", created.label);
    assert!(
        created.session_id.starts_with("s-"),
        "{}",
        created.session_id
    );
    assert!(
        created.connect_url.starts_with("http://127.0.0.1:"),
        "{}",
        created.connect_url
    );
    assert_eq!(created.connect_token.len(), 64);
    assert!(!created.machine_id.is_empty());
    let pid = d
        .runtime_pid(&created.session_id)
        .expect("the runtime runs");
    let workspace = d.workspace(&created.session_id);
    assert!(workspace.is_dir());

    // The runtime wants the session's token, not the daemon's.
    let refused = Client::connect_with_token(&created.connect_url, &d.token, &sized(80, 24)).await;
    assert!(
        matches!(refused, Err(catty::net::DialError::Status(401))),
        "{:?}",
        refused.err()
    );
    let mut c = Client::attach(&created.connect_url, &created.connect_token).await;
    c.run("echo hi-$((6*7)); pwd", "hi-42").await;
    c.read_until_contains(&workspace.display().to_string())
        .await;
    drop(c);

    let list = d.list().await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].label, created.label);
    assert_eq!(list[0].state, SessionState::Running);
    assert_eq!(list[0].provider, "local");
    assert!(
        list[0].expires_at >= list[0].created_at + 7200,
        "default ttl"
    );
    let by_label = d.session(&created.label).await;
    let by_id = d.session(&created.session_id).await;
    assert_eq!(by_label, by_id);
    assert_eq!(by_id.connect_url, created.connect_url);
    assert_eq!(by_id.connect_token, created.connect_token);

    let stopped = d.stop(&created.label).await;
    assert_eq!(stopped.state, SessionState::Stopped);
    assert!(!alive(pid), "the runtime outlived stop");
    assert!(!workspace.exists(), "the workspace outlived stop");
    assert_eq!(
        d.session(&created.session_id).await.state,
        SessionState::Stopped
    );
    // Stopping again is harmless; unknown labels are 404.
    assert_eq!(d.stop(&created.label).await.state, SessionState::Stopped);
    let missing = d.call("GET", "/v1/sessions/calm-owl-0000", "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn labels_are_unique_among_sessions() {
    let d = Daemon::start(false);
    let mut labels = std::collections::HashSet::new();
    for _ in 0..4 {
        let created = d
            .create(serde_json::json!({"agent": "shell", "cmd": ["sleep", "600"]}))
            .await;
        assert!(
            labels.insert(created.label.clone()),
            "{} twice",
            created.label
        );
    }
    assert_eq!(d.list().await.len(), 4);
}

/// A runtime that cannot enforce its own TTL (stopped with SIGSTOP) is destroyed by the
/// daemon's backstop and the session is `expired`.
#[tokio::test]
async fn ttl_backstop_destroys_a_stuck_runtime() {
    let d = Daemon::start(false);
    let created = d
        .create(serde_json::json!({"agent": "shell", "cmd": ["sleep", "600"], "ttl_sec": 2}))
        .await;
    let pid = d
        .runtime_pid(&created.session_id)
        .expect("the runtime runs");
    signal(pid, "STOP");
    let info = d.wait_for_state(&created.label, "expired").await;
    assert_eq!(info.expires_at, info.created_at + 2);
    wait_until("the expired runtime to be gone", || !alive(pid));
    wait_until("the workspace to be removed", || {
        !d.workspace(&created.session_id).exists()
    });
}

/// stop-all ends recorded sessions and also a runtime of this state directory that the
/// daemon has never heard of.
#[tokio::test]
async fn stop_all_destroys_unrecorded_runtimes() {
    let d = Daemon::start(false);
    let recorded = d.create_bash().await;
    let recorded_pid = d.runtime_pid(&recorded.session_id).unwrap();
    let stranger = d.state_dir().join("sessions/s-0123456789abcdef/workspace");
    std::fs::create_dir_all(&stranger).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_catty"))
        .args(["exec", "--addr", "127.0.0.1:0", "--workspace"])
        .arg(&stranger)
        .args(["--", "sleep", "600"])
        .env("CONNECT_TOKEN", "stranger-token")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the stranger runtime to show in /proc", || {
        d.runtime_pid("s-0123456789abcdef") == Some(child.id() as i32)
    });
    assert_eq!(d.list().await.len(), 1, "the stranger has no record");

    let answer = d.call("POST", "/v1/sessions/stop-all", "").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.json()["stopped"], 2);
    let deadline = std::time::Instant::now() + DEADLINE;
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the stranger runtime survived stop-all"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        !alive(recorded_pid),
        "the recorded runtime survived stop-all"
    );
    assert!(
        !stranger.exists(),
        "the stranger's workspace was left behind"
    );
    let list = d.list().await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].state, SessionState::Stopped);
    // Nothing left to stop.
    let again = d.call("POST", "/v1/sessions/stop-all", "").await;
    assert_eq!(again.json()["stopped"], 0);
}

/// A runtime that dies by itself shows up as `gone`: at once for a client asking about that
/// session, and in the list after the next sweep; its workspace is cleaned up either way.
#[tokio::test]
async fn a_dead_runtime_is_gone() {
    let d = Daemon::start(false);
    let sleeper = serde_json::json!({"agent": "shell", "cmd": ["sleep", "600"]});
    let asked = d.create(sleeper.clone()).await;
    let swept = d.create(sleeper).await;
    for s in [&asked, &swept] {
        let pid = d.runtime_pid(&s.session_id).unwrap();
        signal(pid, "KILL");
        // `kill` returns once the signal is sent, not once the process is dead.
        wait_until("the killed runtime to die", || !alive(pid));
    }
    assert_eq!(d.session(&asked.label).await.state, SessionState::Gone);
    assert!(!d.workspace(&asked.session_id).exists());
    wait_until_async("the sweep to notice the other one", async || {
        let list = d.list().await;
        list.iter()
            .find(|s| s.session_id == swept.session_id)
            .unwrap()
            .state
            == SessionState::Gone
    })
    .await;
    assert!(!d.workspace(&swept.session_id).exists());
}

/// Polls an async condition until it holds, failing at the deadline.
async fn wait_until_async(what: &str, done: impl AsyncFn() -> bool) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while !done().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A region means nothing to the local provider: another client that asks for one gets 400
/// with the reason, and nothing is made.
#[tokio::test]
async fn a_region_is_refused_by_the_local_provider() {
    let d = Daemon::start(false);
    let answer = d
        .create_refused(
            serde_json::json!({"agent": "shell", "cmd": ["sleep", "600"], "region": "ams"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(
        answer.json()["error"]["message"],
        catty::protocol::api::NO_LOCAL_REGIONS
    );
    assert!(d.list().await.is_empty(), "a session was made");
}
