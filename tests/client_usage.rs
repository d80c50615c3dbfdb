//! `catty usage` end to end: the real binary against the hosted API (`catty api
//! --database-url` on the Fly fake and a real PostgreSQL), with what the gateway would have
//! written (`quota`, `usage_events`) arranged in the database.

use std::path::Path;
use std::process::{Command, Output};

use catty::protocol::api::UsageReport;
use hyper::StatusCode;

use crate::common::api::Daemon;
use crate::common::api::fly::FlyDaemon;
use crate::common::fly::FakeFly;
use crate::common::hosted::CONNECT_KEY;
use crate::common::pg::{self, TestDb};

/// The hosted API with a user who spent $1.23 of $5.00 this month and holds $0.40.
struct Spent {
    _fake: FakeFly,
    _db: TestDb,
    api: FlyDaemon,
    token: String,
}

async fn spent() -> Spent {
    let fake = crate::fly_provider::support::fake();
    let db = pg::database().await;
    let api = FlyDaemon::start(
        &fake,
        &[
            ("CATTY_DATABASE_URL", db.url.as_str()),
            ("CATTY_CONNECT_KEY", CONNECT_KEY),
            ("CATTY_FREE_MONTHLY_USD", "5"),
        ],
    );
    let sql = pg::cluster().connect(&db.name).await;
    let id: String = sql
        .query_one(
            "INSERT INTO users (issuer, subject) VALUES ('https://idp.test', 'erin') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let token = format!("cat_{}", crate::common::client_id());
    sql.execute(
        "INSERT INTO cli_tokens (user_id, token_sha256, name, expires_at)
         VALUES ($1, sha256($2::text::bytea), 'test', now() + interval '1 day')",
        &[&id, &token],
    )
    .await
    .unwrap();
    let this_month = "date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'";
    sql.batch_execute(&format!(
        "INSERT INTO quota (user_id, period_start, used, reserved)
         VALUES ('{id}', {this_month}, 1230000, 400000);
         INSERT INTO usage_events (user_id, session_id, provider, model, upstream_request_id,
             input_tokens, cache_write_tokens, cache_read_tokens, output_tokens, reported,
             units, created_at)
         VALUES
         ('{id}', 's1', 'anthropic', 'claude-sonnet-4-5', 'r1', 3, 412, 30433, 95, true,
          1000000, now()),
         ('{id}', 's1', 'anthropic', 'claude-sonnet-4-5', 'r2', 10, 0, 0, 100, true,
          200000, now()),
         ('{id}', 's2', 'openai', 'gpt-5-codex', 'r3', 904, 0, 4096, 300, true, 30000, now()),
         ('{id}', 's0', 'anthropic', 'claude-opus-4-1', 'r-old', 1, 0, 0, 1, true,
          9999999, {this_month} - interval '1 second');"
    ))
    .await
    .unwrap();
    Spent {
        _fake: fake,
        _db: db,
        api,
        token,
    }
}

/// `catty ARGS` with a home of its own and `env`; no local daemon reachable.
fn catty(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_catty"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        .env("CATTY_API_ADDR", "127.0.0.1:9")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn usage_of(s: &Spent, args: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    let url = format!("http://{}", s.api.addr);
    let env = [("CATTY_API_URL", url.as_str()), ("CATTY_TOKEN", &s.token)];
    let out = catty(home.path(), &env, &[&["usage"], args].concat());
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn usage_shows_this_months_spending_against_the_plan_and_by_model() {
    let s = spent().await;
    let shown = usage_of(&s, &[]);
    let month = catty::clock::month_and_year(catty::clock::unix_now());
    let mut lines = shown.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!(
            "free plan · {month} · $1.23 of $5.00 used (24%), $0.40 held by requests in flight"
        )
    );
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("MODEL") && header.ends_with("COST"),
        "{shown}"
    );
    let sonnet: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        sonnet,
        [
            "claude-sonnet-4-5",
            "2",
            "13",
            "412",
            "30,433",
            "195",
            "$1.20"
        ]
    );
    let codex: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        codex,
        ["gpt-5-codex", "1", "904", "0", "4,096", "300", "$0.03"]
    );
    // Last month's request is not this month's.
    assert_eq!(lines.next(), None, "{shown}");
}

#[tokio::test]
async fn usage_json_is_the_wire_report() {
    let s = spent().await;
    let report: UsageReport = serde_json::from_str(&usage_of(&s, &["--json"])).unwrap();
    assert_eq!(report.plan, "free");
    assert_eq!(
        (
            report.used_micro_usd,
            report.reserved_micro_usd,
            report.limit_micro_usd
        ),
        (1_230_000, 400_000, 5_000_000)
    );
    let days = (report.period_end - report.period_start) / 86_400;
    assert!((28..=31).contains(&days), "{report:?}");
    let now = catty::clock::unix_now();
    assert!(report.period_start <= now && now < report.period_end);
    let models: Vec<_> = report
        .models
        .iter()
        .map(|m| (m.model.as_deref().unwrap(), m.requests, m.cost_micro_usd))
        .collect();
    assert_eq!(
        models,
        [
            ("claude-sonnet-4-5", 2, 1_200_000),
            ("gpt-5-codex", 1, 30_000)
        ]
    );
    assert_eq!(report.models[0].cache_read_tokens, 30_433);
}

#[test]
fn usage_without_a_login_says_what_to_do() {
    let home = tempfile::tempdir().unwrap();
    let url = "http://127.0.0.1:9";
    let out = catty(home.path(), &[("CATTY_API_URL", url)], &["usage"]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("not logged in to {url}: run catty login")),
        "{said}"
    );
    let local = catty(home.path(), &[], &["usage"]);
    assert_eq!(local.status.code(), Some(1));
    let said = String::from_utf8_lossy(&local.stderr);
    assert!(
        said.contains("usage is metered by a hosted API only") && said.contains("catty login"),
        "{said}"
    );
}

#[tokio::test]
async fn the_local_daemon_says_it_meters_nothing() {
    let daemon = Daemon::start(false);
    let answer = daemon.client().call("GET", "/v1/usage", "").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(
        answer.body.contains("metered by a hosted API only"),
        "{}",
        answer.body
    );
}
