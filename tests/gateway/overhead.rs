//! The gateway's cost (a benchmark, ignored by default): time to first byte of a streamed
//! answer through the gateway against straight to the fake upstream, both on loopback over a
//! kept-alive connection, and the pace of a stream's chunks on both ways. For numbers, with a
//! release build:
//!
//! ```sh
//! cargo build --release
//! CATTY_BENCH_BIN=target/release/catty cargo test --test tests -- --ignored --nocapture gateway::overhead
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::fixtures::{ANTHROPIC, MESSAGES_BODY};
use super::{KEY_1, one_key};
use crate::common::upstream::Reply;

/// Requests timed each way, after [`WARMUP`] untimed ones.
const REQUESTS: usize = 2000;
const WARMUP: usize = 100;
/// The paced stream: chunks this far apart.
const PACE: Duration = Duration::from_millis(20);
const PACED_STREAMS: usize = 10;

async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// Sends one request on `sender`; returns the time to the first body byte and the arrival
/// time of every frame.
async fn timed(
    sender: &mut SendRequest<Full<Bytes>>,
    path: &str,
    auth: (&str, &str),
) -> (Duration, Vec<Instant>) {
    sender.ready().await.unwrap();
    let req = Request::post(path)
        .header("host", "bench")
        .header(auth.0, auth.1)
        .header("anthropic-version", "2023-06-01")
        .body(Full::new(Bytes::from_static(MESSAGES_BODY.as_bytes())))
        .unwrap();
    let start = Instant::now();
    let resp = sender.send_request(req).await.unwrap();
    // A refusal (a 402 once the quota is spent) is quick and would pass for a fast answer.
    assert_eq!(
        resp.status(),
        200,
        "the bench measures answers, not refusals"
    );
    let mut body = resp.into_body();
    let mut arrivals = Vec::new();
    while let Some(frame) = body.frame().await {
        frame.unwrap();
        arrivals.push(Instant::now());
    }
    (arrivals[0] - start, arrivals)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50 and p99 of the time to first byte of `REQUESTS` requests, in ms.
async fn ttfb(addr: SocketAddr, path: &str, auth: (&str, &str)) -> (f64, f64) {
    let mut sender = connect(addr).await;
    for _ in 0..WARMUP {
        timed(&mut sender, path, auth).await;
    }
    let mut all = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        all.push(ms(timed(&mut sender, path, auth).await.0));
    }
    all.sort_by(f64::total_cmp);
    (percentile(&all, 0.5), percentile(&all, 0.99))
}

/// p50 and p99 of how far each gap between chunks is from the upstream's pace, in ms.
async fn pace(addr: SocketAddr, path: &str, auth: (&str, &str)) -> (f64, f64) {
    let mut sender = connect(addr).await;
    let mut off = Vec::new();
    for _ in 0..PACED_STREAMS {
        let (_, arrivals) = timed(&mut sender, path, auth).await;
        for pair in arrivals.windows(2) {
            off.push((ms(pair[1] - pair[0]) - ms(PACE)).abs());
        }
    }
    off.sort_by(f64::total_cmp);
    (percentile(&off, 0.5), percentile(&off, 0.99))
}

#[tokio::test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn overhead() {
    // A budget the bench's thousands of requests cannot spend: each still holds and settles.
    let budget = [("CATTY_FREE_MONTHLY_USD", "1000000")];
    let (upstream, gateway) = one_key(Reply::sse(ANTHROPIC), &budget).await;
    let (_, token) = gateway.session().await;
    let path = "/v1/messages?beta=true";
    let direct = ttfb(upstream.addr, path, ("x-api-key", KEY_1)).await;
    let gated_path = format!("/anthropic{path}");
    let bearer = format!("Bearer {token}");
    let through = ttfb(gateway.addr, &gated_path, ("authorization", &bearer)).await;
    println!("time to first byte, {REQUESTS} requests, kept-alive connection:");
    println!("  direct   p50 {:.3} ms  p99 {:.3} ms", direct.0, direct.1);
    println!(
        "  gateway  p50 {:.3} ms  p99 {:.3} ms",
        through.0, through.1
    );
    println!(
        "  added    p50 {:.3} ms  p99 {:.3} ms",
        through.0 - direct.0,
        through.1 - direct.1
    );
    for _ in 0..PACED_STREAMS * 2 {
        upstream.queue(Reply::sse(ANTHROPIC).paced(PACE));
    }
    let direct = pace(upstream.addr, path, ("x-api-key", KEY_1)).await;
    let through = pace(gateway.addr, &gated_path, ("authorization", &bearer)).await;
    println!("chunks paced {PACE:?} apart, off the pace ({PACED_STREAMS} streams):");
    println!("  direct   p50 {:.3} ms  p99 {:.3} ms", direct.0, direct.1);
    println!(
        "  gateway  p50 {:.3} ms  p99 {:.3} ms",
        through.0, through.1
    );
}
