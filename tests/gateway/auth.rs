//! Which tokens pass: only those the gateway key made, for a session that is live.

use std::time::{Duration, Instant};

use catty::llm_token::LlmKey;
use http_body_util::BodyExt;

use super::fixtures::{ANTHROPIC, MESSAGES_BODY};
use super::{claude_headers, one_key, pairs};
use crate::common::gateway::{Gateway, send};
use crate::common::upstream::Reply;

/// How long a stopped session's token may still pass: the gateway's 2 s cache, and room for
/// a loaded machine.
const REFUSED_WITHIN: Duration = Duration::from_secs(5);

/// The status and JSON body of an Anthropic request with `token`.
async fn call(gateway: &Gateway, token: &str) -> (u16, serde_json::Value) {
    let headers = claude_headers(token);
    let req = gateway.post(
        "/anthropic/v1/messages?beta=true",
        &pairs(&headers),
        MESSAGES_BODY,
    );
    let resp = send(gateway.addr, req).await;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[tokio::test]
async fn a_bad_token_or_another_keys_is_401_in_anthropics_shape() {
    let (upstream, gateway) = one_key(Reply::sse(ANTHROPIC), &[]).await;
    let (id, _) = gateway.session().await;
    let other = LlmKey::new(b"another gateway key, 32 bytes at least").mint(&id);
    for token in ["", "sk-ant-api03-not-a-session-token", other.as_str()] {
        let (status, body) = call(&gateway, token).await;
        assert_eq!(status, 401, "{token:?}");
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "authentication_error");
    }
    assert!(upstream.seen().is_empty(), "nothing reached the upstream");
}

#[tokio::test]
async fn an_unknown_session_is_401() {
    let (upstream, gateway) = one_key(Reply::sse(ANTHROPIC), &[]).await;
    let token = LlmKey::new(crate::common::gateway::GATEWAY_KEY.as_bytes()).mint("s-nobody");
    assert_eq!(call(&gateway, &token).await.0, 401);
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn a_stopped_sessions_token_is_refused_within_the_cache_time() {
    let (_upstream, gateway) = one_key(Reply::sse(ANTHROPIC), &[]).await;
    let (id, token) = gateway.session().await;
    let (_, other) = gateway.session().await;
    assert_eq!(call(&gateway, &token).await.0, 200);
    gateway.end(&id).await;
    let ended = Instant::now();
    loop {
        let (status, body) = call(&gateway, &token).await;
        if status == 401 {
            assert_eq!(body["error"]["type"], "authentication_error");
            break;
        }
        assert_eq!(status, 200);
        assert!(
            ended.elapsed() < REFUSED_WITHIN,
            "still let through after {REFUSED_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Another session of the same gateway is untouched.
    let (status, _) = call(&gateway, &other).await;
    assert_eq!(status, 200);
}
