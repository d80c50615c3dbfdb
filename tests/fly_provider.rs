//! The Fly.io provider through the real daemon (`catty api --provider fly`) against the strict
//! fake of the Machines API and Fly's edge (`tests/common/fly`): the machine config it sends,
//! upload and attach through the edge with `fly-force-instance-id`, stop and stop-all, and
//! Fly's bad days (ambiguous 408, 429 bursts, 5xx, stuck machines, empty lists, 401,
//! capacity), the TTL backstop included; `retain`: a machine outlives its program only while
//! its work is unpulled; `credentials`: a machine's env has the request's credentials only.

mod credentials;
mod retain;
pub mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::DEADLINE;
use crate::common::api::fly::FlyDaemon;
use crate::common::fly::{Endpoint, FakeFly, MachineView};
use crate::common::tmux::Tmux;
use catty::protocol::api::SessionCreated;
use credentials::DAEMON_KEYS;
use hyper::StatusCode;
use serde_json::json;
use support::{
    SEED_IMAGE, Terminal, creates, fake, foreign_machine, made, one_line_error, reaper_listed,
    requests,
};

/// A daemon with two vendors' keys in its environment and a Claude session made with it, in
/// `ams` with 2 CPUs and 2 GiB for 15 minutes, with the request's own API key: what the create
/// tests look at.
async fn claude_session(fake: &FakeFly) -> (FlyDaemon, SessionCreated, MachineView) {
    let d = FlyDaemon::start(fake, &DAEMON_KEYS);
    let created = d
        .create(
            json!({"agent": "claude", "cmd": ["bash", "--norc", "-i"], "region": "ams",
            "cpus": 2, "memory_mb": 2048, "ttl_sec": 900,
            "credentials": {"ANTHROPIC_API_KEY": "sk-ant-from-the-request"}}),
        )
        .await;
    let [machine] = made(fake).try_into().unwrap();
    (d, created, machine)
}

#[tokio::test]
async fn create_answers_with_the_started_machine_and_its_edge_route() {
    let fake = fake();
    let (_d, created, machine) = claude_session(&fake).await;
    assert_eq!(
        (machine.state.as_str(), machine.region.as_str()),
        ("started", "ams")
    );
    assert_eq!(created.machine_id, machine.id);
    assert_eq!(created.connect_url, fake.edge_url());
    assert_eq!(created.headers["fly-force-instance-id"], machine.id);
}

/// The create body, field by field (reference sections 2.1, 4 and 5).
#[tokio::test]
async fn create_sends_the_machine_config_fly_expects() {
    let fake = fake();
    let (_d, created, machine) = claude_session(&fake).await;
    let [create] = creates(&fake).try_into().unwrap();
    assert_eq!(
        create.header("authorization"),
        Some(fake.auth_header().as_str())
    );
    let body = create.body.unwrap();
    let config = &body["config"];
    let pinned = fake.seed_image_ref().unwrap();
    assert!(pinned.contains("@sha256:"), "{pinned}");
    assert_eq!(
        config["image"], pinned,
        "the deployed image, pinned by digest"
    );
    let env: BTreeSet<&str> = config["env"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    let want = [
        "ANTHROPIC_API_KEY",
        "CATTY_AGENT",
        "CATTY_CMD",
        "CATTY_TTL_SEC",
        "CONNECT_TOKEN",
    ];
    assert_eq!(env, BTreeSet::from(want), "the request's credential only");
    assert_eq!(config["env"]["CONNECT_TOKEN"], created.connect_token);
    assert_eq!(config["env"]["CATTY_CMD"], r#"["bash","--norc","-i"]"#);
    assert_eq!(config["env"]["CATTY_TTL_SEC"], "900");
    assert_eq!(
        config["env"]["ANTHROPIC_API_KEY"],
        "sk-ant-from-the-request"
    );
    let services = json!([{"protocol": "tcp", "internal_port": 8080,
        "ports": [{"port": 443, "handlers": ["tls", "http"]}, {"port": 80, "handlers": ["http"]}],
        "autostop": "off", "autostart": false}]);
    assert_eq!(config["services"], services);
    assert_eq!(
        config["guest"],
        json!({"cpu_kind": "shared", "cpus": 2, "memory_mb": 2048})
    );
    assert_eq!(config["restart"], json!({"policy": "no"}));
    assert_eq!(config["auto_destroy"], true);
    assert_eq!(
        config["stop_config"],
        json!({"signal": "SIGTERM", "timeout": "30s"})
    );
    assert_eq!(body["region"], "ams");
    let metadata = config["metadata"].as_object().unwrap();
    let keys: BTreeSet<&str> = metadata.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["agent", "catty_session", "expires_at", "label"])
    );
    assert_eq!(metadata["catty_session"], created.session_id);
    assert_eq!(metadata["label"], created.label);
    assert!(!machine.adoptable_by_deploy(), "no fly_* keys");
}

