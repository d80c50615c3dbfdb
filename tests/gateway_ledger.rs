//! The gateway's quota (`gateway/ledger.rs`) on a real PostgreSQL (`common::pg`), through its
//! testing entry (`catty::gateway::ledger_testing`): several instances, each a ledger on a
//! pool of its own, holding against one user's quota at once.

use std::sync::Arc;
use std::time::Instant;

use catty::gateway::ledger_testing::{self as ledger, TestLedger};
use catty::gateway::usage::Usage;

use crate::common::DEADLINE;
use crate::common::pg::{self, TestDb};

/// Claude Haiku 4.5's output is $5 a million tokens: 5 micro-dollars a token.
const MODEL: &str = "claude-haiku-4-5";

/// A usage that costs exactly `units` (a multiple of 5) of [`MODEL`].
fn costing(units: i64) -> Usage {
    assert_eq!(units % 5, 0);
    let usage = Usage {
        output: (units / 5) as u64,
        ..Usage::default()
    };
    let priced = ledger::units(
        catty::gateway::usage::Provider::Anthropic,
        Some(MODEL),
        &usage,
    );
    assert_eq!(priced, units);
    usage
}

async fn user(db: &TestDb, name: &str) -> String {
    let sql = pg::cluster().connect(&db.name).await;
    let row = sql
        .query_one(
            "INSERT INTO users (issuer, subject) VALUES ('https://idp.test', $1) RETURNING id",
            &[&name],
        )
        .await
        .unwrap();
    row.get(0)
}

