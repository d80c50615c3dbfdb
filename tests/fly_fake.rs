//! The fake Fly Machines API and edge (`tests/common/fly`) against raw HTTP requests: it
//! rejects what the reference says Fly rejects (`reference/fly-machines.md` §8), its faults
//! fire, its machines are real runtimes, and its edge routes by `fly-force-instance-id`.

use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::common::fly::{Endpoint, FakeFly, FakeFlyOptions};
use crate::common::{DEADLINE, HttpReply, http_send, sized};

/// The runtime's `CONNECT_TOKEN` in every machine these tests create.
const CONNECT_TOKEN: &str = "connect-token-0123456789";

const IMAGE: &str = "ghcr.io/example/catty-exec:1";

fn fake() -> FakeFly {
    FakeFly::start(FakeFlyOptions::default())
}

async fn send(
    fake: &FakeFly,
    method: &str,
    path: &str,
    body: Option<&Value>,
    auth: Option<&str>,
) -> HttpReply {
    let mut req = hyper::Request::builder().method(method).uri(path);
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(serde_json::to_vec(b).unwrap()));
    http_send(fake.api_addr(), req.body(Full::new(body)).unwrap()).await
}

/// A request with the right token.
async fn call(fake: &FakeFly, method: &str, path: &str, body: Option<Value>) -> HttpReply {
    send(fake, method, path, body.as_ref(), Some(&fake.auth_header())).await
}

#[track_caller]
fn expect(reply: &HttpReply, status: u16) -> Value {
    let text = String::from_utf8_lossy(&reply.body);
    assert_eq!(reply.status.as_u16(), status, "answer {text}");
    serde_json::from_slice(&reply.body).unwrap_or(Value::Null)
}

/// The `error` of an `ErrorResponse` with `status` (reference §1).
#[track_caller]
fn error(reply: &HttpReply, status: u16) -> String {
    let body = expect(reply, status);
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {body}"));
    assert!(!message.is_empty());
    message.to_string()
}

fn machines_path(fake: &FakeFly) -> String {
    format!("/v1/apps/{}/machines", fake.app())
}

fn machine_path(fake: &FakeFly, id: &str) -> String {
    format!("{}/{id}", machines_path(fake))
}

/// A create body shaped like catty's: one session's runtime, destroyed when it exits.
fn session_body(session: &str) -> Value {
    json!({
        "region": "iad",
        "config": {
            "image": IMAGE,
            "env": {
                "CONNECT_TOKEN": CONNECT_TOKEN, "CATTY_CMD": "[\"/bin/sh\"]",
                "CATTY_AGENT": "shell", "CATTY_TTL_SEC": "600", "CATTY_GRACE_SEC": "5",
                "PS1": "$ ",
            },
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
            "restart": {"policy": "no"},
            "auto_destroy": true,
            "stop_config": {"signal": "SIGTERM", "timeout": "5s"},
            "metadata": {"catty_session": session},
            "services": [{
                "protocol": "tcp", "internal_port": 8080, "autostart": false, "autostop": "off",
                "ports": [{"port": 443, "handlers": ["tls", "http"]}],
            }],
        },
    })
}

/// `body` with the value at JSON pointer `at` replaced (or removed when `value` is None).
fn edit(mut body: Value, at: &str, value: Option<Value>) -> Value {
    let (parent, key) = at.rsplit_once('/').unwrap();
    let parent = body.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    match value {
        Some(v) => parent.insert(key.to_string(), v),
        None => parent.remove(key),
    };
    body
}

async fn create(fake: &FakeFly, body: Value) -> Value {
    expect(
        &call(fake, "POST", &machines_path(fake), Some(body)).await,
        200,
    )
}

async fn wait(fake: &FakeFly, id: &str, query: &str) -> HttpReply {
    call(
        fake,
        "GET",
        &format!("{}/wait?{query}", machine_path(fake, id)),
        None,
    )
    .await
}

