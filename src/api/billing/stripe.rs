//! The three Stripe calls billing makes (create a customer, create a Checkout Session,
//! retrieve a subscription): form-encoded, over the same hyper + ring-only rustls client as the
//! identity provider, with [`STRIPE_VERSION`] pinned and an `Idempotency-Key` on every create.
//! Errors carry Stripe's own message, never the secret key.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;

use crate::config::BillingConfig;
use crate::net::{ExchangeError, HttpsClient, TlsRoots, exchange, https_client};
use crate::protocol::percent;

/// The API version every call asks for, whatever the account's default: the last of the basil
/// line, whose Subscription carries its period on `items.data[]` (basil moved it there from the
/// top level, which the Go original read and would store as the epoch). A later major (clover,
/// dahlia) is adopted by changing this line after reading its changelog.
pub(super) const STRIPE_VERSION: &str = "2025-08-27.basil";
/// An answer of Stripe's is a few KiB (a subscription with one item).
const BODY_LIMIT_BYTES: usize = 256 * 1024;
/// One call's deadline. A webhook delivery holds its transaction (and a pooled connection)
/// while it fetches, so not long: past it the delivery answers 5xx and Stripe retries.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Stripe, with one secret key.
pub(super) struct Stripe {
    http: HttpsClient,
    base: String,
    secret_key: String,
}

/// A call that failed: Stripe's status and message, or why no answer came.
#[derive(Debug)]
pub(super) struct StripeError(String);

impl std::fmt::Display for StripeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StripeError {}

/// What billing reads of a Subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Subscription {
    pub id: String,
    pub customer: String,
    pub status: String,
    pub price_id: Option<String>,
    /// Unix seconds; from `items.data[0]` (basil and later).
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    /// `metadata[user_id]`, set through the Checkout Session.
    pub user_id: Option<String>,
}

impl Stripe {
    pub(super) fn new(config: &BillingConfig) -> Stripe {
        Stripe {
            http: https_client(&TlsRoots::webpki(), true),
            base: config.api_url.clone(),
            secret_key: config.secret_key.clone(),
        }
    }

    /// A customer for catty user `user_id`, made once however often asked
    /// (`Idempotency-Key: cust-<user id>`).
    pub(super) async fn create_customer(
        &self,
        user_id: &str,
        email: Option<&str>,
    ) -> Result<String, StripeError> {
        let mut form = vec![("metadata[user_id]", user_id)];
        if let Some(email) = email {
            form.push(("email", email));
        }
        let key = format!("cust-{user_id}");
        let answer: Created = self.post("/v1/customers", &form, &key).await?;
        Ok(answer.id)
    }

    /// A subscription-mode Checkout Session of `price` for `customer`: its URL. `attempt` is
    /// this attempt's idempotency key (a retry of the same call reuses it).
    pub(super) async fn create_checkout(
        &self,
        checkout: &Checkout<'_>,
        attempt: &str,
    ) -> Result<String, StripeError> {
        let form = [
            ("mode", "subscription"),
            ("customer", checkout.customer),
            ("line_items[0][price]", checkout.price),
            ("line_items[0][quantity]", "1"),
            ("client_reference_id", checkout.user_id),
            ("subscription_data[metadata][user_id]", checkout.user_id),
            ("success_url", &checkout.success_url),
            ("cancel_url", &checkout.cancel_url),
        ];
        let answer: Created = self.post("/v1/checkout/sessions", &form, attempt).await?;
        answer
            .url
            .ok_or_else(|| StripeError("Stripe's Checkout Session has no url".into()))
    }

    /// The subscription `id` as Stripe has it now.
    pub(super) async fn subscription(&self, id: &str) -> Result<Subscription, StripeError> {
        let path = format!("/v1/subscriptions/{}", percent::encode(id));
        let (status, body) = self.call(Method::GET, &path, None, None).await?;
        let wire: WireSubscription = decode(status, &body)?;
        Ok(wire.into())
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        form: &[(&str, &str)],
        idempotency_key: &str,
    ) -> Result<T, StripeError> {
        let body = encode_form(form);
        let (status, body) =
            (self.call(Method::POST, path, Some(body), Some(idempotency_key))).await?;
        decode(status, &body)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        form: Option<String>,
        idempotency_key: Option<&str>,
    ) -> Result<(StatusCode, Bytes), StripeError> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder()
            .method(method)
            .uri(&url)
            .header(AUTHORIZATION, format!("Bearer {}", self.secret_key))
            .header("stripe-version", STRIPE_VERSION);
        if form.is_some() {
            req = req.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        if let Some(key) = idempotency_key {
            req = req.header("idempotency-key", key);
        }
        let req = (req.body(Full::new(Bytes::from(form.unwrap_or_default()))))
            .map_err(|e| StripeError(format!("{url}: {e}")))?;
        exchange(&self.http, req, BODY_LIMIT_BYTES, CALL_TIMEOUT)
            .await
            .map_err(|e| match e {
                ExchangeError::Failed(e) => {
                    StripeError(format!("Stripe ({url}) did not answer: {e}"))
                }
                ExchangeError::TimedOut => StripeError(format!(
                    "Stripe ({url}) did not answer within {} s",
                    CALL_TIMEOUT.as_secs()
                )),
            })
    }
}