/// `(used, reserved)` of `user`'s quota, all periods together, and the holds in flight.
async fn books(db: &TestDb, user: &str) -> (i64, i64, i64) {
    let sql = pg::cluster().connect(&db.name).await;
    let row = sql
        .query_one(
            "SELECT COALESCE(sum(used), 0)::bigint, COALESCE(sum(reserved), 0)::bigint,
                    (SELECT count(*) FROM reservations WHERE user_id = $1)
             FROM quota WHERE user_id = $1",
            &[&user],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

async fn two_instances(db: &TestDb, budgets: (i64, i64)) -> (Arc<TestLedger>, Arc<TestLedger>) {
    let a = ledger::ledger(&db.url, budgets).await.unwrap();
    let b = ledger::ledger(&db.url, budgets).await.unwrap();
    assert_ne!(a.instance(), b.instance());
    (Arc::new(a), Arc::new(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_holds_on_two_instances_never_exceed_the_remaining_budget() {
    let db = pg::database().await;
    const LIMIT: i64 = 60_000;
    let (a, b) = two_instances(&db, (LIMIT, 10 * LIMIT)).await;
    let alice = user(&db, "alice").await;
    // 5,000 spent already: 55,000 remain, room for about 37 of the estimates below.
    let first = a.hold(&alice, "s0", 5000).await.unwrap().unwrap();
    a.settle(first, "req-first", MODEL, costing(5000))
        .await
        .unwrap();
    let remaining = LIMIT - 5000;

    // 100 estimates of 1,000 to 1,990, from 100 tasks, half on each instance.
    let estimates: Vec<i64> = (0..100).map(|i| 1000 + (i * 37 % 100) * 10).collect();
    let tasks: Vec<_> = estimates
        .iter()
        .enumerate()
        .map(|(i, &estimate)| {
            let on = Arc::clone(if i % 2 == 0 { &a } else { &b });
            let alice = alice.clone();
            tokio::spawn(async move {
                let held = on.hold(&alice, &format!("s{i}"), estimate).await.unwrap();
                (estimate, held)
            })
        })
        .collect();
    let (mut admitted, mut refused) = (Vec::new(), Vec::new());
    for task in tasks {
        match task.await.unwrap() {
            (_, Ok(hold)) => admitted.push(hold),
            (estimate, Err(over)) => refused.push((estimate, over)),
        }
    }
    let held: i64 = admitted.iter().map(|h| h.units()).sum();
    assert!(held <= remaining, "held {held} of {remaining}");
    assert!(!admitted.is_empty() && !refused.is_empty());
    // Nothing settled meanwhile, so the room only shrank: each refused estimate is more than
    // what is left at the end (no request was refused that could have fit).
    let smallest_refused = refused.iter().map(|(e, _)| *e).min().unwrap();
    assert!(
        remaining - held < smallest_refused,
        "{held} {smallest_refused}"
    );
    assert!(refused.iter().all(|(_, over)| *over == (5000, LIMIT)));
    assert_eq!(
        books(&db, &alice).await,
        (5000, held, admitted.len() as i64)
    );

    // Each settled at its estimate, on either instance: nothing held, everything used.
    for (i, hold) in admitted.into_iter().enumerate() {
        let units = hold.units();
        let on = if i % 3 == 0 { &a } else { &b };
        on.settle(hold, &format!("req-{i}"), MODEL, costing(units))
            .await
            .unwrap();
    }
    assert_eq!(books(&db, &alice).await, (5000 + held, 0, 0));

    // What is left can be held to the last micro-dollar, and then not one more.
    let rest = a.hold(&alice, "last", remaining - held).await.unwrap();
    assert!(rest.is_ok(), "the exact rest was refused");
    let over = b.hold(&alice, "over", 5).await.unwrap().err();
    assert_eq!(over, Some((5000 + held, LIMIT)));
}

#[tokio::test]
async fn a_request_settled_twice_is_charged_once_and_both_holds_are_given_back() {
    let db = pg::database().await;
    let (a, b) = two_instances(&db, (1_000_000, 2_000_000)).await;
    let bob = user(&db, "bob").await;
    let first = a.hold(&bob, "s1", 10_000).await.unwrap().unwrap();
    let again = b.hold(&bob, "s1", 20_000).await.unwrap().unwrap();
    a.settle(first, "req-same", MODEL, costing(500))
        .await
        .unwrap();
    b.settle(again, "req-same", MODEL, costing(700))
        .await
        .unwrap();
    assert_eq!(books(&db, &bob).await, (500, 0, 0));
    let sql = pg::cluster().connect(&db.name).await;
    let events: i64 = sql
        .query_one("SELECT count(*) FROM usage_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(events, 1);
}

#[tokio::test]
async fn a_dead_instances_holds_are_given_back_by_a_live_one_and_only_those() {
    let db = pg::database().await;
    let (live, doomed) = two_instances(&db, (1_000_000, 2_000_000)).await;
    let carol = user(&db, "carol").await;
    let kept = live.hold(&carol, "s1", 1000).await.unwrap().unwrap();
    let mut lost = Vec::new();
    for i in 0..3 {
        lost.push(doomed.hold(&carol, "s2", 2000 + i).await.unwrap().unwrap());
    }
    // Both live: nothing to give back, whoever sweeps.
    assert_eq!(live.sweep_once().await.unwrap(), 0);
    assert_eq!(doomed.sweep_once().await.unwrap(), 0);
    assert_eq!(books(&db, &carol).await, (0, 1000 + 6003, 4));

    drop(doomed);
    let deadline = Instant::now() + DEADLINE;
    let mut given = 0;
    while given == 0 {
        assert!(
            Instant::now() < deadline,
            "the dead instance's holds stayed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        given = live.sweep_once().await.unwrap();
    }
    assert_eq!(given, 3);
    assert_eq!(books(&db, &carol).await, (0, 1000, 1));

    // A hold given back is not given back again when its request settles after all.
    let late = lost.pop().unwrap();
    live.settle(late, "req-late", MODEL, costing(100))
        .await
        .unwrap();
    assert_eq!(books(&db, &carol).await, (100, 1000, 1));
    live.settle(kept, "req-kept", MODEL, costing(200))
        .await
        .unwrap();
    assert_eq!(books(&db, &carol).await, (300, 0, 0));
}

/// The limit `user`'s next hold meets: what refuses an estimate larger than any budget.
async fn limit_of(on: &TestLedger, user: &str) -> i64 {
    let refused = on.hold(user, "s", 1_000_000_000_000).await.unwrap();
    refused.err().expect("a trillion micro-dollars was held").1
}

async fn subscribe(db: &TestDb, user: &str, status: &str, period_ended_days_ago: i32) {
    let sql = pg::cluster().connect(&db.name).await;
    sql.execute(
        "INSERT INTO subscriptions (user_id, status, current_period_end)
         VALUES ($1, $2, now() - make_interval(days => $3))
         ON CONFLICT (user_id) DO UPDATE
             SET status = excluded.status, current_period_end = excluded.current_period_end",
        &[&user, &status, &period_ended_days_ago],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_limit_is_the_paid_budget_while_the_subscription_pays() {
    let db = pg::database().await;
    let (free, paid) = (5_000_000, 200_000_000);
    let on = ledger::ledger(&db.url, (free, paid)).await.unwrap();
    let dave = user(&db, "dave").await;
    assert_eq!(limit_of(&on, &dave).await, free);
    subscribe(&db, &dave, "active", -20).await;
    assert_eq!(limit_of(&on, &dave).await, paid);
    // A failed renewal keeps the plan for the grace period (7 days), not after.
    subscribe(&db, &dave, "past_due", 2).await;
    assert_eq!(limit_of(&on, &dave).await, paid);
    subscribe(&db, &dave, "past_due", 8).await;
    assert_eq!(limit_of(&on, &dave).await, free);
    subscribe(&db, &dave, "canceled", -20).await;
    assert_eq!(limit_of(&on, &dave).await, free);
    // A hold the paid budget would take is refused on the free plan.
    assert!(on.hold(&dave, "s", free + 5).await.unwrap().is_err());
}

#[tokio::test]
async fn a_hold_of_last_month_settles_against_last_months_row() {
    let db = pg::database().await;
    let on = ledger::ledger(&db.url, (1_000_000, 2_000_000))
        .await
        .unwrap();
    let frank = user(&db, "frank").await;
    // A hold taken just before the month turned, by this instance.
    let sql = pg::cluster().connect(&db.name).await;
    let last_month = "(date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month')
                      AT TIME ZONE 'UTC'";
    let id: i64 = sql
        .query_one(
            &format!(
                "WITH made AS (INSERT INTO quota (user_id, period_start, used, reserved)
                               VALUES ($1, {last_month}, 7000, 3000)
                               RETURNING user_id, period_start)
                 INSERT INTO reservations (user_id, period_start, session_id, units, instance)
                 SELECT user_id, period_start, 's1', 3000, $2 FROM made RETURNING id"
            ),
            &[&frank, &on.instance()],
        )
        .await
        .unwrap()
        .get(0);
    let late = on.held(id).await.unwrap();
    // This month has its own row, with a hold of its own.
    let now = on.hold(&frank, "s2", 500).await.unwrap().unwrap();

    on.settle(late, "req-late", MODEL, costing(2000))
        .await
        .unwrap();
    let rows = sql
        .query(
            "SELECT used, reserved FROM quota WHERE user_id = $1 ORDER BY period_start",
            &[&frank],
        )
        .await
        .unwrap();
    let rows: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rows, [(9000, 0), (0, now.units())]);
}

#[tokio::test]
async fn a_hold_a_day_old_is_given_back_though_its_instance_lives() {
    let db = pg::database().await;
    let on = ledger::ledger(&db.url, (1_000_000, 2_000_000))
        .await
        .unwrap();
    let gina = user(&db, "gina").await;
    let lost = on.hold(&gina, "s1", 4000).await.unwrap().unwrap();
    let fresh = on.hold(&gina, "s2", 1000).await.unwrap().unwrap();
    let sql = pg::cluster().connect(&db.name).await;
    sql.execute(
        "UPDATE reservations SET created_at = now() - interval '25 hours' WHERE units = 4000",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(on.sweep_once().await.unwrap(), 1);
    assert_eq!(books(&db, &gina).await, (0, fresh.units(), 1));
    drop(lost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_months_first_holds_at_once_open_one_row_and_keep_to_the_limit() {
    let db = pg::database().await;
    let (a, b) = two_instances(&db, (10_000, 20_000)).await;
    let hana = user(&db, "hana").await;
    // No row yet for this month: 30 holds of 1,000 race to make it and to hold.
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let on = Arc::clone(if i % 2 == 0 { &a } else { &b });
            let hana = hana.clone();
            tokio::spawn(async move { on.hold(&hana, "s", 1000).await.unwrap().is_ok() })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += i64::from(task.await.unwrap());
    }
    assert_eq!(admitted, 10);
    assert_eq!(books(&db, &hana).await, (0, 10_000, 10));
    let sql = pg::cluster().connect(&db.name).await;
    let rows: i64 = sql
        .query_one("SELECT count(*) FROM quota", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}
