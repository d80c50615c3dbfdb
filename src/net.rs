//! Shared networking: the accept loop with a graceful drain, client connections over TCP or
//! TLS ([`connect`]: rustls with ring, Mozilla's roots, HTTP/1.1 only), and the WebSocket dial
//! used by the client (and by the tests).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Role, WebSocket};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How long open connections get to finish after shutdown before they are dropped.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Accepts connections until `shutdown` resolves, each served by `handle` in a task owned
/// here; then gives the open ones [`DRAIN_TIMEOUT`] to finish.
pub async fn serve<H, F>(listener: TcpListener, shutdown: impl Future<Output = ()>, handle: H)
where
    H: Fn(TcpStream) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Keystrokes and echoes are tiny: never hold them back for Nagle.
                    let _ = stream.set_nodelay(true);
                    tasks.spawn(handle(stream));
                }
                Err(e) => {
                    // Out of file descriptors, usually: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        tracing::info!(
            open = tasks.len(),
            "dropping connections still open after the drain"
        );
    }
    tasks.shutdown().await;
}

/// The certificates a TLS connection trusts, with the client configurations built on them.
#[derive(Clone)]
pub struct TlsRoots {
    roots: Arc<RootCertStore>,
    /// For our own connections: ALPN offers `http/1.1` only, as a WebSocket upgrade needs it.
    http1: Arc<ClientConfig>,
}

static WEBPKI: LazyLock<TlsRoots> = LazyLock::new(|| {
    let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    TlsRoots::new(roots)
});

impl TlsRoots {
    /// Mozilla's root certificates (the `webpki-roots` crate): what every public endpoint,
    /// Fly.io's included, is checked against.
    pub fn webpki() -> TlsRoots {
        WEBPKI.clone()
    }

    /// Only these certificates (a private CA, or a test's own).
    pub fn from_certs(
        certs: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<TlsRoots, rustls::Error> {
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots.add(cert)?;
        }
        Ok(TlsRoots::new(roots))
    }

    fn new(roots: RootCertStore) -> TlsRoots {
        let roots = Arc::new(roots);
        let mut http1 = client_config(roots.clone());
        http1.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsRoots {
            roots,
            http1: Arc::new(http1),
        }
    }

    /// A rustls client configuration trusting these roots, with ring as its only crypto
    /// provider and no ALPN (for hyper-rustls, which sets ALPN itself).
    pub fn client_config(&self) -> ClientConfig {
        client_config(self.roots.clone())
    }
}

fn client_config(roots: Arc<RootCertStore>) -> ClientConfig {
    // Named explicitly rather than taken from a process default: exactly one provider exists.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A client connection, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Opens a connection to `authority` (`host`, `host:port` or `[v6]:port`; the port defaults to
/// 443 with TLS, else 80). With `tls`, the server is checked against [`TlsRoots::webpki`].
pub async fn connect(authority: &str, tls: bool) -> io::Result<Stream> {
    let roots = tls.then(TlsRoots::webpki);
    connect_with(authority, roots.as_ref()).await
}

/// [`connect`], over TLS trusting `tls` when given.
pub async fn connect_with(authority: &str, tls: Option<&TlsRoots>) -> io::Result<Stream> {
    let (host, port) = split_authority(authority, if tls.is_some() { 443 } else { 80 })?;
    let stream = TcpStream::connect((host, port)).await?;
    // Keystrokes, echoes and last chunks are tiny: never hold them back for Nagle.
    let _ = stream.set_nodelay(true);
    let Some(roots) = tls else {
        return Ok(Stream::Plain(stream));
    };
    let name = ServerName::try_from(host.to_string()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is not a valid TLS server name"),
        )
    })?;
    let tls = TlsConnector::from(roots.http1.clone())
        .connect(name, stream)
        .await?;
    Ok(Stream::Tls(Box::new(tls)))
}

