//! The hosted API at scale, simulated here (BENCHMARKS.md, "The hosted API at scale"): two
//! instances on one PostgreSQL with the Fly fake, 10,000 live session records across 1,000
//! users, 50 concurrent clients listing and creating, then one instance killed under that
//! load. It prints what it measured; only what must hold whatever the timing is asserted
//! (nothing lost, the other instance keeps serving). Run it on a release build:
//!
//! ```sh
//! cargo build --release
//! CATTY_BENCH_BIN=target/release/catty cargo test --test tests -- --ignored --nocapture api_hosted::scale
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::StatusCode;

use super::{Hosted, bash};
use crate::common::api::ApiClient;
use crate::common::pg;
use crate::common::random_below;

const USERS: u64 = 1000;
const SESSIONS: u64 = 10_000;
const CLIENTS: u64 = 50;

/// Users `u1`…`u1000` with tokens `cat_bench1`…, and 10,000 live sessions among them. Their
/// provider is not the instances' (`seeded`), so the sweep and the machine checks leave them
/// alone: they weigh on every query as records, without machines behind them.
async fn seed(h: &Hosted) {
    let sql = pg::cluster().connect(&h.db.name).await;
    sql.batch_execute(&format!(
        "INSERT INTO users (id, issuer, subject, email)
           SELECT 'u' || g, 'https://idp.test', 'user' || g, 'user' || g || '@example.com'
           FROM generate_series(1, {USERS}) g;
         INSERT INTO cli_tokens (user_id, token_sha256, name, expires_at)
           SELECT 'u' || g, sha256(('cat_bench' || g)::bytea), 'bench', now() + interval '1 day'
           FROM generate_series(1, {USERS}) g;
         INSERT INTO sessions (id, owner, label, live, destroy_pending, expires_at, created_at,
                               record)
           SELECT 's-seed' || g, 'u' || (g % {USERS} + 1), 'seeded-label-' || g, true, false,
                  now() + interval '1 day', now(),
                  jsonb_build_object('id', 's-seed' || g, 'owner', 'u' || (g % {USERS} + 1),
                    'label', 'seeded-label-' || g, 'state', 'running', 'agent', 'shell',
                    'provider', 'seeded', 'created_at', extract(epoch FROM now())::bigint,
                    'expires_at', extract(epoch FROM now())::bigint + 86400)
           FROM generate_series(1, {SESSIONS}) g;
         ANALYZE;"
    ))
    .await
    .unwrap();
}

fn client(h: &Hosted, instance: usize, user: u64) -> ApiClient {
    ApiClient {
        addr: h.instances[instance].addr,
        token: format!("cat_bench{user}"),
    }
}

/// p50 and p99 of `ms`, in milliseconds.
fn percentiles(mut ms: Vec<f64>) -> (f64, f64, usize) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
    (at(0.50), at(0.99), ms.len())
}

