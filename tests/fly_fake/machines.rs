//! A machine's life through the API: wait, list, delete, stop and the restart policy, with
//! real runtimes behind.

use std::time::Duration;

use serde_json::json;

use crate::common::DEADLINE;
use crate::common::fly::{FakeFly, FakeFlyOptions};

use super::{
    call, create, edit, error, expect, fake, ids, list, machine_path, machines_path, session_body,
    started, wait,
};

#[tokio::test]
async fn wait_checks_its_arguments_and_times_out() {
    let fake = fake();
    fake.faults().stuck_in_created(1);
    let stuck = create(&fake, session_body("stuck")).await;
    let id = stuck["id"].as_str().unwrap();
    let instance = stuck["instance_id"].as_str().unwrap();
    for query in [
        "timeout=0",
        "timeout=61",
        "timeout=90",
        "timeout=abc",
        "timeout=1.5",
        "state=running",
        // Strict: waiting for stopped wants the version (reference §2.2, §8.4 *).
        "state=stopped&timeout=1",
        "state=started&instance_id=nope",
    ] {
        error(&wait(&fake, id, query).await, 400);
    }
    let timed_out = error(&wait(&fake, id, "state=started&timeout=1").await, 408);
    assert_eq!(
        timed_out,
        "machine failed to reach desired state, started, currently created"
    );
    let settled = expect(
        &wait(&fake, id, "state=started,settled&timeout=1").await,
        200,
    );
    assert_eq!(settled["state"], "created");
    let both = format!("state=stopped&state=destroyed&instance_id={instance}&timeout=1");
    error(&wait(&fake, id, &both).await, 408);
    error(&wait(&fake, "0123456789abcd", "timeout=1").await, 404);
    // Start answers yes, but a stuck machine stays created.
    let start = format!("{}/start", machine_path(&fake, id));
    expect(&call(&fake, "POST", &start, None).await, 200);
    error(&wait(&fake, id, "timeout=1").await, 408);
}

#[tokio::test]
async fn list_filters_by_metadata_and_state() {
    let fake = fake();
    let a = started(&fake, "a").await;
    let body = edit(
        session_body("b"),
        "/config/metadata/owner",
        Some(json!("x")),
    );
    let b = create(&fake, edit(body, "/skip_launch", Some(json!(true)))).await;
    let b = b["id"].as_str().unwrap();
    assert_eq!(
        ids(&list(&fake, "metadata.catty_session=a").await),
        [a.as_str()]
    );
    assert_eq!(
        ids(&list(&fake, "metadata.catty_session=b&metadata.owner=x").await),
        [b]
    );
    assert!(
        list(&fake, "metadata.catty_session=a&metadata.owner=x")
            .await
            .is_empty()
    );
    assert_eq!(ids(&list(&fake, "state=created,stopped").await), [b]);
    assert_eq!(list(&fake, "").await.len(), 2);
    let summary = list(&fake, "summary=true").await;
    assert!(summary[0].get("config").is_none());
    error(
        &call(
            &fake,
            "GET",
            &format!("{}?state=bogus", machines_path(&fake)),
            None,
        )
        .await,
        400,
    );

    fake.faults().empty_lists(2);
    assert!(list(&fake, "").await.is_empty());
    assert!(list(&fake, "metadata.catty_session=a").await.is_empty());
    assert_eq!(
        list(&fake, "").await.len(),
        2,
        "the empty lists were transient"
    );

    let delete = format!("{}?force=true", machine_path(&fake, b));
    expect(&call(&fake, "DELETE", &delete, None).await, 200);
    assert_eq!(ids(&list(&fake, "").await), [a.as_str()]);
    assert_eq!(list(&fake, "include_deleted=true").await.len(), 2);
}

