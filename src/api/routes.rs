//! The daemon's HTTP surface. Every request first passes the browser checks (a loopback
//! `Host`, no `Origin`: DNS rebinding and cross-site requests get 403), then the bearer token
//! (401), except `GET /healthz`. The hosted API instead takes a user's token (401), except
//! `/healthz` and the login's public steps (`auth/`). Errors become JSON in
//! [`error_response`] only.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HOST, ORIGIN};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use super::auth::{self, Login};
use super::billing::{self, Billing};
use super::daemon::{Auth, Daemon};
use super::db::Db;
use super::db::accounts::User;
use super::error::ApiError;
use super::provider::Provider;
use crate::config::Allowances;
use crate::net::Proven;
use crate::net::http::{self, Body};
use crate::protocol::HEALTHZ_PATH;
use crate::protocol::api::{
    AUTH_DEVICE_PATH, AUTH_LOGOUT_PATH, AUTH_TOKEN_PATH, AUTH_WHOAMI_PATH, BILLING_CANCEL_PATH,
    BILLING_CHECKOUT_PATH, BILLING_SUCCESS_PATH, BILLING_WEBHOOK_PATH, DAEMON_GATEWAY_HEADER,
    DAEMON_PID_HEADER, DAEMON_PROVIDER_HEADER, DAEMON_VERSION_HEADER, USAGE_PATH,
};
use crate::upgrade_link::UPGRADE_PATH;

/// Request bodies are a few hundred bytes plus the agent's credentials: at most two of
/// `CREDENTIAL_LIMIT_BYTES` (64 KiB) each, which JSON can make six times longer (a control
/// character is written `\u0000`), so 768 KiB; 1 MiB leaves room for the rest and still
/// turns away anything that is not a session request.
const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// One TCP connection of HTTP/1 requests; `proven` once one of them shows a good token.
pub(super) async fn connection<P: Provider>(
    daemon: Arc<Daemon<P>>,
    stream: TcpStream,
    proven: Proven,
) {
    let service = service_fn(move |req| {
        let (daemon, proven) = (daemon.clone(), proven.clone());
        async move { Ok::<_, Infallible>(route(&daemon, req, &proven).await) }
    });
    let http = http::server().serve_connection(TokioIo::new(stream), service);
    if let Err(e) = http.await {
        tracing::debug!("http connection ended: {e}");
    }
}

pub(super) async fn route<P: Provider>(
    daemon: &Daemon<P>,
    req: Request<Incoming>,
    proven: &Proven,
) -> Response<Body> {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let resp = answer(daemon, req, proven).await;
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
    resp
}

async fn answer<P: Provider>(
    daemon: &Daemon<P>,
    req: Request<Incoming>,
    proven: &Proven,
) -> Response<Body> {
    let answer = match &daemon.auth {
        Auth::Local(token) => match check_browser(&req) {
            Err(e) => Err(e),
            Ok(()) if req.uri().path() == HEALTHZ_PATH => healthz(daemon, &req),
            Ok(()) if !http::bearer_matches(&req, token) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token (it is in the state directory's api.token)",
            )),
            Ok(()) => {
                proven.set();
                dispatch(daemon, None, req).await
            }
        },
        Auth::Hosted {
            db,
            login,
            billing,
            allowances,
        } => {
            let (login, billing) = (login.as_deref(), billing.as_deref());
            hosted(daemon, db, (login, billing, allowances), req, proven).await
        }
    };
    answer.unwrap_or_else(|e| {
        if e.status.is_server_error() {
            tracing::warn!("{}: {}", e.code, e.message);
        }
        error_response(e)
    })
}

