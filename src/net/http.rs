//! What the HTTP servers (daemon and runtime) share: the body of every answer, JSON answers,
//! the one JSON error shape, and the bearer-token check.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::protocol::HEADER_READ_TIMEOUT;
use crate::protocol::api::ErrorBody;

/// The body of every answer: complete bytes ([`full`]), or a stream (the runtime's files and
/// bundles) that ends in an error when what it carries cannot be finished, so the client sees
/// a cut answer rather than a short one.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A complete body.
/// The HTTP/1 server of the daemon and the runtime: a request's head must arrive within
/// [`HEADER_READ_TIMEOUT`], and a kept-alive connection idle that long is closed, so idle
/// connections cannot hold descriptors for ever.
pub fn server() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A plain-text answer (`/healthz`'s `ok`).
pub fn text(text: &'static str) -> Response<Body> {
    Response::new(full(Bytes::from_static(text.as_bytes())))
}

/// `value` as a JSON answer with `status`.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).expect("answers serialize");
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// An error answer: `{"error":{"code":"…","message":"…"}}` ([`ErrorBody`]).
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response<Body> {
    json(status, &ErrorBody::new(code, message))
}

/// Whether the request carries `Authorization: Bearer <token>`, compared in constant time
/// (only the token's length can leak).
pub fn bearer_matches<B>(req: &Request<B>, token: &str) -> bool {
    bearer(req).is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes())))
}

/// The token of `Authorization: Bearer <token>`, if the request has one.
pub fn bearer<B>(req: &Request<B>) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(authorization: Option<&str>) -> Request<()> {
        let mut req = Request::get("/");
        if let Some(value) = authorization {
            req = req.header(AUTHORIZATION, value);
        }
        req.body(()).unwrap()
    }

    #[test]
    fn the_right_bearer_token_matches() {
        assert!(bearer_matches(&request(Some("Bearer abc")), "abc"));
    }

    #[test]
    fn a_wrong_missing_or_schemeless_token_does_not() {
        assert!(!bearer_matches(&request(Some("Bearer abd")), "abc"));
        assert!(!bearer_matches(&request(Some("Bearer ab")), "abc"));
        assert!(!bearer_matches(&request(Some("abc")), "abc"));
        assert!(!bearer_matches(&request(None), "abc"));
    }

    #[test]
    fn errors_are_json_with_their_status() {
        let resp = error(StatusCode::CONFLICT, "conflict", "taken");
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
    }
}