#[tokio::test]
async fn delete_wants_a_stopped_machine_or_force() {
    let fake = FakeFly::start(FakeFlyOptions {
        destroyed_linger: Duration::from_millis(500),
        ..FakeFlyOptions::default()
    });
    let id = started(&fake, "s").await;
    let pid = fake.machine(&id).unwrap().runtime_pid.unwrap();
    let path = machine_path(&fake, &id);
    let refused = error(&call(&fake, "DELETE", &path, None).await, 412);
    assert!(refused.starts_with("failed_precondition"), "{refused}");
    // fly-go's kill=true is not force to the strict fake (reference §2.6).
    error(
        &call(&fake, "DELETE", &format!("{path}?kill=true"), None).await,
        412,
    );
    assert!(fake.machine(&id).unwrap().runtime_alive);

    expect(
        &call(&fake, "DELETE", &format!("{path}?force=true"), None).await,
        200,
    );
    let destroyed = expect(&wait(&fake, &id, "state=destroyed&timeout=10").await, 200);
    assert_eq!(destroyed["state"], "destroyed");
    assert!(zombie_or_gone(pid), "the runtime was killed");
    // GET shows it destroyed for a while, then 404 (reference §1).
    assert_eq!(
        expect(&call(&fake, "GET", &path, None).await, 200)["state"],
        "destroyed"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    error(&call(&fake, "GET", &path, None).await, 404);
    error(
        &call(&fake, "DELETE", &format!("{path}?force=true"), None).await,
        404,
    );
}

fn zombie_or_gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split(' ').nth(2) == Some("Z"))
        .unwrap_or(true)
}

#[tokio::test]
async fn stop_signals_the_runtime_and_auto_destroys() {
    let fake = fake();
    let id = started(&fake, "s").await;
    let stop = format!("{}/stop", machine_path(&fake, &id));
    let array = error(&call(&fake, "POST", &stop, Some(json!([]))).await, 400);
    assert!(array.contains("cannot unmarshal array"), "{array}");
    error(
        &call(&fake, "POST", &stop, Some(json!({"signal": "SIGNOPE"}))).await,
        400,
    );
    error(
        &call(&fake, "POST", &stop, Some(json!({"timeout": "soon"}))).await,
        400,
    );
    expect(&call(&fake, "POST", &stop, Some(json!({}))).await, 200);
    // auto_destroy with restart "no": a stop ends in destroyed (reference §5).
    expect(&wait(&fake, &id, "state=destroyed&timeout=20").await, 200);
    assert!(!fake.machine(&id).unwrap().runtime_alive);

    // Without auto_destroy it stays stopped, and a plain delete then works.
    let body = edit(
        session_body("t"),
        "/config/auto_destroy",
        Some(json!(false)),
    );
    let m = create(&fake, body).await;
    let (id, instance) = (
        m["id"].as_str().unwrap(),
        m["instance_id"].as_str().unwrap(),
    );
    expect(&wait(&fake, id, "timeout=30").await, 200);
    let stop = format!("{}/stop", machine_path(&fake, id));
    expect(&call(&fake, "POST", &stop, None).await, 200);
    let query = format!("state=stopped&instance_id={instance}&timeout=20");
    expect(&wait(&fake, id, &query).await, 200);
    error(&call(&fake, "POST", &stop, None).await, 412);
    expect(
        &call(&fake, "DELETE", &machine_path(&fake, id), None).await,
        200,
    );
}

#[tokio::test]
async fn runtime_exit_follows_restart_policy() {
    let fake = fake();
    // The runtime ends itself at its TTL; with auto_destroy + "no" the machine is destroyed.
    let body = edit(
        session_body("ttl"),
        "/config/env/CATTY_TTL_SEC",
        Some(json!("1")),
    );
    let id = create(&fake, body).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    expect(&wait(&fake, &id, "state=destroyed&timeout=30").await, 200);
    assert_eq!(fake.machine(&id).unwrap().starts, 1);

    // A crash under on-failure restarts it.
    let body = edit(
        session_body("crash"),
        "/config/restart/policy",
        Some(json!("on-failure")),
    );
    let id = create(&fake, body).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    expect(&wait(&fake, &id, "timeout=30").await, 200);
    let first = fake.machine(&id).unwrap().runtime_pid.unwrap();
    assert!(fake.crash(&id));
    let restarted = tokio::time::timeout(DEADLINE, async {
        loop {
            let m = fake.machine(&id).unwrap();
            if m.state == "started" && m.runtime_pid.is_some_and(|p| p != first) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert_eq!(restarted.await.expect("restarted").starts, 2);

    // Under "no" a crash stops it for good (and auto_destroy destroys it).
    let id = started(&fake, "no").await;
    assert!(fake.crash(&id));
    expect(&wait(&fake, &id, "state=destroyed&timeout=20").await, 200);
    assert_eq!(fake.machine(&id).unwrap().starts, 1);
}
