//! The subscription lifecycle with localstripe as Stripe: the test makes a customer, a plan,
//! a card and a subscription there as a paying customer would; localstripe sends its own
//! signed `customer.subscription.*` events to the API's webhook, and the API fetches the
//! subscription back from localstripe (its pre-basil shape: the period at the top).

use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;
use serde_json::Value;

use super::{Billed, User, WEBHOOK_SECRET};
use crate::common::{DEADLINE, http_send, localstripe};

const KEY: &str = "sk_test_localstripe";

/// A form-encoded call to localstripe; its JSON answer.
async fn call(method: &str, path: &str, form: &[(&str, &str)]) -> Value {
    let addr = localstripe::url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let body: Vec<String> = (form.iter())
        .map(|(k, v)| {
            let enc = catty::protocol::percent::encode;
            format!("{}={}", enc(k), enc(v))
        })
        .collect();
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body.join("&"))))
        .unwrap();
    let reply = http_send(addr, req).await;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    assert_eq!(reply.status, StatusCode::OK, "{method} {path}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// `user` subscribes to `plan` with a card that pays: the subscription's id.
async fn subscribe(user: &User, plan: &str) -> String {
    let customer = id(&call("POST", "/v1/customers", &[("email", "a@example.com")]).await);
    let card = [
        ("type", "card"),
        ("card[number]", "4242424242424242"),
        ("card[exp_month]", "12"),
        ("card[exp_year]", "2040"),
        ("card[cvc]", "123"),
    ];
    let pm = id(&call("POST", "/v1/payment_methods", &card).await);
    let attach = format!("/v1/payment_methods/{pm}/attach");
    call("POST", &attach, &[("customer", &customer)]).await;
    let default = [("invoice_settings[default_payment_method]", pm.as_str())];
    call("POST", &format!("/v1/customers/{customer}"), &default).await;
    let sub = [
        ("customer", customer.as_str()),
        ("items[0][plan]", plan),
        ("metadata[user_id]", &user.id),
    ];
    id(&call("POST", "/v1/subscriptions", &sub).await)
}

/// A monthly plan (localstripe's stand-in for a price).
async fn plan() -> String {
    let product = id(&call("POST", "/v1/products", &[("name", "catty paid")]).await);
    let plan_id = format!("plan_{}", crate::common::client_id());
    let plan = [
        ("id", plan_id.as_str()),
        ("product", product.as_str()),
        ("amount", "2000"),
        ("currency", "usd"),
        ("interval", "month"),
    ];
    id(&call("POST", "/v1/plans", &plan).await)
}

/// Waits until `user`'s stored status is `want` (localstripe sends its events a second
/// after the change).
async fn wait_status(b: &Billed, user: &User, want: &str) {
    let deadline = Instant::now() + DEADLINE;
    while b.status(user).await.as_deref() != Some(want) {
        assert!(Instant::now() < deadline, "never {want}: {}", b.api.log());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn localstripe_s_own_events_make_the_plan_paid_then_free() {
    let plan = plan().await;
    let b = Billed::start_on(&localstripe::url(), KEY, &plan).await;
    let webhook = format!("http://{}/v1/billing/webhook", b.api.addr);
    let hook = format!("/_config/webhooks/{}", crate::common::client_id());
    let config = [("url", webhook.as_str()), ("secret", WEBHOOK_SECRET)];
    let registered = http_send(
        localstripe::url()
            .trim_start_matches("http://")
            .parse()
            .unwrap(),
        hyper::Request::post(hook)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form(&config))))
            .unwrap(),
    );
    assert_eq!(registered.await.status, StatusCode::OK);
    let alice = b.user("alice").await;
    let sub = subscribe(&alice, &plan).await;
    wait_status(&b, &alice, "active").await;
    assert!(b.paid(&alice).await);
    call("DELETE", &format!("/v1/subscriptions/{sub}"), &[]).await;
    wait_status(&b, &alice, "canceled").await;
    let answer = b.checkout(&alice).await;
    assert_ne!(
        answer.status,
        StatusCode::CONFLICT,
        "free again: {}",
        answer.body
    );
    let period: Option<f64> = b
        .sql()
        .await
        .query_one(
            "SELECT extract(epoch FROM current_period_end)::float8 FROM subscriptions \
             WHERE user_id = $1",
            &[&alice.id],
        )
        .await
        .unwrap()
        .get(0);
    let now = catty::clock::unix_now() as f64;
    assert!(
        period.is_some_and(|p| p > now),
        "the period is Stripe's, not the epoch: {period:?}"
    );
}

fn form(pairs: &[(&str, &str)]) -> String {
    let enc = catty::protocol::percent::encode;
    let pairs: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    pairs.join("&")
}
