//! `POST /ttl` against the real runtime: it moves the session's deadline (the session
//! outlives its first TTL and ends at the new one), it wants the token and a count of seconds,
//! and every attached client hears `ending` when the end is near and whenever it moves.

use std::time::{Duration, Instant};

use crate::common::{Client, Runtime, TOKEN, http_send, sized};
use bytes::Bytes;
use catty::protocol::api::Ttl;
use http_body_util::Full;
use hyper::{Request, StatusCode};

fn set_ttl(token: Option<&str>, body: &str) -> Request<Full<Bytes>> {
    let mut req = Request::post("/ttl").header("content-type", "application/json");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    req.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

#[tokio::test]
async fn a_moved_deadline_outlives_the_first_ttl_and_ends_the_session() {
    let mut rt = Runtime::start(&["sleep", "100"], &[("CATTY_TTL_SEC", "3")]);
    let asked = Instant::now();
    let reply = http_send(rt.addr, set_ttl(Some(TOKEN), r#"{"in_sec":8}"#)).await;
    let ttl: Ttl = reply.json(StatusCode::OK);
    assert_eq!(ttl.in_sec, 8);
    assert!(ttl.expires_at >= catty::clock::unix_now() + 6, "{ttl:?}");
    assert_eq!(rt.wait_exit(Duration::from_secs(30)), Some(0));
    let lived = asked.elapsed();
    assert!(
        lived >= Duration::from_millis(7500),
        "ended after {lived:?}"
    );
}

#[tokio::test]
async fn attached_clients_hear_when_the_end_is_near_and_when_it_moves() {
    let rt = Runtime::start(&["sleep", "600"], &[("CATTY_TTL_SEC", "100")]);
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    // Less than five minutes left at attach: told at once.
    c.read_until("the first ending", |c| !c.endings.is_empty())
        .await;
    assert!((98..=100).contains(&c.endings[0]), "{:?}", c.endings);
    let reply = http_send(rt.addr, set_ttl(Some(TOKEN), r#"{"in_sec":1000}"#)).await;
    assert_eq!(reply.status, StatusCode::OK);
    c.read_until("the moved end", |c| c.endings.len() >= 2)
        .await;
    assert_eq!(c.endings[1], 1000, "{:?}", c.endings);
    let reply = http_send(rt.addr, set_ttl(Some(TOKEN), r#"{"in_sec":200}"#)).await;
    assert_eq!(reply.status, StatusCode::OK);
    c.read_until("the near end", |c| c.endings.len() >= 3).await;
    assert_eq!(c.endings[2], 200, "{:?}", c.endings);
}

#[tokio::test]
async fn post_ttl_wants_the_token_and_a_count_of_seconds() {
    let mut rt = Runtime::start(&["sleep", "100"], &[("CATTY_TTL_SEC", "4")]);
    let refused = http_send(rt.addr, set_ttl(None, r#"{"in_sec":600}"#)).await;
    assert_eq!(refused.error(StatusCode::UNAUTHORIZED).code, "unauthorized");
    let wrong = http_send(rt.addr, set_ttl(Some("wrong"), r#"{"in_sec":600}"#)).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    for body in [
        r#"{"in_sec":0}"#,
        "{}",
        r#"{"in_sec":-5}"#,
        "600",
        "not json",
    ] {
        let bad = http_send(rt.addr, set_ttl(Some(TOKEN), body)).await;
        assert_eq!(
            bad.error(StatusCode::BAD_REQUEST).code,
            "bad_body",
            "{body}"
        );
    }
    let get = Request::get("/ttl")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        http_send(rt.addr, get).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // Nothing refused moved the deadline: the first TTL still ends it.
    assert_eq!(rt.wait_exit(Duration::from_secs(15)), Some(0));
}