/// It waited for `started` with the machine's version, within Fly's 60 s limit.
#[tokio::test]
async fn create_waits_for_started_within_fly_s_limit() {
    let fake = fake();
    let (_d, _, machine) = claude_session(&fake).await;
    let waits = requests(&fake, "GET", &format!("{}/wait", machine.id));
    let wait = waits.first().expect("a wait");
    assert_eq!(wait.query("state"), Some("started"));
    assert_eq!(
        wait.query("instance_id"),
        Some(machine.instance_id.as_str())
    );
    let timeout: u64 = wait.query("timeout").unwrap().parse().unwrap();
    assert!((1..=60).contains(&timeout), "{timeout}");
}

/// Upload through the edge, routed by fly-force-instance-id; the session sees the file.
#[tokio::test]
async fn upload_reaches_the_machine_through_the_edge() {
    let fake = fake();
    let (_d, created, machine) = claude_session(&fake).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "uploaded through the edge\n").unwrap();
    let ws = catty::client::upload::scan(dir.path()).unwrap();
    let (url, token) = (&created.connect_url, &created.connect_token);
    let done = catty::client::upload::upload(&ws, dir.path(), url, token, &created.headers, false);
    assert_eq!(done.await.unwrap().files, 1);
    let uploaded = machine.workspace().unwrap().join("hello.txt");
    assert_eq!(
        std::fs::read_to_string(uploaded).unwrap(),
        "uploaded through the edge\n"
    );
    let edge = fake.edge_requests();
    let upload = edge
        .iter()
        .find(|r| r.path == "/upload")
        .expect("an upload");
    assert_eq!(upload.forced.as_deref(), Some(machine.id.as_str()));
    assert_eq!(upload.routed_to.as_deref(), Some(machine.id.as_str()));
    let mut term = Terminal::attach(&created).await;
    term.run("cat hello.txt", "uploaded through the edge").await;
}

#[tokio::test]
async fn attach_reaches_the_machine_through_the_edge() {
    let fake = fake();
    let (_d, created, machine) = claude_session(&fake).await;
    let mut term = Terminal::attach(&created).await;
    term.run("echo fly-$((6 * 7))", "fly-42").await;
    let connect = fake
        .edge_requests()
        .into_iter()
        .find(|r| r.path.starts_with("/connect"));
    assert_eq!(
        connect.unwrap().routed_to.as_deref(),
        Some(machine.id.as_str())
    );
}

/// Stop: stopped, then deleted by force; the machine is gone.
#[tokio::test]
async fn stop_stops_the_machine_then_deletes_it_by_force() {
    let fake = fake();
    let (d, created, machine) = claude_session(&fake).await;
    let info = d.stop(&created.label).await;
    assert_eq!(serde_json::to_value(info.state).unwrap(), "stopped");
    assert!(fake.wait_for_state(&machine.id, "destroyed", DEADLINE));
    let stop = requests(&fake, "POST", &format!("{}/stop", machine.id));
    assert_eq!(stop.len(), 1);
    assert_eq!(
        stop[0].body,
        Some(json!({"signal": "SIGTERM", "timeout": "30s"}))
    );
    let delete = requests(&fake, "DELETE", &format!("machines/{}", machine.id));
    assert_eq!(delete.len(), 1);
    assert_eq!(delete[0].query("force"), Some("true"));
}

