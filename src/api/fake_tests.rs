//! The daemon's session logic against a fake provider that fails on demand: what a failed
//! create leaves behind, the sweep's verdicts (dead, expired, orphaned), and stop during a
//! create. The real local provider is exercised by `tests/api_*.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::bail;
use hyper::StatusCode;

use super::daemon::Auth;
use super::daemon::Daemon;
use super::provider::{Liveness, Machine, MachineSpec, Provider};
use super::store::{FileStore, Record, Store};
use crate::clock::unix_now;
use crate::protocol::api::{CreateSession, SessionState, Ttl};

/// A small cap, so a test can reach it.
const MAX_SESSIONS: usize = 3;

#[derive(Default)]
struct Fake {
    fail_create: bool,
    fail_ready: bool,
    machines: Mutex<Vec<Machine>>,
    dead: Mutex<HashSet<String>>,
    /// Machines whose program exited, with its code.
    exited: Mutex<HashMap<String, i32>>,
    destroyed: Mutex<Vec<String>>,
    /// The deadlines the daemon asked for, in order.
    extended: Mutex<Vec<u64>>,
}

impl Fake {
    fn kill(&self, machine_id: &str) {
        self.dead.lock().unwrap().insert(machine_id.to_string());
    }

    fn destroyed(&self) -> Vec<String> {
        self.destroyed.lock().unwrap().clone()
    }
}

impl Provider for Fake {
    const NAME: &'static str = "fake";
    const AUTHORITATIVE: bool = true;

    async fn create(&self, spec: &MachineSpec) -> anyhow::Result<Machine> {
        if self.fail_create {
            bail!("quota exceeded");
        }
        let mut machines = self.machines.lock().unwrap();
        let machine = Machine {
            id: format!("m-{}", machines.len()),
            session_id: spec.session_id.clone(),
            connect_url: "http://127.0.0.1:9".into(),
            headers: Default::default(),
            region: Some("ams".into()),
            private: serde_json::Value::Null,
        };
        machines.push(machine.clone());
        Ok(machine)
    }

    async fn wait_ready(&self, _: &Machine, _: Duration) -> anyhow::Result<()> {
        match self.fail_ready {
            true => bail!("no answer on /healthz; its log: /state/runtime.log"),
            false => Ok(()),
        }
    }

    async fn destroy(&self, machine: &Machine) -> anyhow::Result<()> {
        self.kill(&machine.id);
        self.destroyed.lock().unwrap().push(machine.id.clone());
        Ok(())
    }

    async fn list(&self) -> anyhow::Result<Vec<Machine>> {
        let dead = self.dead.lock().unwrap();
        let machines = self.machines.lock().unwrap();
        Ok(machines
            .iter()
            .filter(|m| !dead.contains(&m.id))
            .cloned()
            .collect())
    }

    async fn alive(&self, machine: &Machine) -> anyhow::Result<Liveness> {
        if self.dead.lock().unwrap().contains(&machine.id) {
            return Ok(Liveness::Dead);
        }
        Ok(match self.exited.lock().unwrap().get(&machine.id) {
            Some(&code) => Liveness::Exited(code),
            None => Liveness::Alive,
        })
    }

    async fn extend(&self, _: &Machine, _: &str, expires_at: u64) -> anyhow::Result<Ttl> {
        self.extended.lock().unwrap().push(expires_at);
        tokio::task::yield_now().await;
        let in_sec = expires_at.saturating_sub(unix_now());
        Ok(Ttl { in_sec, expires_at })
    }

    async fn forget(&self, _: &str) {}

    async fn shutdown(&self) {}
}

fn start(fake: Fake) -> (Daemon<Fake>, tempfile::TempDir) {
    start_keeping(fake, Duration::from_secs(86400))
}

fn start_keeping(fake: Fake, keep_ended: Duration) -> (Daemon<Fake>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::File(FileStore::open(dir.path()).unwrap());
    let limits = (MAX_SESSIONS, keep_ended);
    (
        Daemon::new(fake, store, Auth::Local("t".repeat(64)), limits),
        dir,
    )
}

#[tokio::test]
async fn an_exit_is_noted_while_the_runtime_stays_and_kept_when_its_machine_goes() {
    let (daemon, _dir) = start(Fake::default());
    let s = daemon.create(None, shell(None)).await.unwrap();
    let exited = |code| {
        daemon
            .provider
            .exited
            .lock()
            .unwrap()
            .insert(s.machine_id.clone(), code)
    };
    exited(7);
    daemon.sweep().await;
    let r = daemon.find(None, &s.label).await.unwrap();
    assert_eq!((r.state, r.exit_code), (SessionState::Running, Some(7)));
    assert_eq!(r.info().state_text(), "exited (code 7)");
    daemon.provider.kill(&s.machine_id);
    let listed = daemon.list(None).await.unwrap();
    assert_eq!(listed.sessions[0].state, SessionState::Exited);
    assert_eq!(listed.sessions[0].state_text(), "exited (code 7)");
}

