//! The upload size limit: a declared length over it, and a chunked body cut near it in
//! bounded memory.

use std::net::SocketAddr;

use crate::common::{self, DEADLINE, parse_http_reply};
use catty::protocol::UPLOAD_LIMIT_BYTES;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::fixtures::MIB;
use super::{Sandbox, head_only, upload_head};

/// Keeps the client's unsent bytes out of the count of what the server read.
const CLIENT_SEND_BUFFER_BYTES: u32 = 256 * 1024;

/// Streams a chunked upload body of 1 MiB chunks until the server answers. Returns the bytes
/// the client wrote by then and the raw answer, read until the server closed the connection.
async fn stream_until_answered(addr: SocketAddr) -> (u64, Vec<u8>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small send buffer, so that what counts as written is close to what the server took.
    socket
        .set_send_buffer_size(CLIENT_SEND_BUFFER_BYTES)
        .unwrap();
    let (mut rd, mut wr) = socket.connect(addr).await.unwrap().into_split();
    let head = upload_head(addr, "transfer-encoding: chunked\r\n");
    wr.write_all(head.as_bytes()).await.unwrap();
    let (answered, mut on_answer) = tokio::sync::oneshot::channel::<()>();
    let read = async move {
        let (mut raw, mut answered) = (Vec::new(), Some(answered));
        let mut buf = vec![0; 64 * 1024];
        // Until EOF or a reset: either way the server closed the connection.
        while let Ok(n @ 1..) = rd.read(&mut buf).await {
            raw.extend_from_slice(&buf[..n]);
            if let Some(tx) = answered.take_if(|_| parse_http_reply(&raw).is_some()) {
                let _ = tx.send(());
            }
        }
        raw
    };
    let write = async move {
        let mut chunk = format!("{:x}\r\n", MIB).into_bytes();
        chunk.extend(std::iter::repeat_n(b'z', MIB as usize));
        chunk.extend_from_slice(b"\r\n");
        let (mut written, mut at) = (0u64, 0);
        loop {
            tokio::select! {
                biased;
                _ = &mut on_answer => return written,
                n = wr.write(&chunk[at..]) => match n {
                    Ok(n) => (written, at) = (written + n as u64, (at + n) % chunk.len()),
                    Err(_) => return written,
                },
            }
        }
    };
    let both = async { tokio::join!(write, read) };
    tokio::time::timeout(DEADLINE, both)
        .await
        .expect("the server answers and closes in time")
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_413_without_reading_the_body() {
    let s = Sandbox::start(&["sleep", "100"]);
    let length = format!("content-length: {}\r\n", UPLOAD_LIMIT_BYTES + 1);
    // With `Expect: 100-continue`, reading the body would first send `100 Continue`.
    for expect in ["", "expect: 100-continue\r\n"] {
        let head = upload_head(s.rt.addr, &format!("{length}{expect}"));
        let raw = head_only(s.rt.addr, &head).await;
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 413 "), "{expect:?}: {text}");
        let reply = parse_http_reply(&raw).unwrap_or_else(|| panic!("incomplete: {text}"));
        assert_eq!(reply.error(StatusCode::PAYLOAD_TOO_LARGE).code, "too_large");
        assert_eq!(reply.header("connection"), Some("close"));
    }
    s.assert_untouched("after the 413s");
    s.upload_ok("good.zip").await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_cut_near_it_in_bounded_memory() {
    let s = Sandbox::start(&["sleep", "100"]);
    let (written, raw) = stream_until_answered(s.rt.addr).await;
    let text = String::from_utf8_lossy(&raw);
    let reply = parse_http_reply(&raw).unwrap_or_else(|| panic!("after {written} bytes: {text:?}"));
    assert_eq!(reply.error(StatusCode::PAYLOAD_TOO_LARGE).code, "too_large");
    // Without a length the server must read past the limit to know; what it did not read
    // sits in the two socket buffers, a few MiB on loopback.
    assert!(
        written > UPLOAD_LIMIT_BYTES,
        "413 after only {written} bytes"
    );
    let most = UPLOAD_LIMIT_BYTES + 16 * MIB;
    assert!(written < most, "the client wrote {written} bytes");
    let peak = common::peak_rss_bytes(s.rt.pid());
    assert!(
        peak < 64 * MIB,
        "the runtime's peak RSS was {} MiB",
        peak / MIB
    );
    s.assert_untouched("after the 413");
    s.upload_ok("good.zip").await;
}