#[tokio::test]
async fn stop_all_destroys_machines_without_a_record() {
    let fake = fake();
    let d = FlyDaemon::start(&fake, &[]);
    let ours = d.create(json!({"agent": "shell"})).await;
    let foreign = foreign_machine(&fake, "s-00000000000000ff", "2099-01-01T00:00:00Z").await;
    assert_eq!(d.stop_all().await, 2);
    for id in [&ours.machine_id, &foreign] {
        assert!(fake.wait_for_state(id, "destroyed", DEADLINE), "{id}");
    }
    let seeded = fake.machines().into_iter().find(|m| m.seeded).unwrap();
    assert_eq!(
        seeded.state, "stopped",
        "a machine that is not a session's is left alone"
    );
    assert_eq!(
        serde_json::to_value(d.session(&ours.label).await.state).unwrap(),
        "stopped"
    );
}

#[tokio::test]
async fn an_ambiguous_408_on_create_makes_one_machine() {
    let fake = fake();
    let d = FlyDaemon::start(&fake, &[("CATTY_IMAGE", SEED_IMAGE)]);
    reaper_listed(&fake);
    // The create goes through but answers 408; the first look for it finds nothing.
    fake.faults().timeout_after_create(1);
    fake.faults().empty_lists(1);
    let created = d.create(json!({"agent": "shell"})).await;
    let machines = made(&fake);
    assert_eq!(machines.len(), 1, "{machines:?}");
    assert_eq!(machines[0].id, created.machine_id);
    let creates: Vec<u16> = creates(&fake).iter().map(|r| r.status).collect();
    assert_eq!(
        creates,
        [408],
        "looked the machine up instead of creating another"
    );
    let lists = requests(&fake, "GET", "/machines");
    let lookups = lists
        .iter()
        .filter(|r| r.query("metadata.catty_session") == Some(created.session_id.as_str()));
    assert!(lookups.count() >= 2, "one empty list is not believed");
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let fake = fake();
    let d = FlyDaemon::start(&fake, &[]);
    let faults = fake.faults();
    reaper_listed(&fake);
    faults.throttle(Endpoint::Create, 3, None);
    faults.throttle(Endpoint::Wait, 2, Some(1));
    faults.server_error(Endpoint::List, 2, 503);
    let first = d.create(json!({"agent": "shell"})).await;
    let statuses: Vec<u16> = creates(&fake).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 429, 200]);
    let path = format!("/apps/{}/machines", fake.app());
    let lists: Vec<u16> = (requests(&fake, "GET", &path).iter())
        .filter(|r| r.query.is_empty())
        .map(|r| r.status)
        .collect();
    assert_eq!(lists[1..], [503, 503, 200], "the image lookup was retried");
    let waits = requests(&fake, "GET", &format!("{}/wait", first.machine_id));
    let waits: Vec<u16> = waits.iter().map(|r| r.status).collect();
    assert_eq!(waits[..3], [429, 429, 200]);
    // A 502 on create may hide a machine: it is looked for before the next try.
    faults.server_error(Endpoint::Create, 1, 502);
    let second = d.create(json!({"agent": "shell"})).await;
    let statuses: Vec<u16> = creates(&fake).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 429, 200, 502, 200]);
    let ids: BTreeSet<String> = made(&fake).into_iter().map(|m| m.id).collect();
    assert_eq!(ids, BTreeSet::from([first.machine_id, second.machine_id]));
}

#[tokio::test]
async fn a_machine_stuck_in_created_is_destroyed_at_the_deadline() {
    let fake = fake();
    let d = FlyDaemon::start(&fake, &[("CATTY_FLY_START_TIMEOUT", "3s")]);
    reaper_listed(&fake);
    fake.faults().stuck_in_created(1);
    let started = Instant::now();
    let answer = d.create_refused(json!({"agent": "shell"})).await;
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    let message = one_line_error(&answer);
    let [machine] = made(&fake).try_into().unwrap();
    let want = format!(
        "machine {} did not start within 3 s (it is created",
        machine.id
    );
    assert!(message.contains(&want), "{message}");
    assert!(message.contains("catty destroyed it"), "{message}");
    assert!(fake.wait_for_state(&machine.id, "destroyed", DEADLINE));
    let list = d.call("GET", "/v1/sessions", "").await.json();
    assert_eq!(list["sessions"][0]["state"], "gone");
}

