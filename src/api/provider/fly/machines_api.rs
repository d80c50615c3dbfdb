//! The Machines API over HTTP(S) (hyper-rustls, ring, Mozilla's roots): the token's scheme
//! chosen as flyctl does, one call per endpoint, error bodies turned into one line, and
//! backoff on 429 and 5xx (and on network errors for requests that are safe to repeat).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::{api_error, one_line};
use crate::net::TlsRoots;
use crate::protocol::percent;

pub(super) use super::error::FlyError;

/// One request's limit on top of a wait's own timeout: the API answers in well under a second.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Tries of one call before its last error stands: about 30 s of backoff in all.
const ATTEMPTS: u32 = 8;
/// A `Retry-After` longer than this is not honoured as is (the backoff cap applies).
const RETRY_AFTER_MAX: Duration = Duration::from_secs(30);
/// Macaroon tokens take the `FlyV1` scheme (fly-go's `tokens.normalized`).
const MACAROON_PREFIXES: [&str; 3] = ["fm1r_", "fm1a_", "fm2_"];

pub(super) type Http = crate::net::HttpsClient;

/// The `Authorization` value for a token as the user pasted it: any `Bearer`/`FlyV1` scheme
/// stripped, then `FlyV1` for macaroons and `Bearer` for anything else.
pub(super) fn authorization(token: &str) -> String {
    let token = strip_scheme(token);
    match MACAROON_PREFIXES.iter().any(|p| token.starts_with(p)) {
        true => format!("FlyV1 {token}"),
        false => format!("Bearer {token}"),
    }
}

fn strip_scheme(token: &str) -> &str {
    let token = token.trim();
    match token.split_once(' ') {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("flyv1") =>
        {
            strip_scheme(rest)
        }
        _ => token,
    }
}

/// A machine as the API describes it (only what catty reads).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct FlyMachine {
    pub id: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub instance_id: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default)]
    pub config: Option<EchoedConfig>,
    #[serde(default)]
    pub image_ref: Option<ImageRef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct EchoedConfig {
    /// Values are strings; anything else is ignored rather than failing the whole list.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ImageRef {
    #[serde(default)]
    pub registry: String,
    #[serde(default)]
    pub repository: String,
    #[serde(default)]
    pub tag: String,
    #[serde(default)]
    pub digest: String,
}

impl FlyMachine {
    pub(super) fn meta(&self, key: &str) -> Option<&str> {
        let metadata = self.config.as_ref()?.metadata.as_ref()?;
        metadata.get(key)?.as_str()
    }
}

/// The Machines API of one app.
pub(super) struct MachinesApi {
    http: Http,
    /// For probes through an edge, which routes a connection by its first request: never
    /// reuses one.
    probe_http: Http,
    /// `<base>/v1/apps/<app>/machines`.
    machines: String,
    auth: HeaderValue,
}

impl MachinesApi {
    pub(super) fn new(api_base: &str, app: &str, token: &str) -> anyhow::Result<MachinesApi> {
        MachinesApi::with_roots(api_base, app, token, &TlsRoots::webpki())
    }

    /// [`MachinesApi::new`], trusting `roots` over HTTPS.
    pub(super) fn with_roots(
        api_base: &str,
        app: &str,
        token: &str,
        roots: &TlsRoots,
    ) -> anyhow::Result<MachinesApi> {
        let mut auth = HeaderValue::from_str(&authorization(token)).map_err(|_| {
            anyhow::anyhow!("FLY_API_TOKEN holds characters that cannot be sent in a header")
        })?;
        auth.set_sensitive(true);
        Ok(MachinesApi {
            http: http_client(roots, true),
            probe_http: http_client(roots, false),
            machines: format!("{api_base}/v1/apps/{}/machines", percent::encode(app)),
            auth,
        })
    }

    /// `POST /machines`, once: the caller decides whether an error is worth a retry.
    pub(super) async fn create(&self, body: &serde_json::Value) -> Result<FlyMachine, FlyError> {
        let answer = self.once(Method::POST, "", Some(body), REQUEST_TIMEOUT);
        decode(&answer.await.map_err(|(err, _)| err)?)
    }

    /// `GET /machines` with `metadata.<key>=<value>` filters (all must match).
    pub(super) async fn list(&self, filters: &[(&str, &str)]) -> Result<Vec<FlyMachine>, FlyError> {
        let query: Vec<String> = (filters.iter())
            .map(|(k, v)| format!("metadata.{}={}", percent::encode(k), percent::encode(v)))
            .collect();
        let path = match query.is_empty() {
            true => String::new(),
            false => format!("?{}", query.join("&")),
        };
        decode(&self.call(Method::GET, &path, None, REQUEST_TIMEOUT).await?)
    }

    pub(super) async fn get(&self, id: &str) -> Result<FlyMachine, FlyError> {
        let path = format!("/{}", percent::encode(id));
        decode(&self.call(Method::GET, &path, None, REQUEST_TIMEOUT).await?)
    }