#[tokio::test]
async fn ended_sessions_are_pruned_after_the_keep() {
    let (daemon, _dir) = start_keeping(Fake::default(), Duration::from_secs(60));
    let old = daemon.create(None, shell(None)).await.unwrap();
    let recent = daemon.create(None, shell(None)).await.unwrap();
    daemon.stop(None, &old.label).await.unwrap();
    daemon.stop(None, &recent.label).await.unwrap();
    let ended_long_ago = |r: &mut Record| r.ended_at = Some(unix_now() - 61);
    daemon
        .store
        .update(&old.session_id, ended_long_ago)
        .await
        .unwrap();
    assert!(daemon.next_sweep_in().await <= Duration::from_secs(1));
    daemon.sweep().await;
    let left: Vec<String> = records(&daemon)
        .await
        .into_iter()
        .map(|r| r.label)
        .collect();
    assert_eq!(left, [recent.label]);
}

/// Every record, as the store holds it (no machine checked).
async fn records(daemon: &Daemon<Fake>) -> Vec<Record> {
    daemon.store.list(None).await.unwrap()
}

fn shell(ttl_sec: Option<u64>) -> CreateSession {
    CreateSession {
        agent: crate::protocol::Agent::Shell,
        ttl_sec,
        ..Default::default()
    }
}

#[tokio::test]
async fn created_sessions_run_and_carry_their_machine() {
    let (daemon, _dir) = start(Fake::default());
    let created = daemon.create(None, shell(None)).await.unwrap();
    assert_eq!(created.machine_id, "m-0");
    let info = daemon.get(None, &created.label).await.unwrap();
    assert_eq!(info.state, SessionState::Running);
    assert_eq!(info.region.as_deref(), Some("ams"));
    assert_eq!(info.provider, "fake");
}

#[tokio::test]
async fn a_failed_create_leaves_a_gone_record_and_says_why() {
    let (daemon, _dir) = start(Fake {
        fail_create: true,
        ..Default::default()
    });
    let err = daemon.create(None, shell(None)).await.unwrap_err();
    assert_eq!(err.status, StatusCode::BAD_GATEWAY);
    assert!(err.message.contains("quota exceeded"), "{}", err.message);
    let records = records(&daemon).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, SessionState::Gone);
    assert!(err.message.contains(&records[0].label), "{}", err.message);
}

#[tokio::test]
async fn a_machine_that_never_answers_is_destroyed() {
    let (daemon, _dir) = start(Fake {
        fail_ready: true,
        ..Default::default()
    });
    let err = daemon.create(None, shell(None)).await.unwrap_err();
    assert_eq!(err.status, StatusCode::BAD_GATEWAY);
    assert!(err.message.contains("runtime.log"), "{}", err.message);
    assert_eq!(daemon.provider.destroyed(), ["m-0"]);
    let records = records(&daemon).await;
    assert_eq!(records[0].state, SessionState::Gone);
    assert!(!records[0].destroy_pending);
}

#[tokio::test]
async fn the_sweep_ends_dead_and_expired_sessions() {
    let (daemon, _dir) = start(Fake::default());
    let dead = daemon.create(None, shell(None)).await.unwrap();
    let expiring = daemon.create(None, shell(Some(1))).await.unwrap();
    let healthy = daemon.create(None, shell(None)).await.unwrap();
    daemon.provider.kill(&dead.machine_id);
    // Past the deadline and its slack.
    let past = |r: &mut Record| r.expires_at = unix_now() - 60;
    daemon
        .store
        .update(&expiring.session_id, past)
        .await
        .unwrap();
    daemon.sweep().await;
    // From the records, not `get` (which would check the machine itself).
    let swept = records(&daemon).await;
    let state = |id: &str| swept.iter().find(|r| r.id == id).unwrap().state;
    assert_eq!(state(&dead.session_id), SessionState::Gone);
    assert_eq!(state(&expiring.session_id), SessionState::Expired);
    assert_eq!(state(&healthy.session_id), SessionState::Running);
    assert!(daemon.provider.destroyed().contains(&expiring.machine_id));
    assert!(swept.iter().all(|r| !r.destroy_pending));
}

