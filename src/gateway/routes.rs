//! One request through the gateway: `/anthropic/…`, `/openai/…` and `/gemini/…` go to the
//! provider with the rest of the path and the query intact; `/healthz` answers `ok`. In order:
//! the session token (its MAC, then its session live), the provider's keys, the body (read
//! whole, bounded), the quota's hold, then the upstream, whose answer streams back metered.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::Instrument;

use super::Gateway;
use super::answer::Metered;
use super::errors::{Failure, answer, quota_message};
use super::headers;
use super::ledger::{Hold, Refusal};
use super::tab::{Tab, own_request_id};
use super::upstream::{Outgoing, SendError};
use super::usage::Provider;
use crate::net::Proven;
use crate::net::http::{self, Body};
use crate::protocol::api::{GATEWAY_ANTHROPIC_ROUTE, GATEWAY_GEMINI_ROUTE, GATEWAY_OPENAI_ROUTE};

/// The largest request body taken: agents send the whole conversation each turn, images
/// included, and Anthropic's own limit is 32 MB.
pub(super) const BODY_LIMIT_BYTES: usize = 32 * 1024 * 1024;

/// One TCP connection of HTTP/1 requests; `proven` once one of them shows a good token.
pub(super) async fn connection(gateway: Arc<Gateway>, stream: TcpStream, proven: Proven) {
    let service = service_fn(move |req| {
        let (gateway, proven) = (gateway.clone(), proven.clone());
        async move { Ok::<_, Infallible>(route(&gateway, req, &proven).await) }
    });
    let http = http::server().serve_connection(TokioIo::new(stream), service);
    if let Err(e) = http.await {
        tracing::debug!("http connection ended: {e}");
    }
}

async fn route(gateway: &Gateway, req: Request<Incoming>, proven: &Proven) -> Response<Body> {
    let path = req.uri().path();
    if path == "/healthz" {
        return http::text("ok");
    }
    let Some((provider, rest)) = provider_of(path) else {
        let message = "no such route: the gateway serves /anthropic/, /openai/ and /gemini/";
        return http::error(StatusCode::NOT_FOUND, "not_found", message);
    };
    let rest = rest.to_string();
    let span = tracing::info_span!(
        "request",
        provider = name(provider),
        session = tracing::field::Empty
    );
    forward(gateway, provider, rest, req, proven)
        .instrument(span)
        .await
}

/// `/anthropic/v1/messages` → (Anthropic, `/v1/messages`).
fn provider_of(path: &str) -> Option<(Provider, &str)> {
    let (first, rest) = match path.trim_start_matches('/').split_once('/') {
        Some((first, rest)) => (first, &path[path.len() - rest.len() - 1..]),
        None => (path.trim_start_matches('/'), ""),
    };
    // The routes the runtime points each agent at (protocol::api, one home).
    let provider = match first {
        _ if GATEWAY_ANTHROPIC_ROUTE[1..] == *first => Provider::Anthropic,
        _ if GATEWAY_OPENAI_ROUTE[1..] == *first => Provider::OpenAi,
        _ if GATEWAY_GEMINI_ROUTE[1..] == *first => Provider::Gemini,
        _ => return None,
    };
    Some((provider, rest))
}

fn name(provider: Provider) -> &'static str {
    match provider {
        Provider::Anthropic => "anthropic",
        Provider::OpenAi => "openai",
        Provider::Gemini => "gemini",
    }
}

