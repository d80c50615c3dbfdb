//! A subscription's life as signed events tell it, each handled by fetching the subscription
//! again from the Stripe fake: paid while active (and past_due within the grace), free once
//! canceled; a redelivery and an event that comes late change nothing; a handler that cannot
//! reach Stripe answers 5xx and keeps no event, so the redelivery works.

use hyper::StatusCode;
use serde_json::{Value, json};

use super::{Billed, User, event};
use crate::common::stripe::FakeStripe;

const DAY: i64 = 86_400;

/// `user` paid in Checkout: the subscription's id, and the `checkout.session.completed`.
pub(super) async fn subscribe(b: &Billed, stripe: &FakeStripe, user: &User) -> (String, Value) {
    let answer = b.checkout(user).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let url = answer.json()["url"].as_str().unwrap().to_string();
    let sub = stripe.complete(&url);
    let session = json!({"id": url.rsplit('/').next(), "object": "checkout.session",
        "mode": "subscription", "client_reference_id": user.id, "subscription": sub});
    (sub, event("checkout.session.completed", session))
}

fn about(kind: &str, stripe: &FakeStripe, sub: &str) -> Value {
    event(kind, stripe.subscription(sub))
}

fn now() -> i64 {
    catty::clock::unix_now() as i64
}

#[tokio::test]
async fn a_completed_checkout_makes_the_plan_paid() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let alice = b.user("alice").await;
    assert!(!b.paid(&alice).await);
    let (_, completed) = subscribe(&b, &stripe, &alice).await;
    assert_eq!(b.deliver(&completed).await.status, StatusCode::OK);
    assert_eq!(b.status(&alice).await.as_deref(), Some("active"));
    assert!(b.paid(&alice).await);
}

#[tokio::test]
async fn past_due_keeps_the_plan_within_the_grace_and_not_after() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let alice = b.user("alice").await;
    let (sub, completed) = subscribe(&b, &stripe, &alice).await;
    b.deliver(&completed).await;
    stripe.set(&sub, "past_due", now() - DAY);
    let failed = event(
        "invoice.payment_failed",
        json!({"id": "in_1", "object": "invoice",
        "parent": {"subscription_details": {"subscription": sub}}}),
    );
    assert_eq!(b.deliver(&failed).await.status, StatusCode::OK);
    assert_eq!(b.status(&alice).await.as_deref(), Some("past_due"));
    assert!(b.paid(&alice).await, "a day into the grace");
    stripe.set(&sub, "past_due", now() - 8 * DAY);
    b.deliver(&about("customer.subscription.updated", &stripe, &sub))
        .await;
    assert!(!b.paid(&alice).await, "past the grace");
}

#[tokio::test]
async fn a_canceled_subscription_is_the_free_plan() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let alice = b.user("alice").await;
    let (sub, completed) = subscribe(&b, &stripe, &alice).await;
    b.deliver(&completed).await;
    stripe.set(&sub, "canceled", now());
    let deleted = about("customer.subscription.deleted", &stripe, &sub);
    assert_eq!(b.deliver(&deleted).await.status, StatusCode::OK);
    assert_eq!(b.status(&alice).await.as_deref(), Some("canceled"));
    assert!(!b.paid(&alice).await);
}

#[tokio::test]
async fn a_redelivered_event_is_stored_once_and_changes_nothing() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let alice = b.user("alice").await;
    let (sub, completed) = subscribe(&b, &stripe, &alice).await;
    b.deliver(&completed).await;
    stripe.set(&sub, "canceled", now());
    // The first delivery of this event is handled now; Stripe says canceled.
    let deleted = about("customer.subscription.deleted", &stripe, &sub);
    b.deliver(&deleted).await;
    // Stripe resubscribes (say); the old delivery again must not fetch and store anything.
    stripe.set(&sub, "active", now() + 30 * DAY);
    assert_eq!(b.deliver(&deleted).await.status, StatusCode::OK);
    assert_eq!(b.events().await, 2, "completed and deleted, once each");
    assert_eq!(b.status(&alice).await.as_deref(), Some("canceled"));
}

#[tokio::test]
async fn two_deliveries_of_one_event_at_once_have_one_effect() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let alice = b.user("alice").await;
    let (_, completed) = subscribe(&b, &stripe, &alice).await;
    let (first, second) = tokio::join!(b.deliver(&completed), b.deliver(&completed));
    assert_eq!(
        (first.status, second.status),
        (StatusCode::OK, StatusCode::OK)
    );
    assert_eq!(b.events().await, 1);
    assert_eq!(
        stripe.fetches(),
        1,
        "the second waited for the first, then did nothing"
    );
}

#[tokio::test]
async fn an_older_event_after_a_newer_one_leaves_the_latest_state() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let alice = b.user("alice").await;
    let (sub, completed) = subscribe(&b, &stripe, &alice).await;
    let updated_while_active = about("customer.subscription.updated", &stripe, &sub);
    stripe.set(&sub, "canceled", now());
    let deleted = about("customer.subscription.deleted", &stripe, &sub);
    for late in [deleted, updated_while_active, completed] {
        assert_eq!(b.deliver(&late).await.status, StatusCode::OK);
    }
    assert_eq!(b.status(&alice).await.as_deref(), Some("canceled"));
    assert!(!b.paid(&alice).await);
}

#[tokio::test]
async fn a_handler_that_cannot_reach_stripe_answers_5xx_and_the_retry_succeeds() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let alice = b.user("alice").await;
    let (_, completed) = subscribe(&b, &stripe, &alice).await;
    stripe.set_down(true);
    let answer = b.deliver(&completed).await;
    assert!(
        answer.status.is_server_error(),
        "{} {}",
        answer.status,
        answer.body
    );
    assert_eq!(b.events().await, 0, "the event rolled back with its effect");
    assert_eq!(b.status(&alice).await, None);
    assert!(
        !b.api.log().contains(&stripe.secret_key),
        "the key in the log"
    );
    stripe.set_down(false);
    assert_eq!(b.deliver(&completed).await.status, StatusCode::OK);
    assert!(b.paid(&alice).await);
}

#[tokio::test]
async fn every_call_pins_the_stripe_version() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let alice = b.user("alice").await;
    let (_, completed) = subscribe(&b, &stripe, &alice).await;
    b.deliver(&completed).await;
    let versions = stripe.versions();
    assert!(
        versions.len() >= 3,
        "customer, session, subscription: {versions:?}"
    );
    let pinned = Some("2025-08-27.basil".to_string());
    assert!(versions.iter().all(|v| *v == pinned), "{versions:?}");
}