/// The host (without brackets) and port of an authority.
fn split_authority(authority: &str, default_port: u16) -> io::Result<(&str, u16)> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{authority:?} is not HOST[:PORT]"),
        )
    };
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, rest) = v6.split_once(']').ok_or_else(bad)?;
            (host, rest.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(port) => port.parse().map_err(|_| bad())?,
        None => default_port,
    };
    match host.is_empty() {
        true => Err(bad()),
        false => Ok((host, port)),
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Whether a URL's scheme asks for TLS (`wss`, `https`) or not (`ws`, `http`), and the rest of
/// the URL after `://`.
pub fn split_scheme(url: &str) -> Option<(bool, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => Some((false, rest)),
        "wss" | "https" => Some((true, rest)),
        _ => None,
    }
}

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
/// The handshake is done here rather than by fastwebsockets, whose helper prints errors to
/// stderr (a raw terminal) and insists on an exact `Connection` header.
pub async fn dial(url: &str, headers: &[(&str, &str)]) -> Result<ClientSocket, DialError> {
    dial_with(url, headers, &TlsRoots::webpki()).await
}

/// [`dial`], trusting `roots` for a TLS URL.
pub async fn dial_with(
    url: &str,
    headers: &[(&str, &str)],
    roots: &TlsRoots,
) -> Result<ClientSocket, DialError> {
    let (tls, rest) = split_scheme(url).ok_or_else(|| DialError::BadUrl(url.to_string()))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() {
        return Err(DialError::BadUrl(url.to_string()));
    }
    let stream = connect_with(authority, tls.then_some(roots))
        .await
        .map_err(DialError::Connect)?;
    let mut req = hyper::Request::get(if path.is_empty() { "/" } else { path })
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
        .map_err(|_| DialError::BadUrl(url.to_string()))?;
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

/// TLS for tests: a throwaway CA and a server signed by it.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use rustls::pki_types::PrivateKeyDer;

    /// A throwaway CA, and a server configuration for `localhost` signed by it that offers h2
    /// before http/1.1 (as Fly's edge may).
    pub fn test_pki() -> (TlsRoots, Arc<rustls::ServerConfig>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let roots = TlsRoots::from_certs([ca.der().clone()]).unwrap();
        (roots, Arc::new(server))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::test_pki;
    use super::*;
    use fastwebsockets::{Frame, OpCode};
    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    async fn tls_refuses_an_unknown_issuer_and_a_wrong_name() {
        let (roots, server) = test_pki();
        let (port, _) = echo_server(server.clone()).await;
        // Mozilla's roots do not know the test CA.
        let err = connect(&format!("localhost:{port}"), true).await;
        let err = err.err().unwrap().to_string();
        assert!(err.contains("UnknownIssuer"), "{err}");
        // The test CA, but a name the certificate does not carry.
        let (port, _) = echo_server(server).await;
        let err = connect_with(&format!("127.0.0.1:{port}"), Some(&roots)).await;
        let err = err.err().unwrap().to_string();
        assert!(err.contains("not valid for name"), "{err}");
    }

    #[tokio::test]
    async fn plain_connections_stay_plain() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4];
            tcp.read_exact(&mut buf).await.unwrap();
            buf
        });
        let mut stream = connect(&authority, false).await.unwrap();
        assert!(matches!(stream, Stream::Plain(_)));
        stream.write_all(b"ping").await.unwrap();
        assert_eq!(&server.await.unwrap(), b"ping");
    }

    #[test]
    fn urls_and_authorities() {
        assert_eq!(split_scheme("wss://h/x"), Some((true, "h/x")));
        assert_eq!(split_scheme("HTTPS://h"), Some((true, "h")));
        assert_eq!(split_scheme("ws://h:1"), Some((false, "h:1")));
        assert_eq!(split_scheme("http://h"), Some((false, "h")));
        assert_eq!(split_scheme("ftp://h"), None);
        assert_eq!(split_scheme("h:80"), None);
        assert_eq!(
            split_authority("a.fly.dev", 443).unwrap(),
            ("a.fly.dev", 443)
        );
        assert_eq!(split_authority("h:8080", 443).unwrap(), ("h", 8080));
        assert_eq!(split_authority("[::1]:9", 80).unwrap(), ("::1", 9));
        assert_eq!(split_authority("[::1]", 80).unwrap(), ("::1", 80));
        for bad in ["", ":80", "h:x", "[::1", "h:99999"] {
            assert!(split_authority(bad, 80).is_err(), "{bad}");
        }
    }
}
