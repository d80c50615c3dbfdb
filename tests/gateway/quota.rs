//! The quota through the real gateway on a real PostgreSQL: concurrent requests near a small
//! budget are let through only as far as their estimates fit, every hold is given back when
//! its answer ends (or, for a crashed instance, by another instance's sweep), and a request
//! past the quota gets Anthropic's 402 with an upgrade link that verifies.

use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::fixtures::{ANTHROPIC, MESSAGES_BODY};
use super::forward::wait_for_log;
use super::{KEY_1, claude_headers, one_key, pairs};
use crate::common::DEADLINE;
use crate::common::gateway::{Books, GATEWAY_KEY, Gateway, read_all, send};
use crate::common::upstream::{End, FakeUpstream, Reply};

/// The free plan's budget in these tests: `CATTY_FREE_MONTHLY_USD=1`.
const LIMIT: i64 = 1_000_000;

/// What the gateway holds for [`MESSAGES_BODY`]: its bytes over three as input tokens and its
/// `max_tokens` of 1,024 as output, at claude-sonnet-4-5's list price ($3 in, $15 out a
/// million tokens, so 3 and 15 micro-dollars a token).
fn estimate() -> i64 {
    (MESSAGES_BODY.len() as u64).div_ceil(3) as i64 * 3 + 1024 * 15
}

/// What the [`ANTHROPIC`] fixture's final counters cost on claude-sonnet-4-5: 3 input × $3,
/// 412 cache writes × $3.75, 30,433 cache reads × $0.30, 95 output × $15 a million tokens =
/// 12,108.9 micro-dollars, rounded up.
const FIXTURE_UNITS: i64 = 12_109;

/// Sends [`MESSAGES_BODY`] with `token` on a connection of its own.
async fn ask(gateway: &Gateway, token: &str) -> hyper::Response<hyper::body::Incoming> {
    let headers = claude_headers(token);
    let req = gateway.post("/anthropic/v1/messages", &pairs(&headers), MESSAGES_BODY);
    send(gateway.addr, req).await
}

/// What one of many concurrent requests got: its status, `x-should-retry`, and its body.
type Outcome = (u16, Option<String>, Vec<u8>);

/// One of many concurrent requests: its status goes to `heads` as soon as its head comes,
/// then its body is read to the end.
fn concurrent(
    gateway: &Gateway,
    token: &str,
    heads: mpsc::UnboundedSender<u16>,
) -> tokio::task::JoinHandle<Outcome> {
    let req = gateway.post(
        "/anthropic/v1/messages",
        &pairs(&claude_headers(token)),
        MESSAGES_BODY,
    );
    let addr = gateway.addr;
    tokio::spawn(async move {
        let resp = send(addr, req).await;
        let status = resp.status().as_u16();
        let retry = (resp.headers().get("x-should-retry")).map(|v| v.to_str().unwrap().to_string());
        heads.send(status).unwrap();
        let (body, broken) = read_all(resp).await;
        assert!(!broken, "status {status}: cut");
        (status, retry, body)
    })
}

/// An admitted request got the whole stream; a refused one Anthropic's 402, not retried.
fn assert_answered((status, retry, body): &Outcome) {
    match status {
        200 => assert_eq!(body, &Reply::sse(ANTHROPIC).bytes()),
        402 => {
            assert_eq!(retry.as_deref(), Some("false"));
            let body: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(body["error"]["type"], "billing_error");
        }
        other => panic!("status {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_on_two_instances_hold_no_more_than_the_budget_left() {
    let upstream = FakeUpstream::start(&[KEY_1], Reply::sse(ANTHROPIC)).await;
    let env = [("CATTY_FREE_MONTHLY_USD", "1")];
    let gateway = Gateway::start(&upstream, &[KEY_1], &env).await;
    let other = gateway.beside(&upstream, &[KEY_1], &env).await;
    let (session, token) = gateway.session().await;
    let user = gateway.owner(&session).await;
    // Room for 30 and a half estimates: exactly 30 can be held.
    let remaining = 30 * estimate() + estimate() / 2;
    gateway.spent(&user, LIMIT - remaining).await;
    // Every admitted answer waits before its end: the holds all overlap.
    upstream.close_gate();

    let (heads, mut headed) = mpsc::unbounded_channel();
    // Half through each instance: one quota row decides for both.
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let through = if i % 2 == 0 { &gateway } else { &other };
            concurrent(through, &token, heads.clone())
        })
        .collect();
    let mut admitted = 0;
    for _ in 0..100 {
        let status = tokio::time::timeout(DEADLINE, headed.recv()).await.unwrap();
        admitted += i64::from(status == Some(200));
    }

    // Every request decided, the admitted ones still held: what is held fits what was left,
    // and no request was refused that could have fit (nothing was given back meanwhile).
    let held = gateway.books(&user).await;
    assert_eq!(admitted, 30, "{held:?}");
    assert!(admitted * estimate() <= remaining);
    let expected = Books {
        used: LIMIT - remaining,
        reserved: admitted * estimate(),
        holds: admitted,
    };
    assert_eq!(held, expected);

    upstream.open_gate();
    for task in tasks {
        assert_answered(&task.await.unwrap());
    }
    assert_eq!(
        upstream.seen().len(),
        30,
        "refused requests never went upstream"
    );

    // Every hold given back; `used` is what was spent before plus each answer's price.
    let after = gateway.settled(&user).await;
    let usage = gateway.usage(&user).await;
    assert_eq!(usage.len(), 30);
    let charged: i64 = usage.iter().map(|row| row.units).sum();
    assert_eq!(charged, 30 * FIXTURE_UNITS);
    assert_eq!(after.used, LIMIT - remaining + charged);
}

