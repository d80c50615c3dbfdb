//! What crosses the gateway: the request as the agent sent it with the session token replaced
//! by the provider's key, and the answer byte for byte at the upstream's pace.

use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use super::fixtures::{ANTHROPIC, CHAT, GEMINI, MESSAGES_BODY, RESPONSES};
use super::{KEY_1, claude_headers, one_key, pairs};
use crate::common::DEADLINE;
use crate::common::gateway::{read_all, send};
use crate::common::upstream::Reply;

#[tokio::test]
async fn claude_codes_request_reaches_the_upstream_intact_with_the_key_for_the_token() {
    let (upstream, gateway) = one_key(Reply::sse(ANTHROPIC), &[]).await;
    let (_, token) = gateway.session().await;
    let headers = claude_headers(&token);
    let req = gateway.post(
        "/anthropic/v1/messages?beta=true",
        &pairs(&headers),
        MESSAGES_BODY,
    );
    let resp = send(gateway.addr, req).await;
    assert_eq!(resp.status(), 200);
    let (body, broken) = read_all(resp).await;
    assert!(!broken);
    assert_eq!(
        body,
        Reply::sse(ANTHROPIC).bytes(),
        "the answer, byte for byte"
    );

    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    let got = &seen[0];
    assert_eq!(
        (got.method.as_str(), got.target.as_str()),
        ("POST", "/v1/messages?beta=true")
    );
    assert_eq!(got.body, MESSAGES_BODY.as_bytes());
    assert_eq!(got.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(got.header("anthropic-beta"), Some(headers[2].1.as_str()));
    assert_eq!(got.header("x-api-key"), Some(KEY_1));
    assert_eq!(got.header("authorization"), None);
    let host = upstream.addr.to_string();
    assert_eq!(
        got.header("host"),
        Some(host.as_str()),
        "the upstream's own host"
    );
    assert!(!got.contains(&token) && !got.contains("cst_"), "{got:?}");
}

#[tokio::test]
async fn openai_gets_its_key_as_a_bearer_and_gemini_as_its_header_not_the_query() {
    let (upstream, gateway) = one_key(Reply::sse(RESPONSES), &[]).await;
    let (_, token) = gateway.session().await;
    let bearer = format!("Bearer {token}");
    let req = gateway.post("/openai/v1/responses", &[("authorization", &bearer)], "{}");
    let (body, _) = read_all(send(gateway.addr, req).await).await;
    assert_eq!(body, Reply::sse(RESPONSES).bytes());

    upstream.queue(Reply::sse(GEMINI));
    let path =
        format!("/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse&key={token}");
    let (body, _) = read_all(send(gateway.addr, gateway.post(&path, &[], "{}")).await).await;
    assert_eq!(body, Reply::sse(GEMINI).bytes());

    let seen = upstream.seen();
    assert_eq!(seen[0].target, "/v1/responses");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {KEY_1}").as_str())
    );
    assert_eq!(
        seen[1].target,
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    );
    assert_eq!(seen[1].header("x-goog-api-key"), Some(KEY_1));
    assert!(
        seen.iter()
            .all(|s| !s.contains(&token) && !s.contains("cst_"))
    );
}

#[tokio::test]
async fn a_chunk_arrives_before_the_upstreams_pause_ends() {
    let pause = Duration::from_millis(300);
    let (_upstream, gateway) = one_key(Reply::sse(CHAT).paced(pause), &[]).await;
    let (_, token) = gateway.session().await;
    let bearer = format!("Bearer {token}");
    let req = gateway.post(
        "/openai/v1/chat/completions",
        &[("authorization", &bearer)],
        "{}",
    );
    let mut body = send(gateway.addr, req).await.into_body();
    let mut arrivals = Vec::new();
    let mut got = Vec::new();
    while let Some(frame) = tokio::time::timeout(DEADLINE, body.frame()).await.unwrap() {
        let data = frame.unwrap().into_data().unwrap();
        got.extend_from_slice(&data);
        arrivals.push((Instant::now(), got.len()));
    }
    // Each chunk came on its own, a pause after the one before: none was held back for the
    // next (a buffering proxy delivers the first only with the second, or all at the end).
    let ends: Vec<usize> = (CHAT.iter())
        .scan(0, |n, c| {
            *n += c.len();
            Some(*n)
        })
        .collect();
    let firsts: Vec<Instant> = (ends.iter())
        .map(|end| arrivals.iter().find(|(_, n)| n >= end).unwrap().0)
        .collect();
    for (i, pair) in firsts.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= pause * 3 / 4,
            "chunk {} came {gap:?} after chunk {i}",
            i + 1
        );
    }
    assert!(
        arrivals.iter().any(|(_, n)| *n == ends[0]),
        "the first chunk alone: {arrivals:?}"
    );
    assert_eq!(got, Reply::sse(CHAT).bytes());
}

#[tokio::test]
async fn a_provider_without_keys_answers_503_in_its_shape_and_calls_nobody() {
    let (upstream, gateway) = one_key(Reply::sse(GEMINI), &[("CATTY_GEMINI_KEYS", "")]).await;
    let (_, token) = gateway.session().await;
    let path = "/gemini/v1beta/models/gemini-2.5-pro:generateContent";
    let resp = send(
        gateway.addr,
        gateway.post(path, &[("x-goog-api-key", &token)], "{}"),
    )
    .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["x-should-retry"], "false");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["status"], "UNAVAILABLE");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no gemini key")
    );
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn the_log_holds_neither_the_token_nor_the_key() {
    let (_upstream, gateway) = one_key(Reply::sse(ANTHROPIC), &[]).await;
    let (id, token) = gateway.session().await;
    let headers = claude_headers(&token);
    let req = gateway.post("/anthropic/v1/messages", &pairs(&headers), MESSAGES_BODY);
    let _ = read_all(send(gateway.addr, req).await).await;
    let log = wait_for_log(&gateway, "answer ended").await;
    assert!(
        log.contains(&id),
        "the request's span names its session: {log}"
    );
    // Metered on the way: the fixture's counters, the provider's final word.
    for field in [
        "input=3",
        "cache_write=412",
        "cache_read=30433",
        "output=95",
        "reported=true",
    ] {
        assert!(log.contains(field), "{field} in {log}");
    }
    let mac = token.rsplit_once('.').unwrap().1;
    assert!(!log.contains(mac) && !log.contains(KEY_1), "{log}");
}

/// The gateway's log once it holds `needle`.
pub(super) async fn wait_for_log(
    gateway: &crate::common::gateway::Gateway,
    needle: &str,
) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let log = gateway.log();
        if log.contains(needle) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in the log: {log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