/// `CLIENTS` clients doing `each` requests of `what` (list or create), each on a random
/// instance as a user of its own; the latencies in ms.
async fn load(h: &Arc<Hosted>, each: u64, what: &'static str) -> Vec<f64> {
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let mut ms = Vec::new();
            for _ in 0..each {
                let user = (c * 20 + random_below(20)) % USERS + 1;
                let api = client(&h, random_below(2) as usize, user);
                let started = Instant::now();
                let answer = match what {
                    "list" => api.call("GET", "/v1/sessions", "").await,
                    _ => api.call("POST", "/v1/sessions", &bash().to_string()).await,
                };
                assert_eq!(answer.status, StatusCode::OK, "{what}: {}", answer.body);
                ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            ms
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: run it on a release build, see the module's comment"]
async fn hosted_api_at_scale() {
    let h = Arc::new(Hosted::start(2).await);
    let seeded = Instant::now();
    seed(&h).await;
    println!(
        "seeded {USERS} users, {SESSIONS} live sessions in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );

    let mut alone = Vec::new();
    for i in 0..400 {
        let api = client(&h, i % 2, i as u64 % USERS + 1);
        let started = Instant::now();
        let answer = api.call("GET", "/v1/sessions", "").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        alone.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let (p50, p99, n) = percentiles(alone);
    println!("list:   {n} requests, 1 client: p50 {p50:.1} ms, p99 {p99:.1} ms");
    let started = Instant::now();
    let (p50, p99, n) = percentiles(load(&h, 40, "list").await);
    let rate = n as f64 / started.elapsed().as_secs_f64();
    println!(
        "list:   {n} requests, {CLIENTS} clients: p50 {p50:.1} ms, p99 {p99:.1} ms, \
         {rate:.0} requests/s"
    );
    let (p50, p99, n) = percentiles(load(&h, 2, "create").await);
    println!(
        "create: {n} requests, {CLIENTS} clients: p50 {p50:.1} ms, p99 {p99:.1} ms \
         (each starts a machine of the fake: a catty exec process)"
    );
    let mut h = Arc::into_inner(h).expect("no client holds it");
    killed_under_load(&mut h).await;
}

/// 50 clients list and create through both instances; one is killed two seconds in. A request
/// the killed instance does not answer is sent to the other (as Fly's proxy would), and every
/// answer of the other instance must be a success; afterwards every session a create answered
/// is recorded as running, and no session is left half made.
async fn killed_under_load(h: &mut Hosted) {
    let (a, b) = (h.instances[0].addr, h.instances[1].addr);
    let stop = Arc::new(AtomicBool::new(false));
    let (failed_on_b, rerouted) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (stop, failed_on_b, rerouted) = (stop.clone(), failed_on_b.clone(), rerouted.clone());
        tasks.push(tokio::spawn(async move {
            let mut created = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let user = (c * 20 + random_below(20)) % USERS + 1;
                let token = format!("cat_bench{user}");
                let (method, path, body) = match n % 10 {
                    0 => ("POST", "/v1/sessions", bash().to_string()),
                    _ => ("GET", "/v1/sessions", String::new()),
                };
                let first = if random_below(2) == 0 { a } else { b };
                let api = ApiClient {
                    addr: first,
                    token: token.clone(),
                };
                let answer = match api.try_call(method, path, &body).await {
                    Ok(answer) => Ok(answer),
                    Err(_) if first == a => {
                        rerouted.fetch_add(1, Ordering::Relaxed);
                        ApiClient { addr: b, token }
                            .try_call(method, path, &body)
                            .await
                    }
                    Err(e) => Err(e),
                };
                match answer {
                    Ok(answer) if answer.status == StatusCode::OK => {
                        if method == "POST" {
                            created.push(answer.json()["session_id"].as_str().unwrap().to_string());
                        }
                    }
                    Ok(answer) if first == a => {
                        // Answered by a instance that was being killed: not B's failure.
                        let _ = answer;
                    }
                    _ => {
                        failed_on_b.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            (created, n)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = Instant::now();
    h.instances[0].kill9();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut created, mut requests) = (Vec::new(), 0);
    for task in tasks {
        let (ids, n) = task.await.unwrap();
        created.extend(ids);
        requests += n;
    }
    println!(
        "kill -9 of one instance under load: {requests} requests, {} sent again to the other \
         after the kill, {} failed on the other; {} sessions created",
        rerouted.load(Ordering::Relaxed),
        failed_on_b.load(Ordering::Relaxed),
        created.len()
    );
    assert_eq!(
        failed_on_b.load(Ordering::Relaxed),
        0,
        "the other instance failed requests"
    );

    // The survivor's sweep finishes the creates the killed one had under way.
    let sql = pg::cluster().connect(&h.db.name).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let half = loop {
        let half: i64 = sql
            .query_one(
                "SELECT count(*) FROM sessions WHERE record->>'state' = 'starting'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if half == 0 || Instant::now() > deadline {
            break half;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "creates the killed instance had under way were finished by the other in {:.1} s",
        killed_at.elapsed().as_secs_f64()
    );
    assert_eq!(half, 0, "sessions left starting");
    for id in &created {
        let state: String = sql
            .query_one("SELECT record->>'state' FROM sessions WHERE id = $1", &[id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(state, "running", "session {id} that a create answered");
    }
}
