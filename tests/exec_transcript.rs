//! The transcript on disk behind the output ring: `since` resumes from it exactly, it stays
//! within its bound, and `GET /transcript` serves it (with the token only).

use crate::common::{self, Client, HttpReply, Runtime, TOKEN, http_send, sized};
use bytes::Bytes;
use catty::protocol::transcript::{END_HEADER, EXIT_HEADER, START_HEADER, TRANSCRIPT_PATH};
use catty::protocol::{ConnectParams, ServerMsg};
use http_body_util::Full;
use hyper::{Request, StatusCode};

/// `seq 1 N` as the PTY shows it.
fn seq(to: u64) -> Vec<u8> {
    (1..=to)
        .flat_map(|i| format!("{i}\r\n").into_bytes())
        .collect()
}

/// Starts the program with a client that leaves at once, and waits until it has exited:
/// all of its output was written with nobody attached.
async fn run_detached(rt: &Runtime) {
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    c.read_until("first output", |c| !c.output.is_empty()).await;
    drop(c);
    common::wait_for_no_children(rt.pid());
}

async fn resume(rt: &Runtime, since: u64) -> (u64, bool, Vec<u8>) {
    let params = ConnectParams {
        since: Some(since),
        ..sized(80, 24)
    };
    let mut c = Client::connect(rt.addr, &params).await.unwrap();
    let ServerMsg::Ready {
        offset, truncated, ..
    } = c.ready
    else {
        panic!("{:?}", c.ready)
    };
    c.read_until("exit", |c| c.exit.is_some()).await;
    (offset, truncated, std::mem::take(&mut c.output))
}

async fn transcript(rt: &Runtime, query: &str, token: Option<&str>) -> HttpReply {
    let mut req = Request::get(format!("{TRANSCRIPT_PATH}?{query}"));
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    http_send(rt.addr, req.body(Full::new(Bytes::new())).unwrap()).await
}

fn segment_sizes(dir: &std::path::Path) -> Vec<u64> {
    let entries = std::fs::read_dir(dir).unwrap();
    entries
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect()
}

/// Far more than the memory ring (8 MiB) with nobody attached: `since=0` still gets every
/// byte, exactly once and in order, from the disk first and then memory.
#[tokio::test]
async fn resume_from_zero_gets_every_byte_past_the_ring() {
    let rt = Runtime::start(&["seq", "1", "2500000"], &[]);
    let expected = seq(2_500_000);
    assert!(expected.len() > 2 * 8 * 1024 * 1024);
    run_detached(&rt).await;
    let (offset, truncated, output) = resume(&rt, 0).await;
    assert_eq!((offset, truncated), (0, false));
    assert_eq!(output.len(), expected.len());
    assert!(output == expected, "the resumed stream differs from seq's");
    let (offset, _, output) = resume(&rt, 1_000_001).await;
    assert_eq!(offset, 1_000_001);
    assert!(
        output == expected[1_000_001..],
        "a resume in the middle differs"
    );
}

/// A small bound: the files never hold more, and an offset older than the oldest kept is
/// `truncated` and starts exactly at the oldest byte kept.
#[tokio::test]
async fn the_transcript_stays_within_its_bound() {
    const BOUND: u64 = 4 * 1024 * 1024;
    let bound = BOUND.to_string();
    let rt = Runtime::start(
        &["seq", "1", "3000000"],
        &[("CATTY_TRANSCRIPT_BYTES", bound.as_str())],
    );
    let expected = seq(3_000_000);
    run_detached(&rt).await;
    let sizes = segment_sizes(rt.transcript.path());
    assert_eq!(sizes.len(), 2, "two segments: {sizes:?}");
    assert!(sizes.iter().sum::<u64>() <= BOUND, "{sizes:?}");
    // 4 MiB on disk kept less than the 8 MiB ring: the ring's oldest byte is the oldest.
    let (offset, truncated, output) = resume(&rt, 0).await;
    assert!(truncated);
    assert_eq!(offset, expected.len() as u64 - 8 * 1024 * 1024);
    assert!(output == expected[offset as usize..]);
}

/// A bound larger than the ring, written several times over: the oldest byte kept is on
/// disk, and `/transcript` from 0 starts there.
#[tokio::test]
async fn old_offsets_start_at_the_transcripts_oldest_byte() {
    const BOUND: u64 = 12 * 1024 * 1024;
    let bound = BOUND.to_string();
    let rt = Runtime::start(
        &["seq", "1", "5000000"],
        &[("CATTY_TRANSCRIPT_BYTES", bound.as_str())],
    );
    let expected = seq(5_000_000);
    run_detached(&rt).await;
    let sizes = segment_sizes(rt.transcript.path());
    assert!(sizes.iter().sum::<u64>() <= BOUND, "{sizes:?}");
    let (offset, truncated, output) = resume(&rt, 0).await;
    assert!(truncated);
    let kept = expected.len() as u64 - offset;
    assert!((BOUND / 2..=BOUND).contains(&kept), "{kept} bytes kept");
    assert!(kept > 8 * 1024 * 1024, "more than the ring: {kept}");
    assert!(output == expected[offset as usize..]);
    let reply = transcript(&rt, "since=0", Some(TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header(START_HEADER),
        Some(offset.to_string().as_str())
    );
    let end = expected.len().to_string();
    assert_eq!(reply.header(END_HEADER), Some(end.as_str()));
    assert_eq!(reply.header(EXIT_HEADER), Some("0"));
    assert!(reply.body == expected[offset as usize..]);
}

#[tokio::test]
async fn transcript_needs_the_token() {
    let rt = Runtime::start(&["true"], &[]);
    let reply = transcript(&rt, "since=0", None).await;
    assert_eq!(reply.error(StatusCode::UNAUTHORIZED).code, "unauthorized");
    let reply = transcript(&rt, "since=0", Some("wrong")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = transcript(&rt, "since=x", Some(TOKEN)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

/// A transcript that cannot be made (no such place) is a warning: output flows from memory.
#[tokio::test]
async fn output_flows_without_a_place_for_the_transcript() {
    let rt = Runtime::start(
        &["seq", "1", "1000"],
        &[("CATTY_TRANSCRIPT", "/proc/catty-cannot-be-here")],
    );
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    c.read_until("exit", |c| c.exit.is_some()).await;
    assert!(c.output == seq(1000));
    let reply = transcript(&rt, "since=0", Some(TOKEN)).await;
    assert!(reply.body == seq(1000));
}
