//! How answers end: a silent upstream is cut after the idle timeout, a slow but steady one
//! never is, and a client that hangs up mid-stream is still charged.

use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use super::fixtures::{ANTHROPIC, RESPONSES};
use super::forward::wait_for_log;
use super::{claude_headers, one_key, pairs};
use crate::common::DEADLINE;
use crate::common::gateway::{read_all, send};
use crate::common::upstream::{End, Reply};

/// The gateway's idle timeout in these tests.
const IDLE: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_stalled_upstream_is_cut_after_the_idle_timeout() {
    let stalled = Reply::sse(&RESPONSES[..1]).ending(End::Stall);
    let (_upstream, gateway) = one_key(stalled, &[("CATTY_GATEWAY_IDLE", "1")]).await;
    let (_, token) = gateway.session().await;
    let bearer = format!("Bearer {token}");
    let req = gateway.post("/openai/v1/responses", &[("authorization", &bearer)], "{}");
    let resp = send(gateway.addr, req).await;
    let first_byte = Instant::now();
    let (body, broken) = read_all(resp).await;
    assert!(broken, "cut, not ended as if whole");
    assert_eq!(body, RESPONSES[0].as_bytes());
    assert!(
        first_byte.elapsed() >= IDLE * 3 / 4,
        "cut early: {:?}",
        first_byte.elapsed()
    );
    let log = wait_for_log(&gateway, "answer ended").await;
    assert!(log.contains("reported=false"), "{log}");
}

#[tokio::test]
async fn a_slow_steady_stream_longer_than_the_idle_timeout_passes_whole() {
    // Five pauses of 600 ms: 3 s in all, three times the idle timeout.
    let slow = Reply::sse(ANTHROPIC).paced(Duration::from_millis(600));
    let (_upstream, gateway) = one_key(slow.clone(), &[("CATTY_GATEWAY_IDLE", "1")]).await;
    let (_, token) = gateway.session().await;
    let headers = claude_headers(&token);
    let req = gateway.post("/anthropic/v1/messages", &pairs(&headers), "{}");
    let started = Instant::now();
    let (body, broken) = read_all(send(gateway.addr, req).await).await;
    assert_eq!((body, broken), (slow.bytes(), false));
    assert!(started.elapsed() > IDLE * 3);
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_stream_is_charged_what_it_got() {
    let slow = Reply::sse(ANTHROPIC).paced(Duration::from_millis(200));
    let (_upstream, gateway) = one_key(slow, &[]).await;
    let (_, token) = gateway.session().await;
    let headers = claude_headers(&token);
    let req = gateway.post("/anthropic/v1/messages", &pairs(&headers), "{}");
    let mut body = send(gateway.addr, req).await.into_body();
    // The first event (message_start, with the input and cache counters), then hang up.
    let frame = tokio::time::timeout(DEADLINE, body.frame()).await.unwrap();
    assert!(frame.unwrap().unwrap().is_data());
    drop(body);
    let log = wait_for_log(&gateway, "answer ended").await;
    // Input and cache counters from message_start; output from the bytes; not the provider's.
    for field in [
        "input=1",
        "cache_write=412",
        "cache_read=30433",
        "reported=false",
    ] {
        assert!(log.contains(field), "{field} in {log}");
    }
    assert!(!log.contains("output=0"), "{log}");
}

#[tokio::test]
async fn an_upstream_that_sends_no_head_is_a_504_after_the_idle_timeout() {
    let late = Reply::sse(ANTHROPIC).head_after(DEADLINE);
    let (upstream, gateway) = one_key(late, &[("CATTY_GATEWAY_IDLE", "1")]).await;
    let (_, token) = gateway.session().await;
    let headers = claude_headers(&token);
    let req = gateway.post("/anthropic/v1/messages", &pairs(&headers), "{}");
    let resp = send(gateway.addr, req).await;
    assert_eq!(resp.status(), 504);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["type"], "timeout_error");
    assert_eq!(
        upstream.seen().len(),
        1,
        "asked once, not again on a timeout"
    );
}

#[tokio::test]
async fn a_stream_under_way_at_shutdown_finishes_and_is_settled() {
    // Seven pauses of 100 ms: the answer ends within the 2 s drain.
    let slow = Reply::sse(ANTHROPIC).paced(Duration::from_millis(100));
    let (_upstream, mut gateway) = one_key(slow.clone(), &[]).await;
    let (_, token) = gateway.session().await;
    let headers = claude_headers(&token);
    let req = gateway.post("/anthropic/v1/messages", &pairs(&headers), "{}");
    let resp = send(gateway.addr, req).await;
    let (status, (body, broken)) = tokio::join!(gateway.terminate(), read_all(resp));
    assert_eq!((body, broken), (slow.bytes(), false));
    assert!(status.success(), "{status}");
    let log = gateway.log();
    assert!(
        log.contains("shutting down") && log.contains("reported=true"),
        "{log}"
    );
}