#[tokio::test]
async fn past_the_quota_a_request_gets_anthropics_402_with_an_upgrade_link() {
    // Room for one request's estimate, not for a second after the first's price.
    let limit = estimate() + FIXTURE_UNITS / 2;
    let dollars = format!("0.{limit:06}");
    let env = [
        ("CATTY_FREE_MONTHLY_USD", dollars.as_str()),
        ("CATTY_PUBLIC_URL", "https://catty.example/"),
    ];
    let (upstream, gateway) = one_key(Reply::sse(ANTHROPIC), &env).await;
    let (session, token) = gateway.session().await;
    let user = gateway.owner(&session).await;
    let first = ask(&gateway, &token).await;
    assert_eq!(first.status(), 200);
    read_all(first).await;
    assert_eq!(gateway.settled(&user).await.used, FIXTURE_UNITS);

    let refused = ask(&gateway, &token).await;
    assert_eq!(refused.status(), 402);
    assert_eq!(refused.headers()["x-should-retry"], "false");
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "billing_error");
    let message = body["error"]["message"].as_str().unwrap();
    let link = message
        .split_once("upgrade at ")
        .unwrap_or_else(|| panic!("no link in {message:?}"))
        .1;
    let query = link
        .strip_prefix("https://catty.example/billing/upgrade?")
        .unwrap_or_else(|| panic!("{link}"));
    let get = |name: &str| {
        (query.split('&'))
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {link}"))
            .to_string()
    };
    let (who, exp, sig) = (get("user"), get("exp").parse().unwrap(), get("sig"));
    assert_eq!(who, user);
    let now = catty::clock::unix_now();
    let key = GATEWAY_KEY.as_bytes();
    assert!(catty::upgrade_link::verify(key, &user, exp, &sig, now));
    assert!(!catty::upgrade_link::verify(key, "u-other", exp, &sig, now));
    assert_eq!(
        upstream.seen().len(),
        1,
        "the refused request never went upstream"
    );
}

#[tokio::test]
async fn a_crashed_instances_hold_is_given_back_by_another_instance() {
    let stalled = Reply::sse(&ANTHROPIC[..1]).ending(End::Stall);
    let (upstream, mut a) = one_key(stalled, &[]).await;
    let sweeps = [("CATTY_GATEWAY_SWEEP_EVERY", "1")];
    let b = a.beside(&upstream, &[KEY_1], &sweeps).await;
    let (session, token) = a.session().await;
    let user = a.owner(&session).await;
    let resp = ask(&a, &token).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(DEADLINE, body.frame()).await.unwrap();
    assert!(first.unwrap().unwrap().is_data());
    let held = Books {
        used: 0,
        reserved: estimate(),
        holds: 1,
    };
    assert_eq!(b.books(&user).await, held);

    a.kill();
    // Only B is left to give it back: its sweep, every second here.
    let after = b.settled(&user).await;
    assert_eq!(after.used, 0, "a crashed request is not charged: {after:?}");
    let log = wait_for_log(&b, "gave back the holds of instances that died").await;
    assert!(log.contains("holds=1"), "{log}");
    drop(body);
}

#[tokio::test]
async fn codex_and_gemini_get_their_providers_402_and_no_link_without_a_public_url() {
    let (upstream, gateway) =
        one_key(Reply::sse(ANTHROPIC), &[("CATTY_FREE_MONTHLY_USD", "0")]).await;
    let (_, token) = gateway.session().await;
    let bearer = format!("Bearer {token}");
    let openai = gateway.post(
        "/openai/v1/responses",
        &[("authorization", &bearer)],
        r#"{"model":"gpt-5","stream":true,"input":"hi"}"#,
    );
    let gemini =
        format!("/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse&key={token}");
    let gemini = gateway.post(&gemini, &[], "{}");
    let mut bodies = Vec::new();
    for req in [openai, gemini] {
        let resp = send(gateway.addr, req).await;
        assert_eq!(resp.status(), 402);
        assert_eq!(resp.headers()["x-should-retry"], "false");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        bodies.push(serde_json::from_slice::<serde_json::Value>(&body).unwrap());
    }
    assert_eq!(bodies[0]["error"]["code"], "insufficient_quota");
    assert_eq!(bodies[1]["error"]["status"], "RESOURCE_EXHAUSTED");
    for body in &bodies {
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.ends_with("upgrade with `catty upgrade`"),
            "{message}"
        );
    }
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn on_the_paid_plan_the_402_says_when_the_budget_renews_not_to_upgrade() {
    let env = [
        ("CATTY_PAID_MONTHLY_USD", "0"),
        ("CATTY_PUBLIC_URL", "https://catty.example"),
    ];
    let (upstream, gateway) = one_key(Reply::sse(ANTHROPIC), &env).await;
    let (id, token) = gateway.session().await;
    gateway.subscribe(&gateway.owner(&id).await).await;
    let bearer = format!("Bearer {token}");
    let req = gateway.post(
        "/anthropic/v1/messages",
        &[("authorization", &bearer)],
        MESSAGES_BODY,
    );
    let resp = send(gateway.addr, req).await;
    assert_eq!(resp.status(), 402);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("($0.00 of $0.00)"), "{message}");
    assert!(message.contains("renews"), "{message}");
    assert!(!message.contains("upgrade"), "{message}");
    assert!(upstream.seen().is_empty());
}
