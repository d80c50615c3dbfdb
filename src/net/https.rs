//! The one outbound HTTP client of the servers (Fly's Machines API, the identity provider,
//! Stripe): hyper's over HTTP/1.1, TLS with ring-only rustls, plain HTTP too (a local API or a
//! test's fake).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode};
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

/// Why [`exchange`] got no answer.
#[derive(Debug)]
pub enum ExchangeError {
    /// The connection, the request or the body failed (or the body passed its limit).
    Failed(String),
    /// Nothing whole came within the deadline.
    TimedOut,
}

/// Sends `req` and reads the whole answer, its body at most `limit` bytes, all within
/// `deadline`: the status and the body.
pub async fn exchange(
    client: &HttpsClient,
    req: Request<Full<Bytes>>,
    limit: usize,
    deadline: Duration,
) -> Result<(StatusCode, Bytes), ExchangeError> {
    let whole = async {
        let resp = client.request(req).await?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, limit).collect().await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts.status, body.to_bytes()))
    };
    match tokio::time::timeout(deadline, whole).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(ExchangeError::Failed(e.to_string())),
        Err(_) => Err(ExchangeError::TimedOut),
    }
}
