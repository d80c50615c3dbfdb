//! Plain HTTP for the tests: one request on a fresh connection with hyper's client, and a
//! parser for answers read off a raw socket.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::DEADLINE;

/// A whole HTTP answer, from [`http_send`] or parsed from raw bytes by [`parse_http_reply`].
pub struct HttpReply {
    pub status: hyper::StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: bytes::Bytes,
}

impl HttpReply {
    /// The JSON body of an answer with `status`.
    #[track_caller]
    pub fn json<T: serde::de::DeserializeOwned>(&self, status: hyper::StatusCode) -> T {
        let text = String::from_utf8_lossy(&self.body);
        assert_eq!(self.status, status, "answer {text}");
        assert_eq!(self.header("content-type"), Some("application/json"));
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// The error of a JSON error answer (`{"error":{"code":…,"message":…}}`) with `status`.
    #[track_caller]
    pub fn error(&self, status: hyper::StatusCode) -> catty::protocol::api::ErrorDetail {
        let body: catty::protocol::api::ErrorBody = self.json(status);
        let text = String::from_utf8_lossy(&self.body);
        assert!(!body.error.code.is_empty(), "{text}");
        assert!(!body.error.message.is_empty(), "{text}");
        body.error
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends `req` on a fresh connection with hyper's client and reads the whole answer.
pub async fn http_send(
    addr: SocketAddr,
    mut req: hyper::Request<http_body_util::Full<bytes::Bytes>>,
) -> HttpReply {
    use http_body_util::BodyExt;
    let host = hyper::header::HeaderValue::from_str(&addr.to_string()).unwrap();
    req.headers_mut().insert("host", host);
    let exchange = async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        let answer = async move {
            let (parts, body) = sender.send_request(req).await?.into_parts();
            let body = body.collect().await?.to_bytes();
            let (status, headers) = (parts.status, parts.headers);
            Ok::<_, hyper::Error>(HttpReply {
                status,
                headers,
                body,
            })
        };
        tokio::pin!(conn, answer);
        // The connection must be driven for the request to progress; it may finish first
        // when the server closes right after answering.
        let reply = tokio::select! {
            reply = &mut answer => reply,
            _ = &mut conn => answer.await,
        };
        reply.unwrap()
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("an answer in time")
}

/// Parses a raw HTTP/1.1 answer with a `content-length` (or ended by the close); `None`
/// until it is complete.
pub fn parse_http_reply(raw: &[u8]) -> Option<HttpReply> {
    use hyper::header::{HeaderName, HeaderValue};
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse::<u16>().ok()?;
    let mut headers = hyper::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        let name = HeaderName::from_bytes(name.trim().as_bytes()).unwrap();
        headers.append(name, HeaderValue::from_str(value.trim()).unwrap());
    }
    let rest = &raw[end + 4..];
    let len = match headers.get("content-length") {
        Some(len) => len.to_str().unwrap().parse().unwrap(),
        None => rest.len(),
    };
    Some(HttpReply {
        status: hyper::StatusCode::from_u16(status).unwrap(),
        headers,
        body: bytes::Bytes::copy_from_slice(rest.get(..len)?),
    })
}