/// The hosted API: `/healthz`, the login's first two steps and billing's Stripe and browser
/// routes are public; the rest needs a user's token.
async fn hosted<P: Provider>(
    daemon: &Daemon<P>,
    db: &Db,
    (login, billing, allowances): (Option<&Login>, Option<&Billing>, &Allowances),
    req: Request<Incoming>,
    proven: &Proven,
) -> Result<Response<Body>, ApiError> {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    match (&method, path.as_str()) {
        (_, HEALTHZ_PATH) => return healthz(daemon, &req),
        (&Method::POST, BILLING_WEBHOOK_PATH) => {
            let billing = billing::configured(billing)?;
            let (parts, body) = req.into_parts();
            let body = read_body(body, billing::WEBHOOK_LIMIT_BYTES).await?;
            return billing::webhook(billing, db, &parts.headers, &body).await;
        }
        (&Method::GET, UPGRADE_PATH) => {
            return billing::upgrade(billing, db, req.uri().query()).await;
        }
        (&Method::GET, BILLING_SUCCESS_PATH) => {
            return billing::configured(billing).map(|_| billing::succeeded());
        }
        (&Method::GET, BILLING_CANCEL_PATH) => {
            return billing::configured(billing).map(|_| billing::cancelled());
        }
        (_, BILLING_WEBHOOK_PATH | UPGRADE_PATH | BILLING_SUCCESS_PATH | BILLING_CANCEL_PATH) => {
            return Err(not_allowed(&req));
        }
        (&Method::POST, AUTH_DEVICE_PATH) => return auth::device(db, login).await,
        (&Method::POST, AUTH_TOKEN_PATH) => {
            return auth::token(db, login, read_json(req).await?).await;
        }
        (_, AUTH_DEVICE_PATH | AUTH_TOKEN_PATH) => return Err(not_allowed(&req)),
        _ => {}
    }
    let user = user(db, &req).await?;
    proven.set();
    match (&method, path.as_str()) {
        (&Method::POST, AUTH_LOGOUT_PATH) => {
            let token = http::bearer(&req).unwrap_or_default().to_string();
            auth::logout(db, &user, &token, read_json(req).await?).await
        }
        (&Method::GET, AUTH_WHOAMI_PATH) => Ok(auth::whoami(&user)),
        (&Method::POST, BILLING_CHECKOUT_PATH) => billing::checkout(billing, db, &user).await,
        (&Method::GET, USAGE_PATH) => {
            let report = db.usage_report(&user.id, allowances).await;
            ok(report.map_err(ApiError::unavailable)?)
        }
        (_, AUTH_LOGOUT_PATH | AUTH_WHOAMI_PATH | BILLING_CHECKOUT_PATH | USAGE_PATH) => {
            Err(not_allowed(&req))
        }
        _ => dispatch(daemon, Some(&user.id), req).await,
    }
}

/// The user whose token the request carries (the hosted API).
async fn user<B>(db: &Db, req: &Request<B>) -> Result<User, ApiError> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "not logged in, or the login expired or was revoked: run catty login",
        )
    };
    let token = http::bearer(req).ok_or_else(unauthorized)?;
    match db.user_for_token(token).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(unauthorized()),
        Err(e) => Err(ApiError::unavailable(e)),
    }
}

/// The one place errors become JSON.
fn error_response(e: ApiError) -> Response<Body> {
    http::error(e.status, e.code, e.message)
}

fn ok<T: Serialize>(value: T) -> Result<Response<Body>, ApiError> {
    Ok(http::json(StatusCode::OK, &value))
}

/// `200 ok` with who answers: this build, its provider and its pid, and whether it has a
/// gateway (protocol::api).
fn healthz<P: Provider>(
    daemon: &Daemon<P>,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    match *req.method() {
        Method::GET => {
            let mut resp = http::text("ok");
            let pid = std::process::id().to_string();
            let gateway = daemon.gateway.as_ref().map(|_| "on");
            let said = [
                (DAEMON_VERSION_HEADER, Some(crate::version::this_build())),
                (DAEMON_PROVIDER_HEADER, Some(P::NAME)),
                (DAEMON_PID_HEADER, Some(pid.as_str())),
                (DAEMON_GATEWAY_HEADER, gateway),
            ];
            let said = said.into_iter().filter_map(|(k, v)| Some((k, v?)));
            for (name, value) in said {
                if let Ok(value) = hyper::header::HeaderValue::from_str(value) {
                    resp.headers_mut().insert(name, value);
                }
            }
            Ok(resp)
        }
        _ => Err(not_allowed(req)),
    }
}