/// What a Checkout Session is made of.
pub(super) struct Checkout<'a> {
    pub customer: &'a str,
    pub price: &'a str,
    pub user_id: &'a str,
    pub success_url: String,
    pub cancel_url: String,
}

#[derive(Deserialize)]
struct Created {
    id: String,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
struct WireSubscription {
    id: String,
    customer: String,
    status: String,
    #[serde(default)]
    cancel_at_period_end: bool,
    #[serde(default)]
    metadata: std::collections::HashMap<String, String>,
    items: WireList,
    /// Before basil (and localstripe, which keeps the old shape): the period at the top.
    #[serde(default)]
    current_period_end: Option<i64>,
}

#[derive(Deserialize)]
struct WireList {
    data: Vec<WireItem>,
}

#[derive(Deserialize)]
struct WireItem {
    #[serde(default)]
    current_period_end: Option<i64>,
    #[serde(default)]
    price: Option<WireId>,
    /// The legacy name of a price (localstripe has plans only).
    #[serde(default)]
    plan: Option<WireId>,
}

#[derive(Deserialize)]
struct WireId {
    id: String,
}

impl From<WireSubscription> for Subscription {
    fn from(wire: WireSubscription) -> Subscription {
        let item = wire.items.data.into_iter().next();
        let period = item.as_ref().and_then(|i| i.current_period_end);
        let price = item.and_then(|i| i.price.or(i.plan)).map(|p| p.id);
        Subscription {
            id: wire.id,
            customer: wire.customer,
            status: wire.status,
            price_id: price,
            current_period_end: period.or(wire.current_period_end),
            cancel_at_period_end: wire.cancel_at_period_end,
            user_id: wire.metadata.get("user_id").cloned(),
        }
    }
}

/// Stripe's error body: `{"error":{"message":…}}`.
#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

fn decode<T: for<'de> Deserialize<'de>>(status: StatusCode, body: &[u8]) -> Result<T, StripeError> {
    if status.is_success() {
        return serde_json::from_slice(body)
            .map_err(|e| StripeError(format!("Stripe's answer is not what catty expects: {e}")));
    }
    let said = serde_json::from_slice::<ErrorAnswer>(body)
        .ok()
        .map(|a| a.error);
    let message = said.as_ref().and_then(|e| e.message.clone());
    let kind = said.and_then(|e| e.kind).unwrap_or_else(|| "error".into());
    Err(StripeError(format!(
        "Stripe answered {status} ({kind}): {}",
        message.unwrap_or_else(|| "no message".into())
    )))
}

fn encode_form(pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = (pairs.iter())
        .map(|(k, v)| format!("{}={}", percent::encode(k), percent::encode(v)))
        .collect();
    pairs.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_comes_from_the_item_since_basil() {
        let basil = r#"{"id":"sub_1","customer":"cus_1","status":"active",
            "cancel_at_period_end":true,"metadata":{"user_id":"u-1"},
            "items":{"data":[{"current_period_end":1900000000,"price":{"id":"price_1"}}]}}"#;
        let sub: Subscription = serde_json::from_str::<WireSubscription>(basil)
            .unwrap()
            .into();
        assert_eq!(sub.current_period_end, Some(1_900_000_000));
        assert_eq!(sub.price_id.as_deref(), Some("price_1"));
        assert_eq!(sub.user_id.as_deref(), Some("u-1"));
        assert!(sub.cancel_at_period_end);
        let legacy = r#"{"id":"sub_1","customer":"cus_1","status":"active",
            "current_period_end":1800000000,"items":{"data":[{"plan":{"id":"gold"}}]}}"#;
        let sub: Subscription = serde_json::from_str::<WireSubscription>(legacy)
            .unwrap()
            .into();
        assert_eq!(sub.current_period_end, Some(1_800_000_000));
        assert_eq!(sub.price_id.as_deref(), Some("gold"));
    }

    #[test]
    fn an_error_says_stripes_message() {
        let body = br#"{"error":{"type":"invalid_request_error","message":"No such price"}}"#;
        let err = decode::<Created>(StatusCode::BAD_REQUEST, body)
            .err()
            .unwrap();
        assert!(err.0.contains("No such price"), "{}", err.0);
    }

    #[test]
    fn forms_are_percent_encoded() {
        let form = encode_form(&[("metadata[user_id]", "u 1&x")]);
        assert_eq!(form, "metadata%5Buser_id%5D=u%201%26x");
    }
}
