//! `POST /ttl` to a session's runtime (protocol: "The deadline"), which every provider sends
//! once its own backstop moved: one HTTP/1.1 request on a connection of its own, over TLS
//! when the runtime's URL says so, with the machine's routing headers and the session's token.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;

use crate::net::RuntimeUrl;
use crate::protocol::TTL_PATH;
use crate::protocol::api::{ErrorBody, SetTtl, Ttl};

/// The whole exchange, connection included: a runtime answers at once.
const TTL_TIMEOUT: Duration = Duration::from_secs(20);
/// An answer is a few dozen bytes, an error a line.
const ANSWER_MAX_BYTES: usize = 64 * 1024;

/// Tells the runtime at `base` (its URL) that the session ends `in_sec` seconds from now.
pub(super) async fn set_ttl(
    base: &str,
    headers: &BTreeMap<String, String>,
    token: &str,
    in_sec: u64,
) -> anyhow::Result<Ttl> {
    let runtime = RuntimeUrl::parse(base)?;
    let url = format!("{runtime}{TTL_PATH}");
    let exchange = exchange(&runtime, headers, token, in_sec);
    match tokio::time::timeout(TTL_TIMEOUT, exchange).await {
        Ok(answer) => answer.with_context(|| format!("POST {url}")),
        Err(_) => bail!("POST {url}: no answer within {} s", TTL_TIMEOUT.as_secs()),
    }
}

async fn exchange(
    runtime: &RuntimeUrl,
    headers: &BTreeMap<String, String>,
    token: &str,
    in_sec: u64,
) -> anyhow::Result<Ttl> {
    let stream = crate::net::connect(runtime.authority(), runtime.tls()).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = crate::task::AbortOnDrop(tokio::spawn(conn));
    let body = serde_json::to_vec(&SetTtl { in_sec })?;
    let mut req = Request::post(runtime.target(TTL_PATH))
        .header(HOST, runtime.authority())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        req = req.header(name.as_str(), value.as_str());
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body)))?)
        .await?;
    let status = resp.status();
    let bytes = Limited::new(resp.into_body(), ANSWER_MAX_BYTES)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
        .to_bytes();
    drop(driver);
    if status != StatusCode::OK {
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|e| e.error.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_string());
        bail!("the runtime answered {status}: {message}");
    }
    serde_json::from_slice(&bytes).context("the runtime's answer is not a deadline")
}
