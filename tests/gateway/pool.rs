//! The key pool: a busy key (429) is passed over before the agent sees it; a stream that
//! already started is never sent again.

use super::fixtures::{ANTHROPIC, ANTHROPIC_ERROR, MESSAGES_BODY};
use super::{KEY_1, KEY_2, claude_headers, pairs};
use crate::common::gateway::{Gateway, read_all, send};
use crate::common::upstream::{End, FakeUpstream, Reply};

const REQUESTS: usize = 10;

async fn two_keys() -> (FakeUpstream, Gateway) {
    let upstream = FakeUpstream::start(&[KEY_1, KEY_2], Reply::sse(ANTHROPIC)).await;
    let gateway = Gateway::start(&upstream, &[KEY_1, KEY_2], &[]).await;
    (upstream, gateway)
}

#[tokio::test]
async fn requests_are_spread_over_the_keys_in_turn() {
    let (upstream, gateway) = two_keys().await;
    let (_, token) = gateway.session().await;
    let headers = claude_headers(&token);
    for _ in 0..REQUESTS {
        let req = gateway.post("/anthropic/v1/messages", &pairs(&headers), MESSAGES_BODY);
        assert_eq!(send(gateway.addr, req).await.status(), 200);
    }
    let seen = upstream.seen();
    let keys: Vec<&str> = seen.iter().map(|s| s.key.as_str()).collect();
    assert!(
        keys.windows(2).all(|w| w[0] != w[1]),
        "alternating: {keys:?}"
    );
    assert_eq!(keys.iter().filter(|k| **k == KEY_1).count(), REQUESTS / 2);
}

#[tokio::test]
async fn with_one_key_rate_limited_every_request_succeeds_on_the_other() {
    let (upstream, gateway) = two_keys().await;
    upstream.busy(KEY_1);
    let (_, token) = gateway.session().await;
    let headers = claude_headers(&token);
    for i in 0..REQUESTS {
        let req = gateway.post(
            "/anthropic/v1/messages?beta=true",
            &pairs(&headers),
            MESSAGES_BODY,
        );
        let resp = send(gateway.addr, req).await;
        assert_eq!(resp.status(), 200, "request {i}");
        let (body, broken) = read_all(resp).await;
        assert_eq!((body, broken), (Reply::sse(ANTHROPIC).bytes(), false));
    }
    let seen = upstream.seen();
    let on = |key| seen.iter().filter(|s| s.key == key).count();
    assert_eq!(on(KEY_2), REQUESTS, "every answer came from the other key");
    // Round robin: the busy key was tried first about half of the time, never twice for one.
    assert!(on(KEY_1) >= 1 && on(KEY_1) <= REQUESTS, "{}", on(KEY_1));
    assert!(seen.iter().all(|s| s.body == MESSAGES_BODY.as_bytes()));
}

#[tokio::test]
async fn when_every_key_is_busy_the_agent_gets_the_last_429() {
    let (upstream, gateway) = two_keys().await;
    upstream.busy(KEY_1);
    upstream.busy(KEY_2);
    let (_, token) = gateway.session().await;
    let headers = claude_headers(&token);
    let req = gateway.post("/anthropic/v1/messages", &pairs(&headers), MESSAGES_BODY);
    let resp = send(gateway.addr, req).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "30");
    assert_eq!(upstream.seen().len(), 2, "each key once");
}

#[tokio::test]
async fn an_overloaded_key_moves_on_and_a_plain_503_does_not() {
    let (upstream, gateway) = two_keys().await;
    let overloaded =
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    upstream.refuse(KEY_1, Reply::json(529, overloaded));
    let (_, token) = gateway.session().await;
    let headers = claude_headers(&token);
    for _ in 0..2 {
        let req = gateway.post("/anthropic/v1/messages", &pairs(&headers), MESSAGES_BODY);
        assert_eq!(send(gateway.addr, req).await.status(), 200);
    }
    upstream.refuse(KEY_1, Reply::json(503, overloaded));
    for _ in 0..2 {
        let req = gateway.post("/anthropic/v1/messages", &pairs(&headers), MESSAGES_BODY);
        assert_eq!(send(gateway.addr, req).await.status(), 200);
    }
    // A 503 that is not about load is the agent's to see, body and all, whichever key.
    let maintenance = r#"{"type":"error","error":{"type":"api_error","message":"maintenance"}}"#;
    upstream.refuse(KEY_1, Reply::json(503, maintenance));
    upstream.refuse(KEY_2, Reply::json(503, maintenance));
    let before = upstream.seen().len();
    let req = gateway.post("/anthropic/v1/messages", &pairs(&headers), MESSAGES_BODY);
    let resp = send(gateway.addr, req).await;
    assert_eq!(resp.status(), 503);
    let (body, _) = read_all(resp).await;
    assert_eq!(body, maintenance.as_bytes());
    assert_eq!(
        upstream.seen().len(),
        before + 1,
        "not tried on the other key"
    );
}

#[tokio::test]
async fn a_stream_that_started_and_broke_is_never_replayed() {
    let (upstream, gateway) = two_keys().await;
    upstream.queue(Reply::sse(ANTHROPIC_ERROR).ending(End::Cut));
    let (_, token) = gateway.session().await;
    let headers = claude_headers(&token);
    let req = gateway.post("/anthropic/v1/messages", &pairs(&headers), MESSAGES_BODY);
    let resp = send(gateway.addr, req).await;
    assert_eq!(resp.status(), 200);
    let (body, broken) = read_all(resp).await;
    assert!(broken, "the client sees the cut, not a short answer");
    // What came is the stream's start (the fake may cut before its last chunk leaves).
    assert!(body.len() >= ANTHROPIC_ERROR[0].len());
    assert!(Reply::sse(ANTHROPIC_ERROR).bytes().starts_with(&body));
    // Settled after the cut: the upstream saw it once, and never again.
    super::forward::wait_for_log(&gateway, "answer ended").await;
    assert_eq!(upstream.seen().len(), 1);
}
