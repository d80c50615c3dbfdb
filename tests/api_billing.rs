//! Stripe billing of the hosted API (issue 18): the webhook's signature through the route
//! (here), a subscription's lifecycle told by signed events (`lifecycle.rs`), checkout and the
//! upgrade link (`checkout.rs`), against the strict Stripe fake (`common::stripe`); and the
//! same lifecycle with localstripe sending the events (`localstripe.rs`); the fake's own
//! strictness in `fake.rs`. A user's plan is read as the API acts on it: a checkout is
//! refused (`409`) exactly when the plan is paid.

mod checkout;
mod fake;
mod lifecycle;
mod localstripe;

use hyper::StatusCode;
use serde_json::{Value, json};

use crate::common::api::fly::FlyDaemon;
use crate::common::api::{Answer, ApiClient};
use crate::common::fly::FakeFly;
use crate::common::hosted::CONNECT_KEY;
use crate::common::pg::{self, TestDb};
use crate::common::stripe::FakeStripe;

const WEBHOOK_SECRET: &str = "whsec_test_0123456789abcdef";
const GATEWAY_KEY: &str = "test-gateway-key-0123456789abcdef-0123";
const PUBLIC_URL: &str = "https://api.catty.test";

/// A database, the Fly fake and one hosted API whose Stripe is `stripe_url`.
struct Billed {
    api: FlyDaemon,
    db: TestDb,
    _fly: FakeFly,
}

struct User {
    id: String,
    token: String,
}

impl Billed {
    async fn start(stripe: &FakeStripe) -> Billed {
        Billed::start_on(&stripe.url(), &stripe.secret_key, &stripe.price).await
    }

    async fn start_on(stripe_url: &str, secret_key: &str, price: &str) -> Billed {
        Billed::start_with(&[
            ("CATTY_STRIPE_SECRET_KEY", secret_key),
            ("CATTY_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("CATTY_STRIPE_PRICE_ID", price),
            ("CATTY_STRIPE_API_URL", stripe_url),
            ("CATTY_PUBLIC_URL", PUBLIC_URL),
            ("CATTY_GATEWAY_KEY", GATEWAY_KEY),
            // The sessions' gateway comes with its key (the agents branch's rule); none is
            // made here.
            ("CATTY_GATEWAY_URL", "http://catty-gateway.flycast"),
        ])
        .await
    }

    /// The hosted API with `billing` added to its environment (none: billing off).
    async fn start_with(billing: &[(&str, &str)]) -> Billed {
        let fly = crate::fly_provider::support::fake();
        let db = pg::database().await;
        let mut env = vec![
            ("CATTY_DATABASE_URL", db.url.as_str()),
            ("CATTY_CONNECT_KEY", CONNECT_KEY),
        ];
        env.extend_from_slice(billing);
        let api = FlyDaemon::start(&fly, &env);
        Billed { api, db, _fly: fly }
    }

    /// A user with a token, as `catty login` leaves them.
    async fn user(&self, name: &str) -> User {
        let sql = self.sql().await;
        let row = sql
            .query_one(
                "INSERT INTO users (issuer, subject, email) VALUES ('https://idp.test', $1, $2)
                 RETURNING id",
                &[&name, &format!("{name}@example.com")],
            )
            .await
            .unwrap();
        let token = format!("cat_{}", crate::common::client_id());
        sql.execute(
            "INSERT INTO cli_tokens (user_id, token_sha256, name, expires_at)
             VALUES ($1, sha256($2::text::bytea), 'test', now() + interval '1 day')",
            &[&row.get::<_, String>(0), &token],
        )
        .await
        .unwrap();
        User {
            id: row.get(0),
            token,
        }
    }

    async fn sql(&self) -> tokio_postgres::Client {
        pg::cluster().connect(&self.db.name).await
    }

    fn client(&self, token: &str) -> ApiClient {
        ApiClient {
            addr: self.api.addr,
            token: token.to_string(),
        }
    }

    /// `POST /v1/billing/checkout` as `user`.
    async fn checkout(&self, user: &User) -> Answer {
        let client = self.client(&user.token);
        client.call("POST", "/v1/billing/checkout", "{}").await
    }

    /// Whether `user`'s plan is paid: a checkout is refused exactly then.
    async fn paid(&self, user: &User) -> bool {
        let answer = self.checkout(user).await;
        match answer.status {
            StatusCode::CONFLICT => true,
            StatusCode::OK => false,
            _ => panic!("checkout: {} {}", answer.status, answer.body),
        }
    }

    /// Posts `body` to the webhook with `Stripe-Signature: signature`.
    async fn post_webhook(&self, body: &str, signature: &str) -> Answer {
        let host = self.api.addr.to_string();
        let headers = [("host", host.as_str()), ("stripe-signature", signature)];
        let client = self.client("");
        let answer = client.raw("POST", "/v1/billing/webhook", &headers, body);
        answer.await.unwrap()
    }

    /// Delivers `event` signed now, as Stripe does.
    async fn deliver(&self, event: &Value) -> Answer {
        let body = event.to_string();
        let signature = sign(&body, catty::clock::unix_now(), &[WEBHOOK_SECRET]);
        self.post_webhook(&body, &signature).await
    }

    /// The rows of `stripe_events`.
    async fn events(&self) -> i64 {
        let sql = self.sql().await;
        let row = sql.query_one("SELECT count(*) FROM stripe_events", &[]);
        row.await.unwrap().get(0)
    }

    /// The status stored for `user`'s subscription.
    async fn status(&self, user: &User) -> Option<String> {
        let sql = self.sql().await;
        let sql_text = "SELECT status FROM subscriptions WHERE user_id = $1";
        let row = sql.query_opt(sql_text, &[&user.id]).await.unwrap();
        row.and_then(|r| r.get(0))
    }
}

/// `Stripe-Signature` for `body` at `t`, one `v1` per secret.
fn sign(body: &str, t: u64, secrets: &[&str]) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let tag = ring::hmac::sign(&key, format!("{t}.{body}").as_bytes());
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        header.push_str(&format!(",v1={hex}"));
    }
    header
}