/// `owner`: the user the request's token belongs to (hosted), `None` for the local daemon.
async fn dispatch<P: Provider>(
    daemon: &Daemon<P>,
    owner: Option<&str>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method(), segments.as_slice()) {
        (&Method::GET, ["v1", "sessions"]) => ok(daemon.list(owner).await?),
        (&Method::POST, ["v1", "sessions"]) => {
            ok(daemon.create(owner, read_json(req).await?).await?)
        }
        (&Method::POST, ["v1", "sessions", "stop-all"]) => ok(daemon.stop_all(owner).await?),
        (&Method::GET, ["v1", "sessions", key]) => ok(daemon.get(owner, key).await?),
        (&Method::POST, ["v1", "sessions", key, "stop"]) => ok(daemon.stop(owner, key).await?),
        (&Method::POST, ["v1", "sessions", key, "extend"]) => {
            let key = key.to_string();
            ok(daemon.extend(owner, &key, read_json(req).await?).await?)
        }
        (&Method::DELETE, ["v1", "sessions", key]) => ok(daemon.forget(owner, key).await?),
        // The hosted API answered it already: nothing is metered here.
        (_, ["v1", "usage"]) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_metered",
            "usage is metered by a hosted API only (catty login)",
        )),
        (
            _,
            ["v1", "sessions"] | ["v1", "sessions", _] | ["v1", "sessions", _, "stop" | "extend"],
        ) => Err(not_allowed(&req)),
        _ => Err(ApiError::not_found(format!("no such endpoint: {path}"))),
    }
}

fn not_allowed<B>(req: &Request<B>) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

async fn read_json<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, ApiError> {
    let bytes = read_body(req.into_body(), BODY_LIMIT_BYTES).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not a valid request: {e}")))
}

/// The whole body, at most `limit` bytes (else `413`).
async fn read_body(body: Incoming, limit: usize) -> Result<bytes::Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than {limit} bytes"),
        )),
        Err(e) => Err(ApiError::bad_request(format!("cannot read the body: {e}"))),
    }
}

/// 403 unless the request names a loopback host and comes from no web page. A browser
/// tricked into talking to us (DNS rebinding) sends its own `Host`; a page's script sends
/// `Origin`. Neither may create or stop sessions, or even learn they exist.
fn check_browser<B>(req: &Request<B>) -> Result<(), ApiError> {
    let forbidden = |message: &str| ApiError::new(StatusCode::FORBIDDEN, "forbidden", message);
    if req.headers().contains_key(ORIGIN) {
        return Err(forbidden(
            "requests from web pages (with an Origin header) are refused",
        ));
    }
    let mut hosts = req.headers().get_all(HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(host), None) => host.to_str().unwrap_or(""),
        _ => return Err(forbidden("exactly one Host header is required")),
    };
    let authority_ok = req
        .uri()
        .authority()
        .is_none_or(|a| is_loopback_host(a.as_str()));
    if !is_loopback_host(host) || !authority_ok {
        return Err(forbidden("the Host must be 127.0.0.1, localhost or [::1]"));
    }
    Ok(())
}

/// `127.0.0.1`, `localhost` or `[::1]`, each with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let (name, rest) = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((name, rest)) => (name, rest),
            None => return false,
        },
        None => host.split_at(host.find(':').unwrap_or(host.len())),
    };
    let port_ok = rest.is_empty()
        || rest
            .strip_prefix(':')
            .is_some_and(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    let loopback = name == "127.0.0.1"
        || name.eq_ignore_ascii_case("localhost")
        || (name == "::1" && host.starts_with('['));
    port_ok && loopback
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Agent;
    use crate::protocol::api::CREDENTIAL_LIMIT_BYTES;

    #[test]
    fn the_body_limit_holds_the_largest_credentials_escaped() {
        let most = Agent::ALL
            .map(|a| a.credential_vars().len())
            .into_iter()
            .max();
        let worst = most.unwrap() * 6 * CREDENTIAL_LIMIT_BYTES;
        assert!(worst + 64 * 1024 <= BODY_LIMIT_BYTES, "{worst}");
    }

    #[test]
    fn loopback_hosts() {
        for good in [
            "127.0.0.1",
            "127.0.0.1:4815",
            "localhost",
            "LOCALHOST:80",
            "[::1]",
            "[::1]:4815",
        ] {
            assert!(is_loopback_host(good), "{good}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:4815",
            "127.0.0.2",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "::1",
            "[::1]x",
            "127.0.0.1:",
            "127.0.0.1:99999x",
            "[::2]:80",
            "localhost:80:80",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    fn request(headers: &[(&str, &str)]) -> Request<()> {
        let mut req = Request::get("/v1/sessions");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap()
    }

    #[test]
    fn browser_checks() {
        let local = request(&[("host", "127.0.0.1:4815"), ("authorization", "Bearer abc")]);
        assert!(check_browser(&local).is_ok());
        let origin = request(&[("host", "localhost"), ("origin", "http://localhost:3000")]);
        assert_eq!(
            check_browser(&origin).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert!(check_browser(&request(&[])).is_err(), "no Host");
        let two = request(&[("host", "localhost"), ("host", "evil.example")]);
        assert!(check_browser(&two).is_err());
    }
}
