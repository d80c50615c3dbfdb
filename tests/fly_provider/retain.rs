//! Work is kept until it is pulled, on Fly: the runtime's exit ends the machine (restart
//! `no`, `auto_destroy`), so the machine outlives its program only while the workspace holds
//! unpulled changes, never past `CATTY_RETAIN_SEC`, and only the grace period without them.

use std::time::{Duration, Instant};

use bytes::Bytes;
use catty::protocol::api::SessionCreated;
use catty::protocol::sync::Manifest;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::support::{SEED_IMAGE, Terminal};
use crate::common::api::fly::FlyDaemon;
use crate::common::fly::{FakeFly, FakeFlyOptions};
use crate::common::{HttpReply, http_send};

/// `CATTY_GRACE_SEC` on every machine.
const GRACE: Duration = Duration::from_secs(1);
/// What a machine may take past a deadline of its runtime to be destroyed.
const SLACK: Duration = Duration::from_secs(3);

/// The fake, its machines kept `GRACE` after their program, at most `retain`.
fn fake_retaining(retain: Duration) -> FakeFly {
    let env = [
        ("PS1", "$ ".to_string()),
        ("CATTY_GRACE_SEC", GRACE.as_secs().to_string()),
        ("CATTY_RETAIN_SEC", retain.as_secs().to_string()),
    ];
    FakeFly::start(FakeFlyOptions {
        seed_image: Some(SEED_IMAGE.into()),
        image_env: env.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        ..Default::default()
    })
}

/// A shell session on a machine that runs `command` through the edge, then `exit`: the
/// session and when its program's exit was heard.
async fn finished(fake: &FakeFly, command: &str) -> (FlyDaemon, SessionCreated, Instant) {
    let d = FlyDaemon::start(fake, &[]);
    let body = json!({"agent": "shell", "cmd": ["bash", "--norc", "-i"]});
    let created = d.create(body).await;
    let mut term = Terminal::attach(&created).await;
    term.run(&format!("{command}; echo done-$((6 * 7))"), "done-42")
        .await;
    let exited = term.exit().await;
    (d, created, exited)
}

/// A request to the session's runtime through the edge, with its token and routing headers.
async fn through_edge(
    fake: &FakeFly,
    created: &SessionCreated,
    req: hyper::http::request::Builder,
) -> HttpReply {
    let auth = format!("Bearer {}", created.connect_token);
    let mut req = req.header("authorization", auth);
    for (name, value) in &created.headers {
        req = req.header(name, value);
    }
    http_send(
        fake.edge_addr(),
        req.body(Full::<Bytes>::default()).unwrap(),
    )
    .await
}

/// Machine `id` stays `started`, its runtime alive, until `until`.
#[track_caller]
fn started_until(fake: &FakeFly, id: &str, until: Instant) {
    loop {
        let m = fake.machine(id).expect("the machine");
        let left = until.saturating_duration_since(Instant::now());
        assert!(
            m.state == "started" && m.runtime_alive,
            "{} (runtime alive: {}) {left:?} too early",
            m.state,
            m.runtime_alive
        );
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

/// Machine `id` is destroyed by `deadline`; when it was seen destroyed.
#[track_caller]
fn destroyed_by(fake: &FakeFly, id: &str, deadline: Instant) -> Instant {
    let within = deadline.saturating_duration_since(Instant::now());
    let destroyed = fake.wait_for_state(id, "destroyed", within);
    let state = fake.machine(id).map(|m| m.state);
    assert!(destroyed, "still {state:?} at the deadline");
    Instant::now()
}

#[tokio::test]
async fn a_machine_with_unpulled_work_outlives_its_program_until_the_pull() {
    let retain = Duration::from_secs(10);
    let fake = fake_retaining(retain);
    let (_d, created, exited) = finished(&fake, "echo made > made.txt").await;
    let id = created.machine_id.as_str();
    started_until(&fake, id, exited + 2 * GRACE);
    let manifest: Manifest = through_edge(&fake, &created, Request::get("/sync/manifest"))
        .await
        .json(StatusCode::OK);
    assert!(
        manifest.entries.iter().any(|e| e.path == "made.txt"),
        "{manifest:?}"
    );
    let ack = format!("/sync/pulled?generation={}", manifest.generation);
    let reply = through_edge(&fake, &created, Request::post(ack)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let acked = Instant::now();
    let gone = destroyed_by(&fake, id, acked + SLACK);
    assert!(
        gone < exited + retain - SLACK,
        "ended by the retention, not the pull"
    );
    let edge = fake.edge_requests();
    let sync = edge.iter().filter(|r| r.path.starts_with("/sync/"));
    let routed: Vec<_> = sync.map(|r| r.routed_to.as_deref()).collect();
    assert_eq!(routed, [Some(id), Some(id)], "both through the edge to it");
}

#[tokio::test]
async fn a_machine_never_outlives_catty_retain_sec() {
    let retain = Duration::from_secs(4);
    let fake = fake_retaining(retain);
    let (_d, created, exited) = finished(&fake, "echo made > made.txt").await;
    let id = created.machine_id.as_str();
    // Kept well past the grace period: nobody pulled the work.
    started_until(&fake, id, exited + retain - GRACE);
    destroyed_by(&fake, id, exited + retain + SLACK);
}

#[tokio::test]
async fn a_machine_without_changes_ends_after_the_grace() {
    let retain = Duration::from_secs(10);
    let fake = fake_retaining(retain);
    let (_d, created, exited) = finished(&fake, "echo nothing written").await;
    let id = created.machine_id.as_str();
    // The program's exit was heard just after it happened: half the grace is safely inside.
    started_until(&fake, id, exited + GRACE / 2);
    let gone = destroyed_by(&fake, id, exited + GRACE + SLACK);
    assert!(gone < exited + retain - SLACK);
}
