//! The daemon dies and comes back: `kill -9` in the middle of creates loses no record, and
//! local sessions keep running across a restart and can be attached again.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::api::Daemon;
use crate::common::api::proc::{alive, runtimes, signal, wait_until};
use crate::common::{Client, random_below};
use catty::protocol::api::{SessionInfo, SessionState};
use tokio::task::JoinSet;

fn bash() -> serde_json::Value {
    serde_json::json!({"agent": "shell", "cmd": ["bash", "--norc", "-i"]})
}

/// How many creates are in flight when the daemon is killed.
const CONCURRENT_CREATES: usize = 6;

/// Two rounds: `kill -9` right after the first create answers, then at a random moment.
/// After each restart, every session a create returned is listed, nothing is left
/// `starting`, a session is `running` exactly when its runtime runs, and no runtime is
/// without a record.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_during_creates_loses_no_record() {
    let mut d = Daemon::start(false);
    let mut returned = kill_during_creates(&mut d, None).await;
    assert!(!returned.is_empty(), "the first create answered");
    // One runtime dies while the daemon is down.
    let victim = returned[0].clone();
    let victim_pid = d.runtime_pid(&victim).expect("its runtime runs");
    signal(victim_pid, "KILL");
    wait_until("the killed runtime to die", || !alive(victim_pid));
    d.spawn();
    check_after_restart(&d, &returned).await;
    assert_eq!(d.session(&victim).await.state, SessionState::Gone);

    let delay = Duration::from_millis(random_below(40));
    returned.extend(kill_during_creates(&mut d, Some(delay)).await);
    d.spawn();
    let list = check_after_restart(&d, &returned).await;
    eprintln!(
        "killed {delay:?} into the second round; {} sessions returned in all; states {:?}",
        returned.len(),
        list.iter().map(|s| s.state).collect::<Vec<_>>()
    );
    let survivor = list
        .iter()
        .find(|s| s.state == SessionState::Running)
        .expect("some session survived");
    let mut c = Client::attach(&survivor.connect_url, &survivor.connect_token).await;
    c.run("echo back-$((40+2))", "back-42").await;
}

/// Fires the creates, kills the daemon after `delay` (or once the first answers), and
/// returns the ids of the creates that answered.
async fn kill_during_creates(d: &mut Daemon, delay: Option<Duration>) -> Vec<String> {
    let mut creates = JoinSet::new();
    for _ in 0..CONCURRENT_CREATES {
        let client = d.client();
        creates.spawn(async move { client.try_create(&bash()).await.map(|c| c.session_id) });
    }
    let mut returned = Vec::new();
    match delay {
        Some(delay) => tokio::time::sleep(delay).await,
        None => returned.push(creates.join_next().await.unwrap().unwrap().unwrap()),
    }
    d.kill9();
    while let Some(result) = creates.join_next().await {
        if let Ok(id) = result.unwrap() {
            returned.push(id);
        }
    }
    returned
}

async fn check_after_restart(d: &Daemon, returned: &[String]) -> Vec<SessionInfo> {
    let names: Vec<String> = std::fs::read_dir(d.state_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.contains("corrupt")), "{names:?}");
    let list = d.list().await;
    let ids: HashSet<&str> = list.iter().map(|s| s.session_id.as_str()).collect();
    for id in returned {
        assert!(ids.contains(id.as_str()), "session {id} was lost: {list:?}");
    }
    let running: HashSet<String> = runtimes(&d.state_dir())
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    for id in &running {
        assert!(ids.contains(id.as_str()), "runtime of {id} has no record");
    }
    for s in &list {
        let expected = match running.contains(&s.session_id) {
            true => SessionState::Running,
            false => SessionState::Gone,
        };
        assert_eq!(s.state, expected, "{s:?}");
    }
    list
}