#[tokio::test]
async fn a_transient_empty_list_marks_nothing_dead() {
    let fake = fake();
    let mut d = FlyDaemon::start(&fake, &[]);
    let created = d.create(json!({"agent": "shell"})).await;
    // A restarted daemon reconciles (and its reaper lists) while lists come back empty.
    fake.faults().empty_lists(2);
    d.kill9();
    d.spawn();
    assert_eq!(
        serde_json::to_value(d.session(&created.label).await.state).unwrap(),
        "running"
    );
    assert_eq!(made(&fake)[0].state, "started");
    // stop-all does not take two empty lists in a row for "no machines".
    fake.faults().clear();
    fake.faults().empty_lists(2);
    assert_eq!(d.stop_all().await, 1);
    assert!(fake.wait_for_state(&created.machine_id, "destroyed", DEADLINE));
}

#[tokio::test]
async fn a_refused_token_is_one_line_naming_fly_api_token() {
    let fake = fake();
    let d = FlyDaemon::start(&fake, &[]);
    fake.faults().revoke_token(true);
    let answer = d.create_refused(json!({"agent": "shell"})).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    let message = one_line_error(&answer);
    assert!(
        message.ends_with("Fly.io refused the API token (401 Unauthorized): check FLY_API_TOKEN"),
        "{message}"
    );
    // A wrong token from the start reads the same.
    let other = self::fake();
    let d = FlyDaemon::start(&other, &[("FLY_API_TOKEN", "fm2_not-the-token")]);
    let answer = d.create_refused(json!({"agent": "shell"})).await;
    assert!(one_line_error(&answer).contains("check FLY_API_TOKEN"));
}

#[tokio::test]
async fn no_capacity_names_the_region() {
    let fake = fake();
    let d = FlyDaemon::start(&fake, &[]);
    fake.faults().no_capacity("syd", true);
    let answer = d
        .create_refused(json!({"agent": "shell", "region": "syd"}))
        .await;
    let message = one_line_error(&answer);
    assert!(
        message.contains("no capacity for this machine in region syd"),
        "{message}"
    );
    assert!(made(&fake).is_empty());
    assert_eq!(creates(&fake).len(), 1, "capacity is not retried blindly");
}

#[tokio::test]
async fn the_ttl_backstop_destroys_expired_machines() {
    let fake = fake();
    // Left by a daemon that is gone: one past its expires_at, one with time left.
    let expired = foreign_machine(&fake, "s-000000000000dead", "2020-01-01T00:00:00Z").await;
    let current = foreign_machine(&fake, "s-000000000000beef", "2099-01-01T00:00:00Z").await;
    let d = FlyDaemon::start(&fake, &[]);
    assert!(
        fake.wait_for_state(&expired, "destroyed", DEADLINE),
        "{}",
        d.log()
    );
    assert_eq!(fake.machine(&current).unwrap().state, "started");
    // A session of this daemon whose time runs out ends `expired`, its machine destroyed.
    let created = d.create(json!({"agent": "shell", "ttl_sec": 2})).await;
    d.wait_for_state(&created.label, "expired").await;
    assert!(fake.wait_for_state(&created.machine_id, "destroyed", DEADLINE));
}

