//! Client connections over TCP or TLS ([`connect`]: rustls with ring, Mozilla's roots or given
//! ones, HTTP/1.1 only), and the throwaway PKI the tests use.

use std::io;
use std::sync::{Arc, LazyLock};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

/// A client connection: plain TCP (`Left`) or TLS over it (`Right`, boxed, as a TLS session is
/// large). `Either` forwards every read and write call, vectored writes included.
pub type Stream = Either<TcpStream, Box<TlsStream<TcpStream>>>;

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
        return Ok(Either::Left(stream));
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
    Ok(Either::Right(Box::new(tls)))
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

/// TLS for tests: a throwaway CA and a server signed by it.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use rustls::pki_types::PrivateKeyDer;

    /// A throwaway CA, and a server configuration for `localhost` signed by it that offers h2
    /// before http/1.1 (as Fly's edge may).
    pub(crate) fn test_pki() -> (TlsRoots, Arc<rustls::ServerConfig>) {
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Accepts one connection and attempts the TLS handshake as `server`.
    async fn tls_server(server: Arc<rustls::ServerConfig>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = tokio_rustls::TlsAcceptor::from(server).accept(tcp).await;
        });
        port
    }

    #[tokio::test]
    async fn tls_refuses_an_unknown_issuer_and_a_wrong_name() {
        let (roots, server) = test_pki();
        // Mozilla's roots do not know the test CA.
        let port = tls_server(server.clone()).await;
        let err = connect(&format!("localhost:{port}"), true).await;
        let err = err.err().unwrap().to_string();
        assert!(err.contains("UnknownIssuer"), "{err}");
        // The test CA, but a name the certificate does not carry.
        let port = tls_server(server).await;
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
        assert!(matches!(stream, Either::Left(_)));
        stream.write_all(b"ping").await.unwrap();
        assert_eq!(&server.await.unwrap(), b"ping");
    }

    /// Large frames go out as one `writev` (header and payload): the wrapper must pass
    /// vectored writes through for both kinds of connection, as the hand-written one did.
    #[tokio::test]
    async fn both_kinds_write_vectored() {
        use tokio::io::AsyncWrite;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let plain = connect(&authority, false).await.unwrap();
        assert!(plain.is_write_vectored());
        let (roots, server) = test_pki();
        let port = tls_server(server).await;
        let tls = connect_with(&format!("localhost:{port}"), Some(&roots)).await;
        let tls = tls.unwrap();
        assert!(matches!(tls, Either::Right(_)) && tls.is_write_vectored());
    }

    #[test]
    fn authorities() {
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