    /// `GET /machines/<id>/wait` for one of `states`, at most `timeout_sec` (1–60) on Fly's
    /// side; a 408 means "not yet".
    pub(super) async fn wait(
        &self,
        id: &str,
        states: &[&str],
        instance_id: &str,
        timeout_sec: u64,
    ) -> Result<(), FlyError> {
        let timeout_sec = timeout_sec.clamp(1, 60);
        let mut path = format!("/{}/wait?timeout={timeout_sec}", percent::encode(id));
        for state in states {
            path.push_str(&format!("&state={state}"));
        }
        if !instance_id.is_empty() {
            path.push_str(&format!("&instance_id={}", percent::encode(instance_id)));
        }
        let limit = REQUEST_TIMEOUT + Duration::from_secs(timeout_sec);
        self.call(Method::GET, &path, None, limit).await.map(drop)
    }

    pub(super) async fn stop(&self, id: &str, body: &serde_json::Value) -> Result<(), FlyError> {
        let path = format!("/{}/stop", percent::encode(id));
        let answer = self.call(Method::POST, &path, Some(body), REQUEST_TIMEOUT);
        answer.await.map(drop)
    }

    /// `POST /machines/<id>/metadata/<key>` with `{"value": …}` (reference §2.9): `204`, the
    /// machine's version unchanged. Safe to repeat.
    pub(super) async fn set_metadata(
        &self,
        id: &str,
        key: &str,
        value: &str,
    ) -> Result<(), FlyError> {
        let path = format!("/{}/metadata/{}", percent::encode(id), percent::encode(key));
        let body = serde_json::json!({ "value": value });
        let answer = self.call(Method::POST, &path, Some(&body), REQUEST_TIMEOUT);
        answer.await.map(drop)
    }

    /// `DELETE /machines/<id>?force=true`: a running machine is killed.
    pub(super) async fn delete(&self, id: &str) -> Result<(), FlyError> {
        let path = format!("/{}?force=true", percent::encode(id));
        let answer = self.call(Method::DELETE, &path, None, REQUEST_TIMEOUT);
        answer.await.map(drop)
    }

    /// `GET <url>` (outside the API, e.g. a runtime's `/healthz` through the edge) with
    /// `headers`: its status, if anything answered within `limit`.
    pub(super) async fn probe(
        &self,
        url: &str,
        headers: &BTreeMap<String, String>,
        limit: Duration,
    ) -> Option<StatusCode> {
        Some(self.probe_head(url, headers, limit).await?.0)
    }

    /// Like [`MachinesApi::probe`], with the answer's headers.
    pub(super) async fn probe_head(
        &self,
        url: &str,
        headers: &BTreeMap<String, String>,
        limit: Duration,
    ) -> Option<(StatusCode, hyper::HeaderMap)> {
        let mut req = Request::get(url);
        for (name, value) in headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let req = req.body(Full::new(Bytes::new())).ok()?;
        let resp = tokio::time::timeout(limit, self.probe_http.request(req)).await;
        let resp = resp.ok()?.ok()?;
        Some((resp.status(), resp.headers().clone()))
    }

    /// A request that is safe to repeat: retried with backoff on 429, 5xx and network errors.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        limit: Duration,
    ) -> Result<Bytes, FlyError> {
        let mut backoff = Backoff::new();
        loop {
            let (err, retry_after) = match self.once(method.clone(), path, body, limit).await {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            if !err.is_transient() {
                return Err(err);
            }
            tracing::debug!(%method, path, "fly api: {err}; retrying");
            if !backoff.wait(retry_after).await {
                return Err(err);
            }
        }
    }

    /// One request: the body of a success, or the error and the `Retry-After` it came with.
    async fn once(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        limit: Duration,
    ) -> Result<Bytes, (FlyError, Option<Duration>)> {
        let url = format!("{}{path}", self.machines);
        let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(AUTHORIZATION, self.auth.clone());
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(bytes)).map_err(|e| {
            let err = FlyError::Network(format!("bad request {url}: {e}"));
            (err, None)
        })?;
        let sent = async {
            let resp = self.http.request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts, body))
        };
        let (parts, body) = match tokio::time::timeout(limit, sent).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err((FlyError::Network(error_chain(&*e)), None)),
            Err(_) => {
                let e = format!("no answer from {url} within {} s", limit.as_secs());
                return Err((FlyError::Network(e), None));
            }
        };
        let request_id = parts.headers.get("fly-request-id");
        let request_id = request_id.and_then(|v| v.to_str().ok()).unwrap_or("-");
        tracing::debug!(%method, path, status = parts.status.as_u16(), request_id, "fly api");
        if parts.status.is_success() {
            return Ok(body);
        }
        let retry_after = (parts.headers.get(RETRY_AFTER))
            .and_then(|v| v.to_str().ok()?.trim().parse().ok())
            .map(Duration::from_secs);
        Err((api_error(parts.status, &body), retry_after))
    }
}

/// The one HTTP client (`net::https_client`): pooled or not.
fn http_client(roots: &TlsRoots, pooled: bool) -> Http {
    crate::net::https_client(roots, pooled)
}