/// Creates a session machine and waits until it is started.
async fn started(fake: &FakeFly, session: &str) -> String {
    let id = create(fake, session_body(session)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = expect(&wait(fake, &id, "state=started&timeout=30").await, 200);
    assert_eq!(answer, json!({"ok": true, "state": "started"}));
    id
}

async fn list(fake: &FakeFly, query: &str) -> Vec<Value> {
    let reply = call(
        fake,
        "GET",
        &format!("{}?{query}", machines_path(fake)),
        None,
    )
    .await;
    expect(&reply, 200)
        .as_array()
        .expect("a list, never null")
        .clone()
}

fn ids(machines: &[Value]) -> Vec<&str> {
    machines.iter().map(|m| m["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn auth_forms_and_paths() {
    let fake = fake();
    let path = machines_path(&fake);
    assert_eq!(
        error(&send(&fake, "GET", &path, None, None).await, 401),
        "unauthorized"
    );
    error(
        &send(&fake, "GET", &path, None, Some("FlyV1 fm2_wrong")).await,
        401,
    );
    error(
        &send(&fake, "GET", &path, None, Some(fake.token())).await,
        401,
    );
    // A macaroon goes as FlyV1 (fly-go); `Bearer fm2_…` is UNVERIFIED, refused when strict.
    let flyv1 = format!("FlyV1 {}", fake.token());
    expect(&send(&fake, "GET", &path, None, Some(&flyv1)).await, 200);
    let bearer = format!("Bearer {}", fake.token());
    error(&send(&fake, "GET", &path, None, Some(&bearer)).await, 401);

    let plain = FakeFly::start(FakeFlyOptions {
        token: "plain-token".into(),
        ..FakeFlyOptions::default()
    });
    let path = machines_path(&plain);
    expect(
        &send(&plain, "GET", &path, None, Some("Bearer plain-token")).await,
        200,
    );
    error(
        &send(&plain, "GET", &path, None, Some("FlyV1 plain-token")).await,
        401,
    );
    plain.faults().revoke_token(true);
    error(
        &send(&plain, "GET", &path, None, Some("Bearer plain-token")).await,
        401,
    );

    assert_eq!(
        error(
            &call(&fake, "GET", "/v1/apps/nope/machines", None).await,
            404
        ),
        "not_found: app not found"
    );
    let no_v1 = call(
        &fake,
        "GET",
        &format!("/apps/{}/machines", fake.app()),
        None,
    )
    .await;
    assert_eq!(no_v1.status.as_u16(), 404);
    assert_eq!(
        error(
            &call(&fake, "GET", &machine_path(&fake, "0123456789abcd"), None).await,
            404
        ),
        "not_found: machine not found"
    );
    let recorded = fake.requests();
    assert_eq!(recorded[0].status, 401);
    assert_eq!(recorded[3].header("Authorization"), Some(flyv1.as_str()));
}

#[tokio::test]
async fn create_rejects_what_fly_rejects() {
    let fake = fake();
    let path = machines_path(&fake);
    let ok = session_body("s");
    // Each bad body with a word its refusal must name, so each fails for its own reason.
    let bad = [
        (json!([ok.clone()]), "cannot unmarshal array"),
        (edit(ok.clone(), "/config", None), "config is required"),
        (edit(ok.clone(), "/config/image", None), "image is required"),
        (
            edit(ok.clone(), "/config/image", Some(json!(""))),
            "image is required",
        ),
        (
            edit(ok.clone(), "/config/env/CATTY_TTL_SEC", Some(json!(600))),
            "config.env",
        ),
        (
            edit(
                ok.clone(),
                "/config/metadata/catty_session",
                Some(json!(true)),
            ),
            "config.metadata",
        ),
        (
            edit(ok.clone(), "/config/restart/policy", Some(json!("on-fail"))),
            "restart policy",
        ),
        (
            edit(
                ok.clone(),
                "/config/restart/policy",
                Some(json!("sometimes")),
            ),
            "restart policy",
        ),
        (
            edit(ok.clone(), "/config/guest/cpus", Some(json!(3))),
            "number of CPUs",
        ),
        (
            edit(ok.clone(), "/config/guest/memory_mb", Some(json!(300))),
            "256 MiB increments",
        ),
        (
            edit(ok.clone(), "/config/guest/memory_mb", Some(json!(4096))),
            "maximum is 2048 MB",
        ),
        (
            edit(ok.clone(), "/config/guest/cpu_kind", Some(json!("turbo"))),
            "cpu_kind",
        ),
        (
            edit(
                ok.clone(),
                "/config/guest",
                Some(json!({"cpu_kind": "performance", "cpus": 1, "memory_mb": 1024})),
            ),
            "minimum is 2048 MB",
        ),
        (
            edit(
                ok.clone(),
                "/config/services/0/autostart",
                Some(json!("true")),
            ),
            "autostart",
        ),
        (
            edit(
                ok.clone(),
                "/config/services/0/autostop",
                Some(json!("maybe")),
            ),
            "autostop",
        ),
        (
            edit(
                ok.clone(),
                "/config/services/0/protocol",
                Some(json!("http")),
            ),
            "protocol",
        ),
        (
            edit(ok.clone(), "/config/services/0/internal_port", None),
            "internal_port",
        ),
        (
            edit(ok.clone(), "/config/stop_config/timeout", Some(json!("30"))),
            "duration",
        ),
        (
            edit(
                ok.clone(),
                "/config/stop_config/signal",
                Some(json!("SIGWHAT")),
            ),
            "signal",
        ),
        (
            edit(ok.clone(), "/config/auto_destroy", Some(json!("yes"))),
            "auto_destroy",
        ),
        (edit(ok.clone(), "/region", Some(json!("mars"))), "region"),
    ];
    for (body, reason) in bad {
        let reply = call(&fake, "POST", &path, Some(body.clone())).await;
        let message = error(&reply, 400);
        assert!(message.contains(reason), "{message:?} for {body}");
    }
    assert!(fake.machines().is_empty(), "nothing was created");

    // The shapes the table allows pass.
    let perf = json!({"cpu_kind": "performance", "cpus": 2, "memory_mb": 4096});
    create(&fake, edit(ok.clone(), "/config/guest", Some(perf))).await;
    let shared = json!({"cpu_kind": "shared", "cpus": 2, "memory_mb": 4096});
    create(&fake, edit(ok.clone(), "/config/guest", Some(shared))).await;

    // Not strict: the UNVERIFIED rules (§8 *) are off.
    let lenient = FakeFly::start(FakeFlyOptions {
        strict: false,
        ..FakeFlyOptions::default()
    });
    let body = edit(ok.clone(), "/config/restart/policy", Some(json!("on-fail")));
    let created = create(&lenient, edit(body, "/config/guest/cpus", Some(json!(3)))).await;
    assert_eq!(created["config"]["restart"]["policy"], "on-failure");
}

#[tokio::test]
async fn create_answers_a_created_machine() {
    let fake = fake();
    let m = create(
        &fake,
        edit(session_body("s1"), "/skip_launch", Some(json!(true))),
    )
    .await;
    let id = m["id"].as_str().unwrap();
    assert!(
        id.len() == 14 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    let instance = m["instance_id"].as_str().unwrap();
    assert_eq!(instance.len(), 26, "a ULID");
    assert_eq!(m["state"], "created");
    assert_eq!(m["region"], "iad");
    assert_eq!(
        m["config"]["services"][0]["autostop"], false,
        "off comes back as false"
    );
    assert_eq!(m["image_ref"]["repository"], "example/catty-exec");
    assert!(m.get("nonce").is_none(), "a nonce only with lease_ttl");
    // skip_launch leaves it created.
    error(&wait(&fake, id, "state=started&timeout=1").await, 408);
    assert_eq!(fake.machine(id).unwrap().state, "created");
    assert!(!fake.machine(id).unwrap().runtime_alive);

    let leased = create(
        &fake,
        edit(session_body("s2"), "/lease_ttl", Some(json!(30))),
    )
    .await;
    assert!(leased["nonce"].as_str().is_some_and(|n| !n.is_empty()));

    let named = edit(session_body("s3"), "/name", Some(json!("catty-one")));
    create(&fake, named.clone()).await;
    let taken = call(&fake, "POST", &machines_path(&fake), Some(named)).await;
    assert_eq!(expect(&taken, 422)["status"], "name_taken");

    // flyctl's fly_* keys are not refused by the API, but they make a machine one that
    // `fly deploy` adopts (reference §4): the view says so.
    let adopted = json!({"fly_platform_version": "v2", "fly_process_group": "app"});
    let body = edit(session_body("s4"), "/config/metadata", Some(adopted));
    let m = create(&fake, body).await;
    let view = fake.machine(m["id"].as_str().unwrap()).unwrap();
    assert!(view.adoptable_by_deploy());
    assert!(!fake.machine(id).unwrap().adoptable_by_deploy());
}

#[tokio::test]
async fn images_come_from_the_registry() {
    let seed = "registry.fly.io/catty-exec:deployment-01J0000000000000000000000";
    let fake = FakeFly::start(FakeFlyOptions {
        seed_image: Some(seed.into()),
        ..FakeFlyOptions::default()
    });
    let listed = list(&fake, "").await;
    assert_eq!(listed.len(), 1, "the seeded app machine");
    let image_ref = &listed[0]["image_ref"];
    assert_eq!(image_ref["registry"], "registry.fly.io");
    assert_eq!(image_ref["tag"], "deployment-01J0000000000000000000000");
    assert!(image_ref["digest"].as_str().unwrap().starts_with("sha256:"));
    let pinned = fake.seed_image_ref().unwrap();
    assert_eq!(pinned, FakeFly::image_ref_of(seed));

    let with_image = |image: &str| edit(session_body("s"), "/config/image", Some(json!(image)));
    create(&fake, with_image(&pinned)).await;
    create(&fake, with_image(seed)).await;
    let never_pushed = call(
        &fake,
        "POST",
        &machines_path(&fake),
        Some(with_image("registry.fly.io/catty-exec:latest")),
    )
    .await;
    assert!(error(&never_pushed, 422).contains("manifest unknown"));
}

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

#[tokio::test]
async fn timeout_after_create_leaves_a_machine() {
    let fake = fake();
    fake.faults().timeout_after_create(1);
    let reply = call(
        &fake,
        "POST",
        &machines_path(&fake),
        Some(session_body("dup")),
    )
    .await;
    assert!(error(&reply, 408).starts_with("deadline_exceeded"));
    let found = list(&fake, "metadata.catty_session=dup").await;
    assert_eq!(found.len(), 1, "the 408 came after the machine was made");
    let id = found[0]["id"].as_str().unwrap();
    expect(&wait(&fake, id, "timeout=30").await, 200);
    // A naive retry makes a duplicate.
    create(&fake, session_body("dup")).await;
    assert_eq!(list(&fake, "metadata.catty_session=dup").await.len(), 2);
}

#[tokio::test]
async fn injected_faults_fire_then_clear() {
    let fake = fake();
    let path = machines_path(&fake);
    fake.faults().throttle(Endpoint::Create, 2, Some(3));
    for _ in 0..2 {
        let reply = call(&fake, "POST", &path, Some(session_body("t"))).await;
        error(&reply, 429);
        assert_eq!(reply.header("retry-after"), Some("3"));
    }
    expect(&call(&fake, "GET", &path, None).await, 200);
    fake.faults().throttle(Endpoint::Any, 1, None);
    let reply = call(&fake, "GET", &path, None).await;
    error(&reply, 429);
    assert_eq!(reply.header("retry-after"), None);
    fake.faults().server_error(Endpoint::List, 1, 503);
    error(&call(&fake, "GET", &path, None).await, 503);
    expect(&call(&fake, "GET", &path, None).await, 200);

    fake.faults().no_capacity("ams", true);
    let body = edit(session_body("c"), "/region", Some(json!("ams")));
    let full = call(&fake, "POST", &path, Some(body.clone())).await;
    assert_eq!(expect(&full, 422)["status"], "insufficient_capacity");
    fake.faults().no_capacity("ams", false);
    create(&fake, body).await;
    assert!(fake.machines().iter().all(|m| m.region == "ams"));
    assert_eq!(fake.machines().len(), 1);
}

#[tokio::test]
async fn documented_rate_limits_when_switched_on() {
    let fake = FakeFly::start(FakeFlyOptions {
        rate_limits: true,
        ..FakeFlyOptions::default()
    });
    let body = edit(session_body("r"), "/skip_launch", Some(json!(true)));
    // Creates: 1 req/s per app with bursts of 3 (reference §1).
    for _ in 0..3 {
        create(&fake, body.clone()).await;
    }
    error(
        &call(&fake, "POST", &machines_path(&fake), Some(body)).await,
        429,
    );
    assert_eq!(list(&fake, "").await.len(), 3);
}

#[tokio::test]
async fn leases_guard_mutations() {
    let fake = fake();
    let id = started(&fake, "l").await;
    let lease_path = format!("{}/lease", machine_path(&fake, &id));
    let lease = expect(
        &call(&fake, "POST", &lease_path, Some(json!({"ttl": 60}))).await,
        201,
    );
    assert_eq!(lease["status"], "success");
    let nonce = lease["data"]["nonce"].as_str().unwrap().to_string();
    error(&call(&fake, "POST", &lease_path, None).await, 409);
    let stop = format!("{}/stop", machine_path(&fake, &id));
    let held = error(&call(&fake, "POST", &stop, None).await, 409);
    assert!(held.contains("lease currently held by"), "{held}");
    error(&call(&fake, "DELETE", &lease_path, None).await, 400);

    let with_nonce = hyper::Request::post(&stop)
        .header("authorization", fake.auth_header())
        .header("fly-machine-lease-nonce", &nonce)
        .body(Full::new(Bytes::new()))
        .unwrap();
    expect(&http_send(fake.api_addr(), with_nonce).await, 200);
}

#[tokio::test]
async fn metadata_edits_keep_the_version() {
    let fake = fake();
    let m = create(
        &fake,
        edit(session_body("m"), "/skip_launch", Some(json!(true))),
    )
    .await;
    let id = m["id"].as_str().unwrap();
    let key = format!("{}/metadata/catty_expires_at", machine_path(&fake, id));
    let set = call(
        &fake,
        "POST",
        &key,
        Some(json!({"value": "2030-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(set.status.as_u16(), 204);
    error(
        &call(&fake, "POST", &key, Some(json!({"value": 5}))).await,
        400,
    );
    let metadata = format!("{}/metadata", machine_path(&fake, id));
    let got = expect(&call(&fake, "GET", &metadata, None).await, 200);
    assert_eq!(got["catty_expires_at"], "2030-01-01T00:00:00Z");
    let after = expect(
        &call(&fake, "GET", &machine_path(&fake, id), None).await,
        200,
    );
    assert_eq!(after["instance_id"], m["instance_id"]);
    assert_eq!(call(&fake, "DELETE", &key, None).await.status.as_u16(), 204);
    let metadata = fake.machine(id).unwrap().metadata;
    assert!(!metadata.contains_key("catty_expires_at"));
}

/// A request to the edge with `headers`, on a fresh connection.
async fn edge_get(fake: &FakeFly, path: &str, headers: &[(&str, &str)]) -> HttpReply {
    let mut req = hyper::Request::get(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    http_send(fake.edge_addr(), req.body(Full::new(Bytes::new())).unwrap()).await
}

#[tokio::test]
async fn edge_routes_by_forced_instance() {
    let fake = fake();
    let a = started(&fake, "a").await;
    let b = started(&fake, "b").await;
    for id in [&a, &b] {
        let reply = edge_get(&fake, "/healthz", &[("fly-force-instance-id", id)]).await;
        assert_eq!(reply.status.as_u16(), 200);
        assert_eq!(&reply.body[..], b"ok");
    }
    let routed: Vec<_> = fake
        .edge_requests()
        .iter()
        .map(|r| r.routed_to.clone())
        .collect();
    assert_eq!(routed, [Some(a.clone()), Some(b.clone())]);

    // No fallback for a machine that is not there (reference §6).
    let unknown = edge_get(
        &fake,
        "/healthz",
        &[("fly-force-instance-id", "0123456789abcd")],
    );
    assert_eq!(unknown.await.status.as_u16(), 503);
    let stop = format!("{}/stop", machine_path(&fake, &b));
    expect(&call(&fake, "POST", &stop, None).await, 200);
    expect(&wait(&fake, &b, "state=destroyed&timeout=20").await, 200);
    let destroyed = edge_get(&fake, "/healthz", &[("fly-force-instance-id", &b)]).await;
    assert_eq!(destroyed.status.as_u16(), 503);
    // Without the header: any started machine.
    let any = edge_get(&fake, "/healthz", &[]).await;
    assert_eq!(any.status.as_u16(), 200);
    assert_eq!(
        fake.edge_requests().last().unwrap().routed_to.as_deref(),
        Some(a.as_str())
    );
}

#[tokio::test]
async fn edge_starts_a_stopped_machine_only_with_autostart() {
    let fake = fake();
    let body = edit(session_body("auto"), "/skip_launch", Some(json!(true)));
    let off = create(&fake, body.clone()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = edge_get(&fake, "/healthz", &[("fly-force-instance-id", &off)]).await;
    assert_eq!(reply.status.as_u16(), 503);
    let on = edit(body, "/config/services/0/autostart", Some(json!(true)));
    let on = create(&fake, on).await["id"].as_str().unwrap().to_string();
    let reply = edge_get(&fake, "/healthz", &[("fly-force-instance-id", &on)]).await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(fake.machine(&on).unwrap().state, "started");
    // A service aimed at a port the runtime does not listen on refuses the connection.
    let body = edit(
        session_body("port"),
        "/config/services/0/internal_port",
        Some(json!(3000)),
    );
    let id = create(&fake, body).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    expect(&wait(&fake, &id, "timeout=30").await, 200);
    let reply = edge_get(&fake, "/healthz", &[("fly-force-instance-id", &id)]).await;
    assert_eq!(reply.status.as_u16(), 502);
}

#[tokio::test]
async fn websocket_through_the_edge_until_the_link_is_cut() {
    let fake = fake();
    let id = started(&fake, "ws").await;
    let url = format!(
        "ws://{}/connect?{}",
        fake.edge_addr(),
        sized(80, 24).to_query()
    );
    let auth = format!("Bearer {CONNECT_TOKEN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("fly-force-instance-id", id.as_str()),
    ];
    let mut ws = catty::net::dial(&url, &headers)
        .await
        .expect("upgrade through the edge");
    ws.set_auto_pong(true);
    let edge = fake.edge_requests();
    let head = edge.last().unwrap();
    assert!(
        head.headers
            .iter()
            .any(|(n, v)| n == "authorization" && *v == auth)
    );

    ws.write_frame(Frame::binary(Payload::Owned(
        b"echo fly-$((6*7))\n".to_vec(),
    )))
    .await
    .unwrap();
    let mut output = Vec::new();
    let seen = tokio::time::timeout(DEADLINE, async {
        while !String::from_utf8_lossy(&output).contains("fly-42") {
            let frame = ws.read_frame().await.expect("a frame");
            if frame.opcode == OpCode::Binary {
                output.extend_from_slice(&frame.payload);
            }
        }
    });
    seen.await.expect("the shell's output through the edge");

    fake.cut_links();
    let after = tokio::time::timeout(DEADLINE, async {
        loop {
            match ws.read_frame().await {
                Ok(frame) if frame.opcode == OpCode::Close => return,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    after.await.expect("the cut link ends the WebSocket");
    assert!(
        fake.machine(&id).unwrap().runtime_alive,
        "the machine outlives the link"
    );
}
