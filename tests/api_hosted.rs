//! The hosted API (`catty api --database-url`): users and their sessions in a real PostgreSQL
//! (`common::pg`), several instances on one database, machines on the Fly fake. Users and
//! their tokens are arranged in the database as a login would leave them.

mod claude;
mod gateway;
mod scale;

use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::json;

use crate::common::DEADLINE;
use crate::common::api::ApiClient;
use crate::common::api::fly::FlyDaemon;
use crate::common::fly::FakeFly;
use crate::common::hosted::CONNECT_KEY;
use crate::common::pg::{self, TestDb};
use crate::fly_provider::support::{Terminal, fake, made};

/// One database, the Fly fake, and `n` instances of the hosted API on them.
struct Hosted {
    fake: FakeFly,
    db: TestDb,
    instances: Vec<FlyDaemon>,
}

impl Hosted {
    async fn start(n: usize) -> Hosted {
        Hosted::on(fake(), n, &[]).await
    }

    /// `n` instances on `fake`, with `extra` in their environment.
    async fn on(fake: FakeFly, n: usize, extra: &[(&str, &str)]) -> Hosted {
        let db = pg::database().await;
        let instances = (0..n).map(|_| instance_with(&fake, &db, extra)).collect();
        Hosted {
            fake,
            db,
            instances,
        }
    }

    /// A user with a token, as `catty login` leaves them: a client of instance `i`.
    async fn user(&self, name: &str) -> User {
        let sql = pg::cluster().connect(&self.db.name).await;
        let row = sql
            .query_one(
                "INSERT INTO users (issuer, subject, email) VALUES ('https://idp.test', $1, $2)
                 RETURNING id",
                &[&name, &format!("{name}@example.com")],
            )
            .await
            .unwrap();
        let id: String = row.get(0);
        let token = format!("cat_{}", crate::common::client_id());
        sql.execute(
            "INSERT INTO cli_tokens (user_id, token_sha256, name, expires_at)
             VALUES ($1, sha256($2::text::bytea), 'test', now() + interval '1 day')",
            &[&id, &token],
        )
        .await
        .unwrap();
        User { id, token }
    }

    /// `user`'s client of instance `i`.
    fn as_user(&self, i: usize, user: &User) -> ApiClient {
        ApiClient {
            addr: self.instances[i].addr,
            token: user.token.clone(),
        }
    }
}

struct User {
    id: String,
    token: String,
}

fn instance(fake: &FakeFly, db: &TestDb) -> FlyDaemon {
    instance_with(fake, db, &[])
}

fn instance_with(fake: &FakeFly, db: &TestDb, extra: &[(&str, &str)]) -> FlyDaemon {
    let mut env = vec![
        ("CATTY_DATABASE_URL", db.url.as_str()),
        ("CATTY_CONNECT_KEY", CONNECT_KEY),
    ];
    env.extend_from_slice(extra);
    FlyDaemon::start(fake, &env)
}

fn bash() -> serde_json::Value {
    json!({"agent": "shell", "cmd": ["bash", "--norc", "-i"]})
}

#[tokio::test]
async fn users_see_and_act_on_their_own_sessions_through_any_instance() {
    let h = Hosted::start(2).await;
    let (alice, bob) = (h.user("alice").await, h.user("bob").await);
    let (alice_a, alice_b) = (h.as_user(0, &alice), h.as_user(1, &alice));
    let (bob_a, bob_b) = (h.as_user(0, &bob), h.as_user(1, &bob));

    let created = alice_a.create(bash()).await;
    let listed = alice_b.list().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].label, created.label);
    assert!(bob_a.list().await.is_empty(), "bob sees alice's session");

    // Someone else's session does not exist for bob, by label or by id, on either instance.
    for key in [&created.label, &created.session_id] {
        for bob in [&bob_a, &bob_b] {
            for (method, path) in [
                ("GET", format!("/v1/sessions/{key}")),
                ("POST", format!("/v1/sessions/{key}/stop")),
                ("DELETE", format!("/v1/sessions/{key}")),
            ] {
                let answer = bob.call(method, &path, "").await;
                assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}");
                assert!(answer.body.contains("no session"), "{}", answer.body);
            }
        }
    }
    assert_eq!(bob_b.stop_all().await, 0);
    assert_eq!(
        alice_a.session(&created.label).await.state_text(),
        "running"
    );

    // Connected through the other instance: the same connect token, derived, not stored.
    let through_b = alice_b.session(&created.label).await;
    assert_eq!(through_b.connect_token, created.connect_token);
    let sql = pg::cluster().connect(&h.db.name).await;
    let stored: String = sql
        .query_one("SELECT record::text FROM sessions", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!stored.contains(&created.connect_token), "{stored}");
    assert!(stored.contains(&alice.id), "{stored}");
    let mut terminal = Terminal::attach(&created).await;
    terminal.run("echo hosted-$((6*7))", "hosted-42").await;

    // Stopped through the other instance: its machine is destroyed.
    let stopped = alice_b.stop(&created.label).await;
    assert_eq!(stopped.state_text(), "stopped");
    let machine = &made(&h.fake)[0];
    assert!(h.fake.wait_for_state(&machine.id, "destroyed", DEADLINE));
    assert_eq!(alice_a.list().await[0].state_text(), "stopped");
}

