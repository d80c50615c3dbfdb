//! The WebSocket dial: a URL given whole ([`dial`], for tests and tools) or a runtime's
//! `/connect` built from its parsed base URL ([`dial_runtime`], for the client).

use bytes::Bytes;
use fastwebsockets::{Role, WebSocket};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;

use super::tls::{TlsRoots, connect_with};
use super::url::{RuntimeUrl, split_url};
use crate::protocol::ConnectParams;

/// A WebSocket dialled by [`dial`].
pub type ClientSocket = WebSocket<TokioIo<Upgraded>>;

/// Why a WebSocket could not be opened.
#[derive(Debug)]
pub enum DialError {
    BadUrl(String),
    Connect(std::io::Error),
    Http(hyper::Error),
    /// The server answered, but not with `101 Switching Protocols`.
    Status(u16),
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialError::BadUrl(url) => write!(f, "bad URL {url:?}"),
            DialError::Connect(e) => write!(f, "cannot connect: {e}"),
            DialError::Http(e) => write!(f, "HTTP error: {e}"),
            DialError::Status(code) => write!(f, "the server answered {code} instead of upgrading"),
        }
    }
}

impl std::error::Error for DialError {}

/// Opens a WebSocket to `url` (`ws://host:port/path?query` or `http://…`; `wss://` and
/// `https://` over TLS, checked against [`TlsRoots::webpki`]), sending `headers`.
pub async fn dial(url: &str, headers: &[(&str, &str)]) -> Result<ClientSocket, DialError> {
    dial_with(url, headers, &TlsRoots::webpki()).await
}

/// [`dial`], trusting `roots` for a TLS URL.
pub async fn dial_with(
    url: &str,
    headers: &[(&str, &str)],
    roots: &TlsRoots,
) -> Result<ClientSocket, DialError> {
    let (tls, authority, target) =
        split_url(url).ok_or_else(|| DialError::BadUrl(url.to_string()))?;
    let target = if target.is_empty() { "/" } else { target };
    let dialled = handshake(authority, target, headers, tls.then_some(roots)).await;
    dialled.map_err(|e| e.or_url(url))
}

/// Opens the WebSocket of `runtime`'s `/connect` with `params` as its query, checking a TLS
/// server against [`TlsRoots::webpki`].
pub async fn dial_runtime(
    runtime: &RuntimeUrl,
    params: &ConnectParams,
    headers: &[(&str, &str)],
) -> Result<ClientSocket, DialError> {
    let roots = runtime.tls().then(TlsRoots::webpki);
    let target = runtime.connect_path(params);
    let dialled = handshake(runtime.authority(), &target, headers, roots.as_ref()).await;
    dialled.map_err(|e| e.or_url(&format!("{runtime}{target}")))
}

impl DialError {
    /// A request that could not be built names the URL the caller knows.
    fn or_url(self, url: &str) -> DialError {
        match self {
            DialError::BadUrl(_) => DialError::BadUrl(url.to_string()),
            other => other,
        }
    }
}

/// The upgrade of `GET target` on `authority`, over TLS trusting `tls` when given.
/// The handshake is done here rather than by fastwebsockets, whose helper prints errors to
/// stderr (a raw terminal) and insists on an exact `Connection` header.
async fn handshake(
    authority: &str,
    target: &str,
    headers: &[(&str, &str)],
    tls: Option<&TlsRoots>,
) -> Result<ClientSocket, DialError> {
    let stream = connect_with(authority, tls)
        .await
        .map_err(DialError::Connect)?;
    let mut req = hyper::Request::get(target)
        .header("host", authority)
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header(
            "sec-websocket-key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("sec-websocket-version", "13");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|_| DialError::BadUrl(target.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(DialError::Http)?;
    let conn = conn.with_upgrades();
    let request = sender.send_request(req);
    tokio::pin!(conn, request);
    // The connection future must be polled for the request to make progress; it completes
    // once it hands the socket over to the upgrade (or the server closes it).
    let mut handed_over = false;
    let resp = tokio::select! {
        resp = &mut request => resp,
        done = &mut conn => {
            done.map_err(DialError::Http)?;
            handed_over = true;
            request.await
        }
    }
    .map_err(DialError::Http)?;
    if resp.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        return Err(DialError::Status(resp.status().as_u16()));
    }
    let upgraded = if handed_over {
        hyper::upgrade::on(resp).await
    } else {
        tokio::join!(hyper::upgrade::on(resp), conn).0
    };
    let upgraded = upgraded.map_err(DialError::Http)?;
    Ok(WebSocket::after_handshake(
        TokioIo::new(upgraded),
        Role::Client,
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::net::testing::test_pki;
    use fastwebsockets::{Frame, OpCode};
    use hyper::service::service_fn;
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    /// Accepts one TLS connection and serves a WebSocket that echoes one frame. Resolves to
    /// the negotiated ALPN protocol and the request's `fly-force-instance-id`.
    async fn echo_server(
        server: Arc<rustls::ServerConfig>,
    ) -> (u16, tokio::task::JoinHandle<(Option<Vec<u8>>, String)>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(tls) = TlsAcceptor::from(server).accept(tcp).await else {
                return (None, String::new());
            };
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
            let seen_tx = std::sync::Mutex::new(Some(seen_tx));
            let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                let header = req.headers().get("fly-force-instance-id");
                let header = header.map(|v| v.to_str().unwrap().to_string());
                let _ = seen_tx.lock().unwrap().take().unwrap().send(header);
                let (resp, upgrade) = fastwebsockets::upgrade::upgrade(&mut req).unwrap();
                tokio::spawn(async move {
                    let mut ws = upgrade.await.unwrap();
                    let frame = ws.read_frame().await.unwrap();
                    let echo = Frame::binary(frame.payload.to_vec().into());
                    ws.write_frame(echo).await.unwrap();
                });
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let http = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            let _ = http.await;
            (alpn, seen_rx.await.unwrap().unwrap_or_default())
        });
        (port, task)
    }

    #[tokio::test]
    async fn wss_dial_checks_the_certificate_and_speaks_http1() {
        let (roots, server) = test_pki();
        let (port, seen) = echo_server(server).await;
        let url = format!("wss://localhost:{port}/connect?since=0");
        let headers = [("fly-force-instance-id", "1857156b526dd8")];
        let mut ws = dial_with(&url, &headers, &roots).await.unwrap();
        ws.write_frame(Frame::binary(b"hello".as_slice().into()))
            .await
            .unwrap();
        let frame = ws.read_frame().await.unwrap();
        assert_eq!(
            (frame.opcode, frame.payload.to_vec()),
            (OpCode::Binary, b"hello".to_vec())
        );
        drop(ws);
        let (alpn, instance) = seen.await.unwrap();
        assert_eq!(alpn.as_deref(), Some(b"http/1.1".as_slice()), "never h2");
        assert_eq!(instance, "1857156b526dd8");
    }

    #[tokio::test]
    async fn unsendable_headers_name_the_url() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/connect", listener.local_addr().unwrap());
        let err = dial(&url, &[("x-bad", "a\nb")]).await.err().unwrap();
        assert!(
            matches!(&err, DialError::BadUrl(bad) if *bad == url),
            "{err}"
        );
    }
}
