//! The one outbound HTTP client of the servers (Fly's Machines API, the identity provider,
//! Stripe): hyper's over HTTP/1.1, TLS with ring-only rustls, plain HTTP too (a local API or a
//! test's fake).

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::TlsRoots;

/// A client sending complete bodies.
pub type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client checking certificates against `roots`; `pooled: false` opens a connection per
/// request (for rare calls, where a kept connection the server closed meanwhile would fail
/// the next one).
pub fn https_client(roots: &TlsRoots, pooled: bool) -> HttpsClient {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(roots.client_config())
        .https_or_http()
        .enable_http1()
        .build();
    let mut builder = Client::builder(TokioExecutor::new());
    if !pooled {
        builder.pool_max_idle_per_host(0);
    }
    builder.build(connector)
}
