//! Hostile clients against the real runtime: each case ends in a clear refusal, the runtime
//! alive, its memory within a stated ceiling, and other clients unaffected.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Client, Runtime, TOKEN, peak_rss_bytes, sized, succeeded};
use catty::protocol::{
    BODY_STALL_TIMEOUT, ClientMsg, ConnectParams, DEAD_LINK, HEADER_READ_TIMEOUT, MAX_COLS,
    MAX_ROWS, MESSAGE_MAX_BYTES,
};
use fastwebsockets::{Frame, OpCode, Payload};

/// What one client's behaviour may add to the runtime's resident memory.
const CEILING_BYTES: u64 = 64 * 1024 * 1024;

/// A `resize` to 65535x65535, then fresh attaches that redraw the screen: the resize is
/// refused with an error naming the bounds, and the largest size taken (asked for in the
/// query and by `resize`) costs a bounded redraw.
#[tokio::test]
async fn a_huge_terminal_is_refused_and_the_largest_costs_little() {
    let rt = Runtime::start(
        &["sh", "-c", "yes catty | head -c 3000000; exec sleep 600"],
        &[],
    );
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    c.read_until("the output", |c| c.output.len() >= 3_000_000)
        .await;
    let idle = peak_rss_bytes(rt.pid());

    c.control(&ClientMsg::Resize {
        cols: u16::MAX,
        rows: u16::MAX,
    })
    .await;
    c.read_until("an error", |c| !c.errors.is_empty()).await;
    assert_eq!(
        c.errors[0],
        format!(
            "the terminal must be 1 to {MAX_COLS} cols by 1 to {MAX_ROWS} rows, got 65535x65535"
        )
    );
    let too_big = ConnectParams {
        size: None,
        ..Default::default()
    };
    let query = format!(
        "ws://{}/connect?{}&cols=10000&rows=10000",
        rt.addr,
        too_big.to_query()
    );
    assert!(
        Client::connect_url(&query).await.is_err(),
        "10000x10000 is refused"
    );

    // The largest size taken, by resize and then by a fresh attach: both redraw.
    c.control(&ClientMsg::Resize {
        cols: MAX_COLS,
        rows: MAX_ROWS,
    })
    .await;
    for _ in 0..3 {
        let mut fresh = Client::connect(rt.addr, &sized(MAX_COLS, MAX_ROWS))
            .await
            .unwrap();
        fresh.read_until("the redraw", |c| c.redraw.is_some()).await;
    }
    let used = peak_rss_bytes(rt.pid()).saturating_sub(idle);
    assert!(used < CEILING_BYTES, "the largest screen cost {used} bytes");

    // Still serving: the first client's echo.
    let mut check = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    check.read_until("the redraw", |c| c.redraw.is_some()).await;
}

/// Connections that send nothing, or half a request head, or sit idle after a request, are
/// closed after the header timeout; the runtime answers others meanwhile.
#[tokio::test]
async fn idle_and_half_sent_requests_are_closed() {
    let rt = Runtime::start(&["sleep", "600"], &[]);
    let started = Instant::now();
    let mut silent = TcpStream::connect(rt.addr).await.unwrap();
    let mut half = TcpStream::connect(rt.addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut kept = TcpStream::connect(rt.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        http_get(rt.addr, "/healthz").await,
        "ok",
        "others are answered"
    );
    let limit = HEADER_READ_TIMEOUT + Duration::from_secs(3);
    for (what, conn) in [
        ("silent", &mut silent),
        ("half", &mut half),
        ("kept", &mut kept),
    ] {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(limit, conn.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "{what}: still open after {limit:?}");
    }
    assert!(started.elapsed() >= HEADER_READ_TIMEOUT - Duration::from_secs(1));
}

/// An upload that stops moving (2 bytes of 100,000 sent, the socket kept open) is abandoned
/// with a 408 after the stall timeout, and the slot is free: the next upload works.
#[tokio::test]
async fn a_stalled_upload_is_abandoned_and_the_slot_freed() {
    let rt = Runtime::start(&["sh", "-c", "echo started; exec sleep 600"], &[]);
    let mut conn = TcpStream::connect(rt.addr).await.unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {TOKEN}\r\n\
         content-type: application/zip\r\ncontent-length: 100000\r\n\r\nPK",
        rt.addr
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let limit = BODY_STALL_TIMEOUT + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    let answered = tokio::time::timeout(limit, async {
        while !String::from_utf8_lossy(&reply).contains("\r\n\r\n") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed without an answer");
            reply.extend_from_slice(&buf[..n]);
        }
    });
    answered.await.expect("an answer within the stall timeout");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    // The program still starts: an attach gets the session.
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    c.read_until_contains("started").await;
}

