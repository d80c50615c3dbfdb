//! The Stripe fake is strict where billing could go wrong unnoticed: it refuses a wrong key,
//! a missing or unknown parameter and an idempotency key reused with other parameters, and
//! replays the first answer of a key reused with the same ones.

use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;

use crate::common::stripe::FakeStripe;
use crate::common::{HttpReply, http_send};

async fn post(stripe: &FakeStripe, key: &str, path: &str, form: &str, idem: &str) -> HttpReply {
    let req = hyper::Request::post(path)
        .header("authorization", format!("Bearer {key}"))
        .header("idempotency-key", idem)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form.to_string())))
        .unwrap();
    http_send(stripe.addr, req).await
}

fn message(reply: &HttpReply) -> String {
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn the_fake_refuses_a_wrong_secret_key() {
    let stripe = FakeStripe::start();
    let reply = post(&stripe, "sk_test_wrong", "/v1/customers", "", "k1").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(stripe.customers(), 0);
}

#[tokio::test]
async fn the_fake_refuses_unknown_and_missing_parameters() {
    let stripe = FakeStripe::start();
    let key = stripe.secret_key.clone();
    let reply = post(&stripe, &key, "/v1/customers", "emial=a%40b", "k1").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(message(&reply).contains("unknown parameter: emial"));
    let reply = post(
        &stripe,
        &key,
        "/v1/checkout/sessions",
        "mode=subscription",
        "k2",
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        message(&reply).contains("success_url"),
        "{}",
        message(&reply)
    );
}

#[tokio::test]
async fn the_fake_replays_a_key_and_refuses_it_with_other_parameters() {
    let stripe = FakeStripe::start();
    let key = stripe.secret_key.clone();
    let first = post(&stripe, &key, "/v1/customers", "email=a%40b", "cust-1").await;
    let again = post(&stripe, &key, "/v1/customers", "email=a%40b", "cust-1").await;
    assert_eq!((first.status, &first.body), (again.status, &again.body));
    assert_eq!(stripe.customers(), 1);
    let other = post(&stripe, &key, "/v1/customers", "email=c%40d", "cust-1").await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    assert!(
        message(&other).contains("same parameters"),
        "{}",
        message(&other)
    );
}