#[tokio::test]
async fn labels_and_limits_are_per_user() {
    let h = Hosted::start(1).await;
    let (alice, bob) = (h.user("alice").await, h.user("bob").await);
    let (alice, bob) = (h.as_user(0, &alice), h.as_user(0, &bob));
    let a = alice.create(bash()).await;
    let b = bob.create(bash()).await;
    // Each finds their own by label; a label of the other's is not theirs.
    assert_eq!(alice.session(&a.label).await.session_id, a.session_id);
    assert_eq!(bob.session(&b.label).await.session_id, b.session_id);
    let sql = pg::cluster().connect(&h.db.name).await;
    // Two live sessions of one user cannot share a label, whatever writes them.
    let dup = sql
        .execute(
            "INSERT INTO sessions (id, owner, label, live, destroy_pending, expires_at,
                                   created_at, record)
             SELECT 's-dup', owner, label, true, false, expires_at, created_at, record
             FROM sessions WHERE id = $1",
            &[&a.session_id],
        )
        .await;
    assert!(dup.is_err(), "a second live session with one label");
}

#[tokio::test]
async fn a_token_that_is_unknown_revoked_or_expired_gets_401_everywhere_at_once() {
    let h = Hosted::start(2).await;
    let alice = h.user("alice").await;
    for i in 0..2 {
        assert!(h.as_user(i, &alice).list().await.is_empty());
    }
    let stranger = ApiClient {
        addr: h.instances[0].addr,
        token: format!("cat_{}", "0".repeat(64)),
    };
    let answer = stranger.call("GET", "/v1/sessions", "").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.body.contains("catty login"), "{}", answer.body);

    let sql = pg::cluster().connect(&h.db.name).await;
    sql.execute("UPDATE cli_tokens SET revoked_at = now()", &[])
        .await
        .unwrap();
    for i in 0..2 {
        let answer = h.as_user(i, &alice).call("GET", "/v1/sessions", "").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "instance {i}");
    }
    let bob = h.user("bob").await;
    sql.execute(
        "UPDATE cli_tokens SET expires_at = now() - interval '1 s'",
        &[],
    )
    .await
    .unwrap();
    let answer = h.as_user(1, &bob).call("GET", "/v1/sessions", "").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn instances_starting_together_migrate_once() {
    let fake = fake();
    let db = pg::database().await;
    let instances: Vec<FlyDaemon> = std::thread::scope(|s| {
        let starting: Vec<_> = (0..3).map(|_| s.spawn(|| instance(&fake, &db))).collect();
        starting.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let sql = pg::cluster().connect(&db.name).await;
    let versions: Vec<i32> = sql
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Every migration the source has, each once, in order.
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/db/migrations"))
        .unwrap()
        .count() as i32;
    assert_eq!(versions, (1..=shipped).collect::<Vec<_>>());
    // And once more, on a database that has them all.
    drop(instances);
    let again = instance(&fake, &db);
    let count: i64 = sql
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, i64::from(shipped));
    drop(again);
}

#[tokio::test]
async fn the_backstop_of_two_instances_destroys_an_expired_machine_once() {
    let h = Hosted::start(2).await;
    let alice = h.user("alice").await;
    let client = h.as_user(0, &alice);
    let created = client
        .create(json!({"agent": "shell", "cmd": ["sleep", "600"], "ttl_sec": 3600}))
        .await;
    // Its deadline passed long ago (the runtime's own TTL is an hour: only the backstop acts).
    let sql = pg::cluster().connect(&h.db.name).await;
    sql.execute(
        "UPDATE sessions SET expires_at = now() - interval '1 hour',
                record = jsonb_set(record, '{expires_at}', to_jsonb(1))
         WHERE id = $1",
        &[&created.session_id],
    )
    .await
    .unwrap();
    let deadline = Instant::now() + DEADLINE + Duration::from_secs(20);
    loop {
        let state = client.list().await[0].state_text();
        if state == "expired" {
            break;
        }
        assert!(Instant::now() < deadline, "still {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let machine = &made(&h.fake)[0];
    assert!(h.fake.wait_for_state(&machine.id, "destroyed", DEADLINE));
    // Both instances swept meanwhile (every 15 s at most); one destroyed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let destroys = h
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.ends_with(&format!("/machines/{}", machine.id)))
        .count();
    assert_eq!(destroys, 1);
}

#[tokio::test]
async fn an_instance_killed_mid_create_leaves_no_machine_and_no_half_record() {
    let mut h = Hosted::start(2).await;
    let alice = h.user("alice").await;
    // The machine never starts, so the create waits (up to 180 s) until its instance dies.
    h.fake.faults().stuck_in_created(1);
    let creating = h.as_user(0, &alice);
    let create = tokio::spawn(async move { creating.try_create(&bash()).await });
    let deadline = Instant::now() + DEADLINE;
    while made(&h.fake).is_empty() {
        assert!(Instant::now() < deadline, "no machine was created");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client_b = h.as_user(1, &alice);
    let listed = client_b.list().await;
    assert_eq!(
        listed[0].state_text(),
        "starting",
        "another instance's create is left alone"
    );
    h.instances[0].kill9();
    assert!(
        create.await.unwrap().is_err(),
        "the killed instance answered"
    );

    // The other instance finds the orphan at its next sweep (every 15 s at most) and, its
    // machine not answering, ends it and destroys the machine.
    let machine = made(&h.fake)[0].id.clone();
    let deadline = Instant::now() + DEADLINE + Duration::from_secs(15);
    loop {
        let state = client_b.list().await[0].state_text();
        if state == "gone" {
            break;
        }
        assert!(Instant::now() < deadline, "the orphan is still {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(h.fake.wait_for_state(&machine, "destroyed", DEADLINE));
    let sql = pg::cluster().connect(&h.db.name).await;
    let half: i64 = sql
        .query_one(
            "SELECT count(*) FROM sessions WHERE live OR destroy_pending",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(half, 0);
}

#[tokio::test]
async fn the_server_clamps_what_a_session_may_have() {
    let fake = fake();
    let db = pg::database().await;
    let limits = [("CATTY_REGIONS", "ams,fra"), ("CATTY_MAX_TTL", "1h")];
    let h = Hosted {
        instances: vec![instance_with(&fake, &db, &limits)],
        fake,
        db,
    };
    let alice = h.user("alice").await;
    let client = h.as_user(0, &alice);
    let refused = client
        .create_refused(json!({"agent": "shell", "cmd": ["true"], "region": "mars"}))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("ams, fra"), "{}", refused.body);
    let created = client
        .create(
            json!({"agent": "shell", "cmd": ["bash", "--norc", "-i"], "region": "fra",
            "cpus": 64, "memory_mb": 262144, "ttl_sec": 86400}),
        )
        .await;
    let machine = &made(&h.fake)[0];
    assert_eq!(
        machine.config["guest"],
        json!({"cpu_kind": "shared", "cpus": 2, "memory_mb": 4096})
    );
    assert_eq!(machine.region, "fra");
    assert_eq!(machine.env["CATTY_TTL_SEC"], "3600");
    let info = client.session(&created.label).await;
    assert!(info.expires_at <= info.created_at + 3600, "{info:?}");
}