#[tokio::test]
async fn orphans_of_a_dead_daemon_are_adopted_or_given_up() {
    let (daemon, _dir) = start(Fake::default());
    let with_machine = daemon.create(None, shell(None)).await.unwrap();
    let without = daemon.create(None, shell(None)).await.unwrap();
    // As if the daemon died after writing `starting` but before recording the machine.
    for r in records(&daemon).await {
        let starting = |r: &mut Record| {
            r.state = SessionState::Starting;
            r.machine = None;
        };
        daemon.store.update(&r.id, starting).await.unwrap();
    }
    daemon.provider.kill(&without.machine_id);
    daemon.sweep().await;
    let adopted = daemon.get(None, &with_machine.session_id).await.unwrap();
    assert_eq!(adopted.state, SessionState::Running);
    assert_eq!(adopted.machine_id, with_machine.machine_id);
    let given_up = daemon.get(None, &without.session_id).await.unwrap();
    assert_eq!(given_up.state, SessionState::Gone);
}

#[tokio::test]
async fn stop_all_marks_every_live_session_and_counts_machines() {
    let (daemon, _dir) = start(Fake::default());
    let a = daemon.create(None, shell(None)).await.unwrap();
    daemon.create(None, shell(None)).await.unwrap();
    let done = daemon.stop_all(None).await.unwrap();
    assert_eq!(done.stopped, 2);
    assert!(
        records(&daemon)
            .await
            .iter()
            .all(|r| r.state == SessionState::Stopped)
    );
    assert_eq!(
        daemon.stop(None, &a.label).await.unwrap().state,
        SessionState::Stopped
    );
    assert_eq!(daemon.stop_all(None).await.unwrap().stopped, 0);
}

/// Past the cap a create is refused with 429 and nothing is made; ending one makes room.
#[tokio::test]
async fn live_sessions_are_capped() {
    let (daemon, _dir) = start(Fake::default());
    let mut labels = Vec::new();
    for _ in 0..MAX_SESSIONS {
        labels.push(daemon.create(None, shell(None)).await.unwrap().label);
    }
    let err = daemon.create(None, shell(None)).await.unwrap_err();
    assert_eq!(err.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        err.message.contains("CATTY_MAX_SESSIONS"),
        "{}",
        err.message
    );
    assert_eq!(records(&daemon).await.len(), MAX_SESSIONS);
    daemon.stop(None, &labels[0]).await.unwrap();
    daemon.create(None, shell(None)).await.unwrap();
}

/// Tries of one request, at once or one after the other, make one session; another request
/// makes its own; an id of the wrong shape is refused.
#[tokio::test]
async fn one_request_id_makes_one_session() {
    let (daemon, _dir) = start(Fake::default());
    let req = CreateSession {
        request_id: Some("abcdefghijklmnop".into()),
        ..shell(None)
    };
    let (a, b) = tokio::join!(
        daemon.create(None, req.clone()),
        daemon.create(None, req.clone())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.session_id, b.session_id);
    assert_eq!(
        daemon.create(None, req).await.unwrap().session_id,
        a.session_id
    );
    let other = CreateSession {
        request_id: Some("qrstuvwxyz012345".into()),
        ..shell(None)
    };
    assert_ne!(
        daemon.create(None, other).await.unwrap().session_id,
        a.session_id
    );
    assert_eq!(records(&daemon).await.len(), 2);
    let bad = CreateSession {
        request_id: Some("short".into()),
        ..shell(None)
    };
    assert_eq!(
        daemon.create(None, bad).await.unwrap_err().status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn extensions_at_once_add_up_and_reach_the_provider_in_order() {
    let (daemon, _dir) = start(Fake::default());
    let s = daemon.create(None, shell(Some(600))).await.unwrap();
    let first = daemon.find(None, &s.label).await.unwrap().expires_at;
    let by = |by_sec| crate::protocol::api::ExtendSession { by_sec };
    let (a, b) = tokio::join!(
        daemon.extend(None, &s.label, by(60)),
        daemon.extend(None, &s.session_id, by(120))
    );
    let mut seen = [a.unwrap().expires_at, b.unwrap().expires_at];
    seen.sort();
    assert_eq!(seen[1], first + 180, "{seen:?}");
    assert!(seen[0] == first + 60 || seen[0] == first + 120, "{seen:?}");
    assert_eq!(
        daemon.find(None, &s.label).await.unwrap().expires_at,
        first + 180
    );
    let told = daemon.provider.extended.lock().unwrap().clone();
    assert_eq!(told, seen, "the provider heard the last one last");
}

#[tokio::test]
async fn an_ended_session_is_not_extended() {
    let (daemon, _dir) = start(Fake::default());
    let s = daemon.create(None, shell(None)).await.unwrap();
    daemon.stop(None, &s.label).await.unwrap();
    let by = crate::protocol::api::ExtendSession { by_sec: 60 };
    let err = daemon.extend(None, &s.label, by).await.unwrap_err();
    assert_eq!(err.status, StatusCode::CONFLICT);
    assert!(err.message.contains("is stopped"), "{}", err.message);
}
