//! Opening a Checkout Session for a user: refused when their plan is already paid; their
//! Stripe customer made once (`Idempotency-Key: cust-<user id>`, then kept in `subscriptions`);
//! the session in subscription mode for the configured price, naming the user
//! (`client_reference_id`, `subscription_data[metadata][user_id]`) so the webhook knows whose
//! subscription it is. From the CLI (`POST /v1/billing/checkout`) or from the upgrade link a
//! browser opens (`GET /billing/upgrade`, signed by the gateway: crate::upgrade_link).

use hyper::{Response, StatusCode};

use super::stripe::Checkout;
use super::{Billing, configured, pages};
use crate::api::db::Db;
use crate::api::db::accounts::User;
use crate::api::error::ApiError;
use crate::clock::unix_now;
use crate::db::plan::Plan;
use crate::net::http::{self, Body};
use crate::protocol::api::{
    ALREADY_PAID, BILLING_CANCEL_PATH, BILLING_SUCCESS_PATH, CheckoutStarted,
};
use crate::protocol::percent;

/// `POST /v1/billing/checkout`: the Checkout URL, or `409` when already paid.
pub(in crate::api) async fn checkout(
    billing: Option<&Billing>,
    db: &Db,
    user: &User,
) -> Result<Response<Body>, ApiError> {
    let billing = configured(billing)?;
    match open(billing, db, user).await? {
        Some(url) => Ok(http::json(StatusCode::OK, &CheckoutStarted { url })),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            ALREADY_PAID,
            "you are already on the paid plan",
        )),
    }
}

/// `GET /billing/upgrade?user=&exp=&sig=`: `303` to Checkout for the link's user; a page
/// saying to run `catty upgrade` for a link that is not genuine or expired.
pub(in crate::api) async fn upgrade(
    billing: Option<&Billing>,
    db: &Db,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let billing = configured(billing)?;
    let Some(user) = linked_user(billing, query.unwrap_or("")) else {
        return Ok(pages::link_refused());
    };
    let user = db.user_by_id(&user).await.map_err(ApiError::unavailable)?;
    let Some(user) = user else {
        return Ok(pages::link_refused());
    };
    Ok(match open(billing, db, &user).await? {
        Some(url) => pages::see_other(&url),
        None => pages::already_paid(),
    })
}

/// The user an upgrade link was signed for, if it is genuine and not expired.
fn linked_user(billing: &Billing, query: &str) -> Option<String> {
    let key = billing.gateway_key.as_deref()?;
    let get = |name: &str| {
        (query.split('&'))
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(percent::decode)
    };
    let (user, exp, sig) = (get("user")?, get("exp")?.parse().ok()?, get("sig")?);
    crate::upgrade_link::verify(key, &user, exp, &sig, unix_now()).then_some(user)
}

/// A Checkout Session's URL for `user`; `None` when their plan is paid already.
async fn open(billing: &Billing, db: &Db, user: &User) -> Result<Option<String>, ApiError> {
    let plan = db.plan_of(&user.id).await.map_err(ApiError::unavailable)?;
    if plan == Plan::Paid {
        return Ok(None);
    }
    let customer = customer(billing, db, user).await?;
    let public = &billing.config.public_url;
    let session = Checkout {
        customer: &customer,
        price: &billing.config.price_id,
        user_id: &user.id,
        success_url: format!("{public}{BILLING_SUCCESS_PATH}"),
        cancel_url: format!("{public}{BILLING_CANCEL_PATH}"),
    };
    // A key per attempt: a second `catty upgrade` is a new session, not the first one again.
    let attempt = format!("checkout-{}-{}", user.id, crate::random::hex(12));
    let url = billing.stripe.create_checkout(&session, &attempt).await;
    let url = url.map_err(stripe_failed)?;
    tracing::info!(user = %user.id, "opened a checkout");
    Ok(Some(url))
}

/// `user`'s Stripe customer: the stored one, else made (once, whatever the races) and stored.
async fn customer(billing: &Billing, db: &Db, user: &User) -> Result<String, ApiError> {
    let stored = db.stripe_customer(&user.id).await;
    if let Some(customer) = stored.map_err(ApiError::unavailable)? {
        return Ok(customer);
    }
    let made = billing
        .stripe
        .create_customer(&user.id, user.email.as_deref());
    let made = made.await.map_err(stripe_failed)?;
    let kept = db.keep_stripe_customer(&user.id, &made).await;
    kept.map_err(ApiError::unavailable)
}

fn stripe_failed(e: super::stripe::StripeError) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "stripe_failed", e.to_string())
}