#[tokio::test]
async fn sessions_survive_a_daemon_restart() {
    let mut d = Daemon::start(false);
    let created = d.create_bash().await;
    let pid = d.runtime_pid(&created.session_id).unwrap();
    let mut c = Client::attach(&created.connect_url, &created.connect_token).await;
    c.run("X=kept; echo before-$((1+1))", "before-2").await;
    drop(c);

    // Ctrl-C in the daemon's terminal reaches its process group, not the sessions.
    assert_eq!(d.interrupt_group(), Some(0), "a clean shutdown");
    assert!(alive(pid), "the runtime died with the daemon");
    d.spawn();
    let info = d.session(&created.label).await;
    assert_eq!(info.state, SessionState::Running);
    assert_eq!(info.connect_url, created.connect_url);
    let mut c = Client::attach(&info.connect_url, &info.connect_token).await;
    c.run("echo after-$X", "after-kept").await;
    drop(c);

    // Again through SIGTERM, then through kill -9.
    assert_eq!(d.terminate(), Some(0), "a clean shutdown");
    assert!(alive(pid), "the runtime died with the daemon");
    d.spawn();
    assert_eq!(d.session(&created.label).await.state, SessionState::Running);
    d.kill9();
    assert!(alive(pid), "the runtime died with the daemon");
    d.spawn();
    assert_eq!(
        d.session(&created.session_id).await.state,
        SessionState::Running
    );
    let stopped = d.stop(&created.label).await;
    assert_eq!(stopped.state, SessionState::Stopped);
    assert!(!alive(pid));
}

/// One daemon per state directory: a second one, on another port, refuses to start.
#[tokio::test]
async fn a_second_daemon_on_the_same_state_refuses() {
    let d = Daemon::start(false);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_catty"))
        .args([
            "api",
            "--provider",
            "local",
            "--no-sandbox",
            "--addr",
            "127.0.0.1:0",
        ])
        .env("XDG_STATE_HOME", d.root().join("state"))
        .env("HOME", d.root().join("home"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another catty api already uses"),
        "{stderr}"
    );
    // The first one is unharmed.
    assert!(d.list().await.is_empty());
}

/// Creates carrying request ids, the daemon killed while they run, then every request tried
/// again after a restart (as `catty new` does when the daemon does not answer): each request
/// gets exactly one session, the one its first try returned if it returned one, and trying
/// once more changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_create_tried_again_after_a_crash_makes_one_session() {
    let mut d = Daemon::start(false);
    let requests: Vec<String> = (0..CONCURRENT_CREATES)
        .map(|i| format!("request-{i:02}-{}", random_below(u64::MAX)))
        .collect();
    let body = |id: &str| serde_json::json!({"agent": "shell", "cmd": ["bash", "--norc", "-i"], "request_id": id});
    let mut creates = JoinSet::new();
    for id in &requests {
        let (client, body, id) = (d.client(), body(id), id.clone());
        creates.spawn(async move { (id, client.try_create(&body).await.ok()) });
    }
    // Killed once the first answers: the others are at every stage of their creation.
    let mut first = std::collections::HashMap::new();
    let (id, created) = creates.join_next().await.unwrap().unwrap();
    first.insert(id, created.map(|c| c.session_id));
    d.kill9();
    while let Some(done) = creates.join_next().await {
        let (id, created) = done.unwrap();
        first.insert(id, created.map(|c| c.session_id));
    }
    d.spawn();
    let mut sessions = HashSet::new();
    for id in &requests {
        let again = d.client().create(body(id)).await;
        if let Some(Some(earlier)) = first.get(id) {
            assert_eq!(&again.session_id, earlier, "{id}");
        }
        assert_eq!(
            d.client().create(body(id)).await.session_id,
            again.session_id
        );
        sessions.insert(again.session_id);
    }
    assert_eq!(sessions.len(), requests.len());
    let live: Vec<SessionInfo> = (d.list().await.into_iter())
        .filter(|s| s.state.is_live())
        .collect();
    assert_eq!(live.len(), requests.len(), "{live:?}");
    assert_eq!(runtimes(&d.state_dir()).len(), requests.len());
    eprintln!(
        "{} of {} first tries answered before the kill",
        first.values().filter(|c| c.is_some()).count(),
        requests.len()
    );
}
