//! The few pages a browser sees of billing: back from Checkout (paid, or given up), and what
//! an upgrade link that cannot open a checkout says instead. Plain HTML, no dynamic text.

use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::{Response, StatusCode};

use crate::net::http::{Body, full};

/// `GET /billing/success`.
pub(in crate::api) fn succeeded() -> Response<Body> {
    page(
        StatusCode::OK,
        "Thank you",
        "Your subscription is being set up: within a minute your account is on the paid \
         plan. You can close this page.",
    )
}

/// `GET /billing/cancel`.
pub(in crate::api) fn cancelled() -> Response<Body> {
    page(
        StatusCode::OK,
        "No change",
        "The checkout was cancelled and nothing was charged. Run <code>catty upgrade</code> \
         whenever you want the paid plan.",
    )
}

/// An upgrade link that is not genuine, or expired.
pub(super) fn link_refused() -> Response<Body> {
    page(
        StatusCode::BAD_REQUEST,
        "This link does not work",
        "This upgrade link is invalid or has expired. Run <code>catty upgrade</code> in a \
         terminal to open a new checkout.",
    )
}

/// An upgrade link of a user already on the paid plan.
pub(super) fn already_paid() -> Response<Body> {
    page(
        StatusCode::OK,
        "Already subscribed",
        "You are already on the paid plan: there is nothing to do.",
    )
}

/// `303 See Other` to `url` (Stripe Checkout).
pub(super) fn see_other(url: &str) -> Response<Body> {
    let mut resp = Response::new(full(""));
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(location) = HeaderValue::from_str(url) {
        resp.headers_mut().insert(LOCATION, location);
    }
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn page(status: StatusCode, title: &str, text: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>catty: {title}</title>\
         </head>\n<body><h1>{title}</h1>\n<p>{text}</p></body></html>\n"
    );
    let mut resp = Response::new(full(html));
    *resp.status_mut() = status;
    let html = HeaderValue::from_static("text/html; charset=utf-8");
    resp.headers_mut().insert(CONTENT_TYPE, html);
    resp
}
