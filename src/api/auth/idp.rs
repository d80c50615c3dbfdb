//! The identity provider, as the login broker calls it: OpenID Connect discovery, RFC 8628's
//! device authorization and token poll, and the JWKS its ID tokens are signed with. Over the
//! same hyper + ring-only rustls client as the Fly provider; every answer's body is bounded
//! and every call has a deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use super::id_token::Jwks;
use crate::config::OidcConfig;
use crate::net::{ExchangeError, HttpsClient, TlsRoots, exchange, https_client};
use crate::protocol::api::{DEFAULT_POLL_INTERVAL, DeviceAuthorization, DeviceError};
use crate::protocol::percent;

/// An answer of the provider is a few KiB (a JWKS with a few keys, three tokens); more is not
/// an identity provider.
const BODY_LIMIT_BYTES: usize = 256 * 1024;
/// One call's deadline.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long discovery and keys are kept. Keys are fetched again sooner for a token signed by a
/// key not known yet (a rotation), at most once per [`KEYS_REFRESH_MIN`].
const CACHE_FOR: Duration = Duration::from_secs(3600);
const KEYS_REFRESH_MIN: Duration = Duration::from_secs(30);
/// The scopes asked for: the identity and its email.
const SCOPE: &str = "openid email";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The endpoints discovery names (`<issuer>/.well-known/openid-configuration`).
#[derive(Debug, Deserialize)]
pub(super) struct Discovery {
    pub issuer: String,
    pub device_authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

/// A token poll's outcome.
pub(super) enum Poll {
    /// Approved: the ID token (the other tokens are dropped here, unread).
    Approved { id_token: String },
    /// RFC 8628's `400 {"error":…}`.
    NotYet(DeviceError),
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
}

/// The provider of one issuer and client.
pub(super) struct Idp {
    http: HttpsClient,
    pub config: OidcConfig,
    discovery: Mutex<Option<(Instant, Arc<Discovery>)>>,
    keys: Mutex<Option<(Instant, Arc<Jwks>)>>,
}

impl Idp {
    pub(super) fn new(config: OidcConfig) -> Idp {
        Idp {
            // A connection per call: logins are rare, and a pooled connection the provider
            // closed meanwhile (an idle timeout) would fail the next login's first call.
            http: https_client(&TlsRoots::webpki(), false),
            config,
            discovery: Mutex::new(None),
            keys: Mutex::new(None),
        }
    }

    /// The provider's endpoints, fetched at most once an hour.
    pub(super) async fn discovery(&self) -> anyhow::Result<Arc<Discovery>> {
        let mut cached = self.discovery.lock().await;
        if let Some((at, found)) = cached.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return Ok(found.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer);
        let (status, body) = self.call(Method::GET, &url, None).await?;
        if status != StatusCode::OK {
            anyhow::bail!("{url} answered {status}");
        }
        let found: Discovery = decode(&url, &body)?;
        if found.issuer.trim_end_matches('/') != self.config.issuer {
            anyhow::bail!(
                "{url} names the issuer {:?}, not CATTY_OIDC_ISSUER {:?}",
                found.issuer,
                self.config.issuer
            );
        }
        let found = Arc::new(found);
        *cached = Some((Instant::now(), found.clone()));
        Ok(found)
    }

    /// The issuer's signing keys; fetched again when `stale` (a token named a key they lack)
    /// and the last fetch is old enough.
    pub(super) async fn keys(&self, stale: bool) -> anyhow::Result<Arc<Jwks>> {
        let mut cached = self.keys.lock().await;
        if let Some((at, keys)) = cached.as_ref() {
            let fresh = at.elapsed() < CACHE_FOR && !(stale && at.elapsed() >= KEYS_REFRESH_MIN);
            if fresh {
                return Ok(keys.clone());
            }
        }
        let url = self.discovery().await?.jwks_uri.clone();
        let (status, body) = self.call(Method::GET, &url, None).await?;
        if status != StatusCode::OK {
            anyhow::bail!("{url} answered {status}");
        }
        let keys = Arc::new(decode::<Jwks>(&url, &body)?);
        *cached = Some((Instant::now(), keys.clone()));
        Ok(keys)
    }

    /// RFC 8628 §3.1: a device code and a user code for a new login.
    pub(super) async fn device_authorization(&self) -> anyhow::Result<DeviceAuthorization> {
        #[derive(Deserialize)]
        struct Answer {
            device_code: String,
            user_code: String,
            verification_uri: String,
            verification_uri_complete: Option<String>,
            expires_in: u64,
            interval: Option<u64>,
        }
        let url = self
            .discovery()
            .await?
            .device_authorization_endpoint
            .clone();
        let form = form(&[("client_id", &self.config.client_id), ("scope", SCOPE)]);
        let (status, body) = self.call(Method::POST, &url, Some(form)).await?;
        if status != StatusCode::OK {
            anyhow::bail!("{url} answered {status}: {}", snippet(&body));
        }
        let a: Answer = decode(&url, &body)?;
        Ok(DeviceAuthorization {
            device_code: a.device_code,
            user_code: a.user_code,
            verification_uri: a.verification_uri,
            verification_uri_complete: a.verification_uri_complete,
            expires_in: a.expires_in,
            interval: a.interval.unwrap_or(DEFAULT_POLL_INTERVAL.as_secs()).max(1),
        })
    }

    /// RFC 8628 §3.4: one poll of the token endpoint.
    pub(super) async fn poll(&self, device_code: &str) -> anyhow::Result<Poll> {
        let url = self.discovery().await?.token_endpoint.clone();
        let form = form(&[
            ("grant_type", DEVICE_GRANT),
            ("device_code", device_code),
            ("client_id", &self.config.client_id),
        ]);
        let (status, body) = self.call(Method::POST, &url, Some(form)).await?;
        match status {
            StatusCode::OK => match decode::<TokenAnswer>(&url, &body)?.id_token {
                Some(id_token) => Ok(Poll::Approved { id_token }),
                None => anyhow::bail!("{url} gave no ID token (is the openid scope allowed?)"),
            },
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => {
                Ok(Poll::NotYet(decode::<DeviceError>(&url, &body)?))
            }
            _ => anyhow::bail!("{url} answered {status}: {}", snippet(&body)),
        }
    }

    /// One request: the status and the body (at most [`BODY_LIMIT_BYTES`]).
    async fn call(
        &self,
        method: Method,
        url: &str,
        form: Option<String>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut req = Request::builder()
            .method(method)
            .uri(url)
            .header(ACCEPT, "application/json");
        if form.is_some() {
            req = req.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let req = req.body(Full::new(Bytes::from(form.unwrap_or_default())))?;
        match exchange(&self.http, req, BODY_LIMIT_BYTES, CALL_TIMEOUT).await {
            Ok(answer) => Ok(answer),
            Err(ExchangeError::Failed(e)) => anyhow::bail!("{url}: {e}"),
            Err(ExchangeError::TimedOut) => {
                anyhow::bail!("{url} did not answer within {} s", CALL_TIMEOUT.as_secs())
            }
        }
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = (pairs.iter())
        .map(|(k, v)| format!("{}={}", percent::encode(k), percent::encode(v)))
        .collect();
    pairs.join("&")
}

fn decode<T: DeserializeOwned>(url: &str, body: &[u8]) -> anyhow::Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        anyhow::anyhow!(
            "{url} answered what is not expected ({e}): {}",
            snippet(body)
        )
    })
}

/// The start of an answer, for a message.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
