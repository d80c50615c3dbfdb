//! The fake Machines API server: HTTP/1.1 on a loopback port, every request recorded, then,
//! in this order, a provider key in the body (400, `guard.rs`), the path (404), the token (401, reference §1), injected faults, the rate
//! limits (429, optional), the app (404), and the endpoint.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::faults::{Canned, Endpoint};
use super::wire::{Body, Reply, parse_query, ulid};
use super::{RecordedRequest, Shared, actions, guard, handlers};

/// Request bodies past this are refused; a create body is a few KiB.
const BODY_LIMIT_BYTES: usize = 1 << 20;

/// One parsed API request.
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body as JSON, when it parses.
    pub json: Option<Value>,
}

impl Req {
    /// The lease nonce header (reference §2.5, §2.8).
    pub fn nonce(&self) -> Option<&str> {
        self.headers
            .get("fly-machine-lease-nonce")
            .and_then(|v| v.to_str().ok())
    }
}

/// The endpoints of reference §2 (and `GET /v1/apps/{app}`).
pub enum Route {
    App,
    List,
    Create,
    Get(String),
    Update(String),
    Delete(String),
    Wait(String),
    Stop(String),
    Start(String),
    LeaseAcquire(String),
    LeaseGet(String),
    LeaseRelease(String),
    MetadataGet(String),
    MetadataSet(String, String),
    MetadataDelete(String, String),
}

impl Route {
    fn endpoint(&self) -> Endpoint {
        match self {
            Route::App => Endpoint::App,
            Route::List => Endpoint::List,
            Route::Create => Endpoint::Create,
            Route::Get(_) | Route::Update(_) => Endpoint::Get,
            Route::Delete(_) => Endpoint::Delete,
            Route::Wait(_) => Endpoint::Wait,
            Route::Stop(_) => Endpoint::Stop,
            Route::Start(_) => Endpoint::Start,
            Route::LeaseAcquire(_) | Route::LeaseGet(_) | Route::LeaseRelease(_) => Endpoint::Lease,
            Route::MetadataGet(_) | Route::MetadataSet(..) | Route::MetadataDelete(..) => {
                Endpoint::Metadata
            }
        }
    }

    /// The machine a request concerns, which keys most rate limits (reference §1).
    fn machine(&self) -> Option<&str> {
        match self {
            Route::App | Route::List | Route::Create => None,
            Route::Get(id) | Route::Update(id) | Route::Delete(id) | Route::Wait(id) => Some(id),
            Route::Stop(id) | Route::Start(id) | Route::LeaseAcquire(id) => Some(id),
            Route::LeaseGet(id) | Route::LeaseRelease(id) | Route::MetadataGet(id) => Some(id),
            Route::MetadataSet(id, _) | Route::MetadataDelete(id, _) => Some(id),
        }
    }
}

/// Serves the API on `listener` until the fake's runtime shuts down (which owns every task).
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(&shared, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new();
            let _ = conn.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn respond(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, BODY_LIMIT_BYTES).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return to_response(Reply::error(413, "request body too large")),
    };
    let req = Req {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parse_query(parts.uri.query().unwrap_or("")),
        headers: parts.headers,
        json: serde_json::from_slice(&body).ok(),
        body,
    };
    let reply = match guard::leak(&shared.secrets, shared.no_key_vars, &req) {
        Some(leak) => {
            shared.leaks.lock().unwrap().push(leak.clone());
            Reply::error(400, leak)
        }
        None => handle(shared, &req).await,
    };
    shared.requests.lock().unwrap().push(RecordedRequest {
        method: req.method.to_string(),
        path: req.path.clone(),
        query: req.query.clone(),
        headers: req
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
        body: req.json.clone(),
        raw_body: String::from_utf8_lossy(&req.body).into_owned(),
        status: reply.status,
    });
    to_response(reply)
}

fn to_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut resp = Response::builder()
        .status(reply.status)
        .header("fly-request-id", ulid().to_lowercase());
    let body = match reply.body {
        Body::Json(v) => {
            resp = resp.header("content-type", "application/json");
            Bytes::from(serde_json::to_vec(&v).expect("json"))
        }
        Body::Text(t) => {
            resp = resp.header("content-type", "text/plain; charset=utf-8");
            Bytes::from(t)
        }
        Body::Empty => Bytes::new(),
    };
    for (name, value) in reply.headers {
        resp = resp.header(name, value);
    }
    resp.body(Full::new(body)).expect("response")
}