/// Waits between tries: doubling from [`BACKOFF_FIRST`] to [`BACKOFF_MAX`], or what the
/// server asked for; false once the tries are spent.
pub(super) struct Backoff {
    next: Duration,
    left: u32,
}

impl Backoff {
    pub(super) fn new() -> Backoff {
        Backoff {
            next: BACKOFF_FIRST,
            left: ATTEMPTS - 1,
        }
    }

    pub(super) async fn wait(&mut self, retry_after: Option<Duration>) -> bool {
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        let pause = retry_after.filter(|d| *d <= RETRY_AFTER_MAX);
        tokio::time::sleep(pause.unwrap_or(self.next)).await;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        true
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FlyError> {
    serde_json::from_slice(body).map_err(|e| {
        FlyError::BadAnswer(format!("{e}: {}", one_line(&String::from_utf8_lossy(body))))
    })
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_get_flyctls_scheme() {
        assert_eq!(authorization("fm2_abc"), "FlyV1 fm2_abc");
        assert_eq!(authorization("fm1r_abc"), "FlyV1 fm1r_abc");
        assert_eq!(authorization("fm1a_abc"), "FlyV1 fm1a_abc");
        // `fly tokens create deploy` prints the scheme and several macaroons.
        assert_eq!(authorization("FlyV1 fm2_a,fm2_b\n"), "FlyV1 fm2_a,fm2_b");
        assert_eq!(authorization("  Bearer fm2_abc "), "FlyV1 fm2_abc");
        assert_eq!(authorization("bearer   personal"), "Bearer personal");
        assert_eq!(authorization("personal-token"), "Bearer personal-token");
        assert_eq!(authorization("Bearer FlyV1 fm2_x"), "FlyV1 fm2_x");
        assert_eq!(authorization("FlyV1 oldstyle"), "Bearer oldstyle");
    }

    #[test]
    fn machines_parse_leniently() {
        let m: FlyMachine = serde_json::from_str(
            r#"{"id":"1857156b526dd8","state":"started","region":"ams","instance_id":"01H",
                "config":{"image":"x","metadata":{"catty_session":"s-1","n":3}},"extra":true}"#,
        )
        .unwrap();
        assert_eq!(m.meta("catty_session"), Some("s-1"));
        assert_eq!(m.meta("n"), None);
        let bare: FlyMachine = serde_json::from_str(r#"{"id":"x"}"#).unwrap();
        assert_eq!(bare.meta("catty_session"), None);
    }

    /// The Machines API over TLS (ring, the given roots): the token's scheme, a list, and a
    /// probe with its forced instance.
    #[tokio::test]
    async fn speaks_https() {
        use crate::net::testing::test_pki;
        use hyper::service::service_fn;

        let (roots, server) = test_pki();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let serve = tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let tls = tokio_rustls::TlsAcceptor::from(server.clone());
                let tls = tls.accept(tcp).await.unwrap();
                let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let header = |name: &str| {
                        let value = req.headers().get(name).map(|v| v.to_str().unwrap());
                        value.unwrap_or_default().to_string()
                    };
                    let body = match req.uri().path() {
                        "/v1/apps/catty-exec/machines" => format!(
                            r#"[{{"id":"m1","config":{{"metadata":{{"auth":"{}"}}}}}}]"#,
                            header("authorization")
                        ),
                        _ => header("fly-force-instance-id"),
                    };
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(
                        body,
                    ))))
                });
                let http = hyper::server::conn::http1::Builder::new();
                let io = hyper_util::rt::TokioIo::new(tls);
                tokio::spawn(http.serve_connection(io, service));
            }
        });
        let base = format!("https://localhost:{port}");
        let api = MachinesApi::with_roots(&base, "catty-exec", "FlyV1 fm2_t", &roots).unwrap();
        let listed = api.list(&[]).await.unwrap();
        assert_eq!(listed[0].meta("auth"), Some("FlyV1 fm2_t"));
        let headers = BTreeMap::from([("fly-force-instance-id".to_string(), "m1".to_string())]);
        let url = crate::net::RuntimeUrl::parse(&base).unwrap().healthz_url();
        let status = api.probe(&url, &headers, Duration::from_secs(5)).await;
        assert_eq!(status, Some(StatusCode::OK));
        // Mozilla's roots do not know the test CA: no answer, a network error.
        let api = MachinesApi::new(&base, "catty-exec", "t").unwrap();
        let err = api.create(&serde_json::json!({})).await.unwrap_err();
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");
        serve.abort();
    }

    #[test]
    fn paths_are_encoded() {
        assert_eq!(percent::encode("s-0a1b"), "s-0a1b");
        assert_eq!(percent::encode("a b/c&d"), "a%20b%2Fc%26d");
        let api = MachinesApi::new("https://api.machines.dev", "catty-exec", "t").unwrap();
        assert_eq!(
            api.machines,
            "https://api.machines.dev/v1/apps/catty-exec/machines"
        );
        assert!(MachinesApi::new("https://x", "a", "bad\ntoken\r\n").is_err());
    }
}
