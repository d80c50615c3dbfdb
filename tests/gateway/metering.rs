//! What the gateway writes in the books for each answer, read back from its database: the
//! provider's raw counters, priced at list price, once per upstream request id, and a client
//! that hangs up mid-stream still charged.

use std::time::Duration;

use http_body_util::BodyExt;

use super::fixtures::{ANTHROPIC, GEMINI, MESSAGES_BODY, RESPONSES};
use super::{claude_headers, one_key, pairs};
use crate::common::DEADLINE;
use crate::common::gateway::{Gateway, UsageRow, read_all, send};
use crate::common::upstream::Reply;

/// Sends Claude Code's request with `token` and reads the answer to its end.
async fn ask_claude(gateway: &Gateway, token: &str) {
    let headers = claude_headers(token);
    let req = gateway.post("/anthropic/v1/messages", &pairs(&headers), MESSAGES_BODY);
    let resp = send(gateway.addr, req).await;
    assert_eq!(resp.status(), 200);
    assert!(!read_all(resp).await.1, "cut");
}

/// The one usage row of `session`'s user once its request settled, and that user's `used`.
async fn settled_row(gateway: &Gateway, session: &str) -> (UsageRow, i64) {
    let user = gateway.owner(session).await;
    let books = gateway.settled(&user).await;
    let mut rows = gateway.usage(&user).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    (rows.remove(0), books.used)
}

#[tokio::test]
async fn anthropics_four_counters_are_recorded_at_sonnets_list_price() {
    let reply = Reply::sse(ANTHROPIC).with_header("request-id", "req_011Anthropic");
    let (_upstream, gateway) = one_key(reply, &[]).await;
    let (session, token) = gateway.session().await;
    ask_claude(&gateway, &token).await;
    let (row, used) = settled_row(&gateway, &session).await;
    // The last cumulative message_delta's input, cache read and output; message_start's
    // cache write. Sonnet 4.5, per million: $3 in, $3.75 cache write (1.25×), $0.30 cache
    // read (0.1×), $15 out: 9 + 1,545 + 9,129.9 + 1,425 = 12,108.9, rounded up.
    let expected = UsageRow {
        provider: "anthropic".into(),
        model: Some("claude-sonnet-4-5".into()),
        upstream_request_id: "req_011Anthropic".into(),
        tokens: (3, 412, 30_433, 95),
        reported: true,
        units: 12_109,
    };
    assert_eq!(row, expected);
    assert_eq!(used, 12_109);
}

#[tokio::test]
async fn openais_responses_usage_is_recorded_with_cached_input_apart() {
    let reply = Reply::sse(RESPONSES).with_header("x-request-id", "req_openai_1");
    let (_upstream, gateway) = one_key(reply, &[]).await;
    let (session, token) = gateway.session().await;
    let bearer = format!("Bearer {token}");
    let body = r#"{"model":"gpt-5","max_output_tokens":1000,"stream":true,"input":"hi"}"#;
    let req = gateway.post("/openai/v1/responses", &[("authorization", &bearer)], body);
    let resp = send(gateway.addr, req).await;
    assert_eq!(resp.status(), 200);
    read_all(resp).await;
    let (row, used) = settled_row(&gateway, &session).await;
    // 5,000 input of which 4,096 cached; GPT-5 per million: $1.25 in, $0.125 cached, $10
    // out: 904 × 1.25 + 4,096 × 0.125 + 300 × 10 = 1,130 + 512 + 3,000.
    let expected = UsageRow {
        provider: "openai".into(),
        model: Some("gpt-5".into()),
        upstream_request_id: "req_openai_1".into(),
        tokens: (904, 0, 4096, 300),
        reported: true,
        units: 4642,
    };
    assert_eq!(row, expected);
    assert_eq!(used, 4642);
}

#[tokio::test]
async fn geminis_usage_metadata_is_recorded_under_an_id_of_the_gateways_own() {
    let (_upstream, gateway) = one_key(Reply::sse(GEMINI), &[]).await;
    let (session, token) = gateway.session().await;
    let path =
        format!("/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse&key={token}");
    let resp = send(gateway.addr, gateway.post(&path, &[], "{}")).await;
    assert_eq!(resp.status(), 200);
    read_all(resp).await;
    let (row, used) = settled_row(&gateway, &session).await;
    // 2,100 prompt tokens of which 2,048 cached, 9 candidates; Gemini 2.5 Pro per million:
    // $1.25 in, $0.125 cached, $10 out: 52 × 1.25 + 2,048 × 0.125 + 9 × 10 = 65 + 256 + 90.
    assert_eq!(
        (row.provider.as_str(), row.model.as_deref()),
        ("gemini", Some("gemini-2.5-pro"))
    );
    assert_eq!(
        (row.tokens, row.reported, row.units),
        ((52, 0, 2048, 9), true, 411)
    );
    assert!(row.upstream_request_id.starts_with("catty-"), "{row:?}");
    assert_eq!(used, 411);
}

#[tokio::test]
async fn two_answers_with_one_upstream_id_are_recorded_and_charged_once() {
    let (upstream, gateway) = one_key(Reply::sse(ANTHROPIC), &[]).await;
    let (session, token) = gateway.session().await;
    for _ in 0..2 {
        upstream.queue(Reply::sse(ANTHROPIC).with_header("request-id", "req_same"));
        ask_claude(&gateway, &token).await;
    }
    assert_eq!(upstream.seen().len(), 2);
    let (row, used) = settled_row(&gateway, &session).await;
    assert_eq!(
        (row.upstream_request_id.as_str(), row.units),
        ("req_same", 12_109)
    );
    assert_eq!(used, 12_109, "charged once");
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_stream_is_charged_in_the_books() {
    let slow = Reply::sse(ANTHROPIC).paced(Duration::from_millis(200));
    let (_upstream, gateway) = one_key(slow, &[]).await;
    let (session, token) = gateway.session().await;
    let headers = claude_headers(&token);
    let req = gateway.post("/anthropic/v1/messages", &pairs(&headers), MESSAGES_BODY);
    let mut body = send(gateway.addr, req).await.into_body();
    // The first event (message_start, with the input and cache counters), then hang up.
    let frame = tokio::time::timeout(DEADLINE, body.frame()).await.unwrap();
    assert!(frame.unwrap().unwrap().is_data());
    drop(body);
    let (row, used) = settled_row(&gateway, &session).await;
    let (input, cache_write, cache_read, output) = row.tokens;
    assert_eq!((input, cache_write, cache_read), (1, 412, 30_433));
    assert!(output > 0, "{row:?}");
    assert!(!row.reported);
    assert!(row.units > 0);
    assert_eq!(used, row.units);
}
