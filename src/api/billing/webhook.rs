//! `POST /v1/billing/webhook`: Stripe's deliveries. The signature is checked on the raw bytes
//! before anything reads them; then, in one transaction, the event is recorded (a redelivery
//! stops there) and, for a subscription's or an invoice's event, the subscription is fetched
//! again from Stripe and stored, so the order events arrive in does not matter. `200` only
//! after the commit; any failure is a `5xx`, rolled back with the event's row, and Stripe
//! retries. Nothing logged names the secret or the signature.

use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;

use super::stripe::Subscription;
use super::{Billing, signature};
use crate::api::db::Db;
use crate::api::db::subscriptions::{Delivery, SubscriptionRow};
use crate::api::error::ApiError;
use crate::net::http::{self, Body};

/// The largest delivery read: Stripe's events are a few KiB.
pub(in crate::api) const WEBHOOK_LIMIT_BYTES: usize = 64 * 1024;

/// The event types whose subscription is fetched again and stored.
const SUBSCRIPTION_EVENTS: [&str; 7] = [
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
];

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: Value,
}

/// One delivery: `body` as it came, `headers` for its `Stripe-Signature`.
pub(in crate::api) async fn webhook(
    billing: &Billing,
    db: &Db,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| refused("no Stripe-Signature header"))?;
    let secret = &billing.config.webhook_secret;
    signature::verify(body, header, secret, crate::clock::unix_now())
        .map_err(|e| refused(&e.to_string()))?;
    let event: Event = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the event does not parse: {e}")))?;
    let (id, kind) = (event.id.clone(), event.kind.clone());
    let span = tracing::info_span!("stripe_event", event = %id, kind = %kind);
    let delivery = db.deliver(&id, &kind, || effect(billing, event));
    let delivery = delivery.instrument(span.clone()).await;
    let delivery = delivery.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "webhook_failed",
            format!("event {id} ({kind}) not stored, Stripe will retry: {e:#}"),
        )
    })?;
    span.in_scope(|| match &delivery {
        Delivery::Duplicate => tracing::info!("a redelivery: nothing to do"),
        Delivery::Stored { user } => tracing::info!(%user, "subscription stored"),
        Delivery::Recorded => tracing::info!("recorded"),
    });
    Ok(http::json(
        StatusCode::OK,
        &serde_json::json!({"received": true}),
    ))
}

/// What `event` changes: its subscription as Stripe has it now, if it names one.
async fn effect(billing: &Billing, event: Event) -> anyhow::Result<Option<SubscriptionRow>> {
    if !SUBSCRIPTION_EVENTS.contains(&event.kind.as_str()) {
        return Ok(None);
    }
    let object = &event.data.object;
    let Some(id) = subscription_of(&event.kind, object) else {
        return Ok(None);
    };
    let reference = object.get("client_reference_id").and_then(Value::as_str);
    let sub = billing.stripe.subscription(&id).await?;
    Ok(Some(row(sub, reference)))
}

/// The subscription an event is about: the object itself, or the one a Checkout Session or an
/// invoice names (basil moved an invoice's to `parent.subscription_details`).
fn subscription_of(kind: &str, object: &Value) -> Option<String> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    if kind.starts_with("customer.subscription.") {
        return text(object.get("id"));
    }
    if kind.starts_with("invoice.") {
        let parent = object.pointer("/parent/subscription_details/subscription");
        return text(parent).or_else(|| text(object.get("subscription")));
    }
    text(object.get("subscription"))
}

fn row(sub: Subscription, reference: Option<&str>) -> SubscriptionRow {
    SubscriptionRow {
        user_hint: sub.user_id.or(reference.map(str::to_string)),
        customer: sub.customer,
        subscription: sub.id,
        status: sub.status,
        price_id: sub.price_id,
        current_period_end: sub.current_period_end,
        cancel_at_period_end: sub.cancel_at_period_end,
    }
}

/// A delivery whose signature does not hold: `400`, said without the secret or the header.
fn refused(why: &str) -> ApiError {
    tracing::warn!("a webhook delivery was refused: {why}");
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_signature",
        format!("the Stripe-Signature does not hold: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_names_its_subscription() {
        let sub = serde_json::json!({"id": "sub_1", "object": "subscription"});
        assert_eq!(
            subscription_of("customer.subscription.deleted", &sub).as_deref(),
            Some("sub_1")
        );
        let basil = serde_json::json!({"id": "in_1",
            "parent": {"subscription_details": {"subscription": "sub_2"}}});
        assert_eq!(
            subscription_of("invoice.paid", &basil).as_deref(),
            Some("sub_2")
        );
        let legacy = serde_json::json!({"id": "in_1", "subscription": "sub_3"});
        assert_eq!(
            subscription_of("invoice.payment_failed", &legacy).as_deref(),
            Some("sub_3")
        );
        let session = serde_json::json!({"id": "cs_1", "subscription": "sub_4"});
        assert_eq!(
            subscription_of("checkout.session.completed", &session).as_deref(),
            Some("sub_4")
        );
        let payment = serde_json::json!({"id": "cs_1", "subscription": null});
        assert_eq!(
            subscription_of("checkout.session.completed", &payment),
            None
        );
    }
}