async fn forward(
    gateway: &Gateway,
    provider: Provider,
    rest: String,
    req: Request<Incoming>,
    proven: &Proven,
) -> Response<Body> {
    let (session, owner) = match authenticate(gateway, provider, &req).await {
        Ok(found) => found,
        Err((failure, message)) => return answer(provider, failure, &message),
    };
    proven.set();
    if !gateway.upstream(provider).has_keys() {
        let message = format!("catty: this gateway has no {} key", name(provider));
        return answer(provider, Failure::NoKeys, &message);
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(body, gateway.idle).await {
        Ok(body) => body,
        Err(failure) => {
            let message = "catty: the request body is too large or stalled";
            return answer(provider, failure, message);
        }
    };
    let model = model_of(provider, &rest, &body);
    let hold = match hold(
        gateway,
        provider,
        (&owner, &session),
        model.as_deref(),
        &body,
    )
    .await
    {
        Ok(hold) => hold,
        Err((failure, message)) => return answer(provider, failure, &message),
    };
    let tab = Tab::open(hold, provider, model, body.len(), gateway.settle.clone());
    let out = Outgoing {
        path: upstream_path(provider, rest, parts.uri.query()),
        method: parts.method,
        headers: headers::for_upstream(&parts.headers),
        body,
    };
    relay(gateway, provider, out, tab).await
}

/// Why the gateway answers by itself, and what it says.
type Refused = (Failure, String);

/// The session the request's token names, and its owner, when it is live; else a 401 (or a
/// 503 when the database cannot say).
async fn authenticate<B>(
    gateway: &Gateway,
    provider: Provider,
    req: &Request<B>,
) -> Result<(String, String), Refused> {
    let fail = |failure, message: &str| Err((failure, message.to_string()));
    let token = headers::session_token(provider, req.headers(), req.uri().query());
    let Some(session) = token.as_deref().and_then(|t| gateway.key.verify(t)) else {
        return fail(
            Failure::Unauthenticated,
            "catty: not a session token of this gateway",
        );
    };
    tracing::Span::current().record("session", session);
    match gateway.sessions.live_owner(session).await {
        Ok(Some(owner)) => Ok((session.to_string(), owner)),
        Ok(None) => fail(Failure::Unauthenticated, "catty: this session has ended"),
        Err(e) => {
            tracing::warn!("{e:#}");
            fail(
                Failure::Unavailable,
                "catty: the gateway cannot check sessions now",
            )
        }
    }
}

/// The request's estimate held against `owner`'s quota; else a 402 (or a 503).
async fn hold(
    gateway: &Gateway,
    provider: Provider,
    (owner, session): (&str, &str),
    model: Option<&str>,
    body: &[u8],
) -> Result<Hold, Refused> {
    match gateway.hold(provider, owner, session, model, body).await {
        Ok(Ok(hold)) => Ok(hold),
        Ok(Err(Refusal::OverQuota { used, limit, paid })) => {
            tracing::info!(used, limit, paid, "over quota");
            // Already on the paid plan, there is nothing to upgrade to.
            let link = (!paid).then(|| gateway.upgrade_link(owner));
            Err((
                Failure::OverQuota,
                quota_message(used, limit, link.as_ref().map(Option::as_deref)),
            ))
        }
        Err(e) => {
            tracing::warn!("cannot hold the quota: {e:#}");
            let message = "catty: the gateway cannot reach the quota now";
            Err((Failure::Unavailable, message.to_string()))
        }
    }
}

/// The path and query the upstream gets: Gemini's `key=` parameter is the session token.
fn upstream_path(provider: Provider, rest: String, query: Option<&str>) -> String {
    match query {
        Some(query) if provider == Provider::Gemini => match headers::without_key(query) {
            kept if kept.is_empty() => rest,
            kept => format!("{rest}?{kept}"),
        },
        Some(query) => format!("{rest}?{query}"),
        None => rest,
    }
}

/// Sends `out` upstream and turns its answer into the client's, metered on `tab`.
async fn relay(
    gateway: &Gateway,
    provider: Provider,
    out: Outgoing,
    mut tab: Tab,
) -> Response<Body> {
    let upstream = gateway.upstream(provider);
    let resp = match gateway.upstreams.send(upstream, &out, gateway.idle).await {
        Ok(resp) => resp,
        Err(SendError::Idle) => {
            tracing::info!("the upstream sent no answer within the idle timeout");
            return answer(
                provider,
                Failure::Timeout,
                "catty: the provider did not answer in time",
            );
        }
        Err(SendError::Unreachable(e)) => {
            tracing::warn!("the upstream cannot be reached: {e}");
            return answer(
                provider,
                Failure::Unreachable,
                "catty: the provider cannot be reached",
            );
        }
    };
    let (mut parts, body) = resp.into_parts();
    let request_id = ["request-id", "x-request-id"]
        .iter()
        .find_map(|h| parts.headers.get(*h)?.to_str().ok())
        .map_or_else(own_request_id, str::to_string);
    let streamed = (parts.headers.get(CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    tracing::debug!(
        status = parts.status.as_u16(),
        request_id,
        "upstream answered"
    );
    tab.answered(request_id, parts.status.is_success(), streamed);
    parts.headers = headers::for_client(&parts.headers);
    let body = Metered::new(body, tab, gateway.idle).boxed_unsync();
    Response::from_parts(parts, body)
}

/// The request body, whole: at most [`BODY_LIMIT_BYTES`], and no silence longer than `idle`.
async fn read_body(mut body: Incoming, idle: std::time::Duration) -> Result<Bytes, Failure> {
    if body.size_hint().lower() > BODY_LIMIT_BYTES as u64 {
        return Err(Failure::TooLarge);
    }
    let mut whole = Vec::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) | Ok(Some(Err(_))) => return Err(Failure::ClientTimeout),
            Ok(None) => return Ok(Bytes::from(whole)),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            if whole.len() + data.len() > BODY_LIMIT_BYTES {
                return Err(Failure::TooLarge);
            }
            whole.extend_from_slice(data);
        }
    }
}

/// The model asked for: the body's `model` (Anthropic, OpenAI), or Gemini's path
/// (`/v1beta/models/<model>:streamGenerateContent`).
fn model_of(provider: Provider, path: &str, body: &[u8]) -> Option<String> {
    if provider == Provider::Gemini {
        let after = path.split_once("/models/")?.1;
        return Some(after.split([':', '/']).next()?.to_string());
    }
    #[derive(serde::Deserialize)]
    struct Model {
        model: Option<String>,
    }
    serde_json::from_slice::<Model>(body).ok()?.model
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_keep_the_rest_of_the_path() {
        let route = |p| provider_of(p).map(|(p, rest)| (name(p), rest));
        assert_eq!(
            route("/anthropic/v1/messages"),
            Some(("anthropic", "/v1/messages"))
        );
        assert_eq!(
            route("/openai/v1/responses"),
            Some(("openai", "/v1/responses"))
        );
        assert_eq!(route("/gemini"), Some(("gemini", "")));
        assert_eq!(route("/other/v1"), None);
        assert_eq!(route("/anthropicx/v1"), None);
    }

    #[test]
    fn the_model_from_the_body_or_geminis_path() {
        let body = br#"{"max_tokens":10,"model":"claude-sonnet-4-5","messages":[]}"#;
        assert_eq!(
            model_of(Provider::Anthropic, "/v1/messages", body).as_deref(),
            Some("claude-sonnet-4-5")
        );
        assert_eq!(
            model_of(Provider::OpenAi, "/v1/responses", b"not json"),
            None
        );
        let path = "/v1beta/models/gemini-2.5-pro:streamGenerateContent";
        assert_eq!(
            model_of(Provider::Gemini, path, b"{}").as_deref(),
            Some("gemini-2.5-pro")
        );
    }
}