async fn handle(shared: &Arc<Shared>, req: &Req) -> Reply {
    let (app, route) = match route(&req.method, &req.path) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    if !authorized(shared, &req.headers) {
        // The body shape is the spec's ErrorResponse (reference §1); the words are UNVERIFIED.
        return Reply::error(401, "unauthorized");
    }
    match shared.faults.take_canned(route.endpoint()) {
        Some(Canned::Throttle(after)) => return throttled(after),
        Some(Canned::Status(status)) => {
            return Reply::error(status, "internal: injected server error");
        }
        None => {}
    }
    if shared.rate_limits && rate_limited(shared, &route, &app) {
        return throttled(None);
    }
    if app != shared.app {
        return Reply::error(404, "not_found: app not found");
    }
    match route {
        Route::App => Reply::json(
            200,
            json!({"id": app, "name": app, "status": "deployed",
                   "organization": {"name": "Personal", "slug": "personal"}}),
        ),
        Route::List => handlers::list(shared, req),
        Route::Create => handlers::create(shared, req),
        Route::Get(id) => handlers::get(shared, &id),
        Route::Wait(id) => handlers::wait(shared, &id, req).await,
        // catty never updates a machine (reference §2.9); a call here is a bug to surface.
        Route::Update(_) => Reply::error(501, "the fake does not implement machine update"),
        Route::Stop(id) => actions::stop(shared, &id, req),
        Route::Start(id) => actions::start(shared, &id, req),
        Route::Delete(id) => actions::delete(shared, &id, req),
        Route::LeaseAcquire(id) => actions::lease_acquire(shared, &id, req),
        Route::LeaseGet(id) => actions::lease_get(shared, &id),
        Route::LeaseRelease(id) => actions::lease_release(shared, &id, req),
        Route::MetadataGet(id) => actions::metadata_get(shared, &id),
        Route::MetadataSet(id, key) => actions::metadata_set(shared, &id, &key, req),
        Route::MetadataDelete(id, key) => actions::metadata_delete(shared, &id, &key, req),
    }
}

fn throttled(retry_after: Option<u64>) -> Reply {
    let reply = Reply::error(429, "rate limit exceeded");
    match retry_after {
        Some(secs) => reply.with_header("retry-after", secs.to_string()),
        None => reply,
    }
}

/// The app and endpoint of a path; paths outside `/v1` answer Go's plain 404 (reference
/// §8.1), a known path with the wrong method 405.
fn route(method: &Method, path: &str) -> Result<(String, Route), Reply> {
    let not_found = || Reply::text(404, "404 page not found\n");
    let rest = path.strip_prefix("/v1/apps/").ok_or_else(not_found)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let app = parts[0].to_string();
    let id = |i: usize| parts[i].to_string();
    let route = match (method.as_str(), &parts[1..]) {
        ("GET", []) => Route::App,
        ("GET", ["machines"]) => Route::List,
        ("POST", ["machines"]) => Route::Create,
        ("GET", ["machines", _]) => Route::Get(id(2)),
        ("POST", ["machines", _]) => Route::Update(id(2)),
        ("DELETE", ["machines", _]) => Route::Delete(id(2)),
        ("GET", ["machines", _, "wait"]) => Route::Wait(id(2)),
        ("POST", ["machines", _, "stop"]) => Route::Stop(id(2)),
        ("POST", ["machines", _, "start"]) => Route::Start(id(2)),
        ("POST", ["machines", _, "lease"]) => Route::LeaseAcquire(id(2)),
        ("GET", ["machines", _, "lease"]) => Route::LeaseGet(id(2)),
        ("DELETE", ["machines", _, "lease"]) => Route::LeaseRelease(id(2)),
        ("GET", ["machines", _, "metadata"]) => Route::MetadataGet(id(2)),
        ("POST", ["machines", _, "metadata", _]) => Route::MetadataSet(id(2), id(4)),
        ("DELETE", ["machines", _, "metadata", _]) => Route::MetadataDelete(id(2), id(4)),
        (_, [] | ["machines"] | ["machines", _] | ["machines", _, _] | ["machines", _, _, _]) => {
            return Err(Reply::text(405, "Method Not Allowed\n"));
        }
        _ => return Err(not_found()),
    };
    if app.is_empty() || route.machine().is_some_and(str::is_empty) {
        return Err(not_found());
    }
    Ok((app, route))
}

/// Reference §1: `Bearer <tok>` or `FlyV1 <tok>`. fly-go sends `FlyV1` for macaroons
/// (`fm1r_`, `fm1a_`, `fm2_`) and `Bearer` otherwise; whether Fly accepts the other pairing is
/// UNVERIFIED, so the strict fake accepts only those two.
fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    if shared.faults.revoked() {
        return false;
    }
    let Some((scheme, token)) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
    else {
        return false;
    };
    let macaroon = super::is_macaroon(&shared.token);
    let scheme_ok = if scheme.eq_ignore_ascii_case("bearer") {
        !shared.strict || !macaroon
    } else if scheme.eq_ignore_ascii_case("flyv1") {
        !shared.strict || macaroon
    } else {
        false
    };
    scheme_ok && token.trim() == shared.token
}

/// Reference §1: most actions 1 req/s with bursts of 3, Get Machine 5 req/s with bursts of
/// 10, keyed by machine or by app. Lists and waits are not limited here (no figure given).
fn rate_limited(shared: &Shared, route: &Route, app: &str) -> bool {
    let (rate, burst) = match route {
        Route::App | Route::List | Route::Wait(_) => return false,
        Route::Get(_) | Route::LeaseGet(_) | Route::MetadataGet(_) => (5.0, 10.0),
        _ => (1.0, 3.0),
    };
    let key = (route.endpoint(), route.machine().unwrap_or(app).to_string());
    let mut buckets = shared.buckets.lock().unwrap();
    let now = Instant::now();
    let (tokens, last) = buckets.entry(key).or_insert((burst, now));
    *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
    *last = now;
    if *tokens < 1.0 {
        return true;
    }
    *tokens -= 1.0;
    false
}