/// `GET path` on a fresh connection; the body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).await.unwrap();
    reply
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// 2,000 idle connections that never show the token, against a runtime limited to 1024
/// descriptors: the attached owner keeps working, and `/healthz` and a new attach answer.
#[tokio::test]
async fn idle_connections_cannot_lock_the_owner_out() {
    let rt = Runtime::start(&["cat"], &[]);
    limit_descriptors(rt.pid(), "1024:1024");
    // This test's own 2,000 sockets: the soft limit only.
    limit_descriptors(std::process::id() as i32, "8192:");
    let mut owner = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    owner.send(b"before\r").await;
    owner.read_until_contains("before").await;

    let mut idle = Vec::new();
    let started = Instant::now();
    for i in 0..2000 {
        // The owner pings like a client does (every second): the runtime drops a connection
        // silent for `DEAD_LINK`, and opening these can take longer than that on a busy box.
        if i % 100 == 0 {
            owner.control(&ClientMsg::Ping).await;
        }
        idle.push(TcpStream::connect(rt.addr).await.unwrap());
    }
    let opened = started.elapsed();
    let started = Instant::now();
    assert_eq!(http_get(rt.addr, "/healthz").await, "ok");
    let healthz = started.elapsed();
    let started = Instant::now();
    let mut newcomer = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    let attach = started.elapsed();
    report(&format!(
        "2,000 idle connections opened in {opened:?}; then /healthz {healthz:?}, attach {attach:?}"
    ));
    owner.send(b"after\r").await;
    owner.read_until_contains("after").await;
    newcomer.read_until_contains("after").await;
    assert!(healthz < Duration::from_secs(1) && attach < Duration::from_secs(1));
    drop(idle);
}

/// Sets the descriptor limits of process `pid` (`soft:hard`, either may be left out) with
/// util-linux's prlimit.
fn limit_descriptors(pid: i32, limits: &str) {
    let out = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={limits}")])
        .output()
        .unwrap();
    succeeded(out);
}

/// A line shown even when the test passes.
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A fragmented message that never ends, a frame too large, text that is not UTF-8 and an
/// unmasked frame:
/// each closes that connection with its RFC 6455 code, the runtime's memory stays bounded,
/// and another client's echo goes on.
#[tokio::test]
async fn oversized_and_malformed_messages_close_with_their_codes() {
    let rt = Runtime::start(&["cat"], &[]);
    let mut other = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    other.send(b"first\r").await;
    other.read_until_contains("first").await;
    let idle = peak_rss_bytes(rt.pid());

    // 64 MiB in 64 KiB fragments, never finished: cut at MESSAGE_MAX_BYTES.
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = c
        .send_frame(Frame::new(
            false,
            OpCode::Binary,
            None,
            Payload::Borrowed(&chunk),
        ))
        .await;
    for _ in 0..1024 {
        if sent.is_err() {
            break;
        }
        let piece = Frame::new(false, OpCode::Continuation, None, Payload::Borrowed(&chunk));
        sent = c.send_frame(piece).await;
    }
    c.read_to_close().await;
    assert_eq!(c.close_code, Some(1009));

    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    let big = vec![b'y'; MESSAGE_MAX_BYTES + 1];
    let _ = c.send_frame(Frame::binary(Payload::Borrowed(&big))).await;
    c.read_to_close().await;
    assert_eq!(c.close_code, Some(1009));

    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    let _ = c
        .send_frame(Frame::text(Payload::Borrowed(b"{\"type\":\"ping\xff\"}")))
        .await;
    c.read_to_close().await;
    assert_eq!(c.close_code, Some(1007));

    // An unmasked client frame: a protocol error (1002), its input never reaches the program.
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    let unmasked = Frame::binary(Payload::Borrowed(b"unmasked-input\r"));
    let _ = c.send_unmasked(unmasked).await;
    c.read_to_close().await;
    assert_eq!(c.close_code, Some(1002));

    let used = peak_rss_bytes(rt.pid()).saturating_sub(idle);
    assert!(used < CEILING_BYTES, "{used} bytes");
    other.send(b"after\r").await;
    other.read_until_contains("after").await;
    assert!(!String::from_utf8_lossy(&other.output).contains("unmasked-input"));
}

/// Input for a program that does not read it waits in the client's socket, not in the
/// runtime's memory: at most `INPUT_QUEUE_BYTES` is queued, the client is not taken for a
/// dead link while its sends wait (longer than `DEAD_LINK`), and every byte reaches the
/// program, once, when it reads.
#[tokio::test]
async fn input_the_program_does_not_read_waits_in_the_clients_socket() {
    const FRAMES: usize = 96;
    let total = FRAMES * MESSAGE_MAX_BYTES;
    let script =
        format!("stty raw -echo; echo ready; sleep 10; head -c {total} >/dev/null; echo took-all");
    let rt = Runtime::start(&["sh", "-c", &script], &[]);
    let params = ConnectParams {
        client: Some(crate::common::client_id()),
        ..sized(80, 24)
    };
    let mut c = Client::connect(rt.addr, &params).await.unwrap();
    c.read_until_contains("ready").await;
    let idle = peak_rss_bytes(rt.pid());
    let frame = vec![b'x'; MESSAGE_MAX_BYTES];
    let started = Instant::now();
    for _ in 0..FRAMES {
        c.send_frame(Frame::binary(Payload::Borrowed(&frame)))
            .await
            .expect("the runtime kept the connection while input waited");
    }
    assert!(
        started.elapsed() > DEAD_LINK,
        "the sends did not wait for the program"
    );
    c.read_until("all input applied", |c| {
        c.acks.last() == Some(&(total as u64))
    })
    .await;
    c.read_until_contains("took-all").await;
    let used = peak_rss_bytes(rt.pid()).saturating_sub(idle);
    assert!(used < 16 * 1024 * 1024, "{used} bytes for waiting input");
}