/// An event of `kind` about `object`, with a new id.
fn event(kind: &str, object: Value) -> Value {
    json!({
        "id": format!("evt_{}", crate::common::client_id()),
        "object": "event",
        "type": kind,
        "api_version": "2025-08-27.basil",
        "created": catty::clock::unix_now(),
        "data": {"object": object},
    })
}

/// An event Stripe sends that billing only records.
fn other_event() -> Value {
    event(
        "customer.created",
        json!({"id": "cus_1", "object": "customer"}),
    )
}

#[tokio::test]
async fn a_delivery_signed_within_the_tolerance_is_stored() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let body = other_event().to_string();
    let t = catty::clock::unix_now() - 290;
    let answer = b
        .post_webhook(&body, &sign(&body, t, &[WEBHOOK_SECRET]))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(b.events().await, 1);
}

#[tokio::test]
async fn a_delivery_signed_outside_the_tolerance_is_refused_and_not_stored() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let body = other_event().to_string();
    for t in [
        catty::clock::unix_now() - 310,
        catty::clock::unix_now() + 310,
    ] {
        let answer = b
            .post_webhook(&body, &sign(&body, t, &[WEBHOOK_SECRET]))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
        assert!(answer.body.contains("tolerance"), "{}", answer.body);
    }
    assert_eq!(b.events().await, 0);
}

#[tokio::test]
async fn a_rotation_s_two_signatures_pass_when_either_is_the_secret() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let body = other_event().to_string();
    let t = catty::clock::unix_now();
    let rotated = sign(&body, t, &["whsec_the_old_one", WEBHOOK_SECRET]);
    let answer = b.post_webhook(&body, &rotated).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let body = other_event().to_string();
    let neither = sign(&body, t, &["whsec_the_old_one", "whsec_another"]);
    let answer = b.post_webhook(&body, &neither).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(b.events().await, 1);
}

#[tokio::test]
async fn a_tampered_body_is_refused_and_nothing_is_stored_or_logged() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let body = other_event().to_string();
    let signature = sign(&body, catty::clock::unix_now(), &[WEBHOOK_SECRET]);
    let tampered = body.replace("customer.created", "customer.deleted");
    let answer = b.post_webhook(&tampered, &signature).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(b.events().await, 0);
    let v1 = signature.split("v1=").nth(1).unwrap();
    for (text, what) in [(answer.body, "answer"), (b.api.log(), "log")] {
        assert!(!text.contains(WEBHOOK_SECRET), "the secret in the {what}");
        assert!(!text.contains(v1), "the signature in the {what}");
    }
}

#[tokio::test]
async fn a_delivery_over_64_kib_is_refused_unread() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let mut object = json!({"id": "cus_1", "object": "customer"});
    object["description"] = json!("x".repeat(64 * 1024));
    let answer = b.deliver(&event("customer.updated", object)).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.body
    );
    assert_eq!(b.events().await, 0);
}

#[tokio::test]
async fn without_stripe_settings_billing_answers_404() {
    let b = Billed::start_with(&[]).await;
    let answer = b.client("").call("POST", "/v1/billing/webhook", "{}").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "billing_not_configured");
    assert!(
        answer.body.contains("billing is not configured"),
        "{}",
        answer.body
    );
}