/// The real client: `catty new` in a terminal uploads and attaches through the edge with the
/// daemon's headers; `catty stop` destroys the machine.
#[tokio::test]
async fn catty_new_in_a_terminal() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "from the laptop\n").unwrap();
    let state = tempfile::tempdir().unwrap();
    let d = FlyDaemon::start_in(&fake, Some(state.path()), &[]);
    let t = Tmux::start_with(dir.path(), 100, 30, state, d.addr);
    // A user of Fly.io has its token where catty runs (a client refuses a daemon of the
    // other provider than its environment would choose).
    let fly = ("FLY_API_TOKEN", "fm2_the_users_token");
    t.run(&format!("export {}={}", fly.0, fly.1));
    t.run("clear; catty new --agent shell -- bash --norc -i");
    let screen = t.wait_for("the session's prompt", |s| {
        s.contains("catty connect") && s.trim_end().ends_with('$')
    });
    let label = screen.split("catty: session ").nth(1).unwrap();
    let label = label.split_whitespace().next().unwrap().to_string();
    t.run("cat notes.txt; echo fly-$((6 * 7))");
    t.wait_for_text("fly-42");
    assert!(t.screen().contains("from the laptop"));
    let [machine] = made(&fake).try_into().unwrap();
    let edge = fake.edge_requests();
    for path in ["/upload", "/connect"] {
        let request = edge.iter().find(|r| r.path.starts_with(path)).expect(path);
        assert_eq!(
            request.forced.as_deref(),
            Some(machine.id.as_str()),
            "{path}"
        );
    }
    t.keys(&["Enter", "~", "."]);
    t.wait_for_text(&format!("detached from {label}"));
    let stopped = t.catty_with_env(&["stop", &label], &[fly]);
    assert!(stopped.status.success(), "{stopped:?}\n{}", d.log());
    assert!(fake.wait_for_state(&machine.id, "destroyed", DEADLINE));
}

/// `catty extend` on Fly.io: the machine's `expires_at` metadata moves (the reaper reads it),
/// then the runtime's deadline, through the edge to that machine; the session outlives its
/// first TTL and the daemon's backstop after it.
#[tokio::test]
async fn extend_moves_the_machines_expires_at_then_the_runtimes_deadline() {
    let fake = fake();
    let d = FlyDaemon::start(&fake, &[]);
    let created = d
        .create(json!({"agent": "shell", "cmd": ["sleep", "600"], "ttl_sec": 4}))
        .await;
    let first = d.session(&created.label).await.expires_at;
    // A bad moment of the API on the way is retried.
    fake.faults().server_error(Endpoint::Metadata, 1, 503);
    let info = d.extended(&created.label, 8).await;
    assert_eq!(info.expires_at, first + 8);
    let machine = fake.machine(&created.machine_id).unwrap();
    assert_eq!(
        machine.metadata["expires_at"],
        catty::clock::rfc3339(info.expires_at)
    );
    let set = requests(&fake, "POST", "/metadata/expires_at");
    assert_eq!(set.last().unwrap().status, 204);
    let told: Vec<_> = (fake.edge_requests().into_iter())
        .filter(|r| r.method == "POST" && r.path == "/ttl")
        .collect();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].forced.as_deref(), Some(created.machine_id.as_str()));
    crate::common::api::proc::wait_until("the first ttl and its backstop to pass", || {
        catty::clock::unix_now() >= first + 6
    });
    assert_eq!(fake.machine(&created.machine_id).unwrap().state, "started");
    assert_eq!(d.session(&created.label).await.state.as_str(), "running");
}

/// When the machine's `expires_at` cannot be moved, the runtime is not told either: no
/// backstop may end the machine before the runtime's deadline.
#[tokio::test]
async fn extend_tells_the_runtime_nothing_when_the_backstop_cannot_move() {
    let fake = fake();
    let d = FlyDaemon::start(&fake, &[]);
    let created = d
        .create(json!({"agent": "shell", "cmd": ["sleep", "600"], "ttl_sec": 600}))
        .await;
    let first = d.session(&created.label).await.expires_at;
    fake.faults().server_error(Endpoint::Metadata, 1, 404);
    let refused = d.extend(&created.label, r#"{"by_sec":60}"#).await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY, "{}", refused.body);
    assert!(refused.body.contains("expires_at"), "{}", refused.body);
    let told = (fake.edge_requests().into_iter()).filter(|r| r.path == "/ttl");
    assert_eq!(told.count(), 0);
    let info = d.session(&created.label).await;
    assert_eq!(info.expires_at, first, "the record kept its deadline");
}
