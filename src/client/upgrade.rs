//! `catty upgrade`: asks the hosted API for a Stripe Checkout page for the paid plan, prints
//! its URL and opens it in a browser when there is a display (as `catty login` does). The
//! plan changes once Stripe tells the API the payment went through, a moment after.

use hyper::StatusCode;

use super::daemon_client::DaemonClient;
use super::login::{logged_in, open_browser, status_of};
use crate::config::ClientConfig;
use crate::protocol::api::{BILLING_CHECKOUT_PATH, CheckoutStarted};

/// `catty upgrade`.
pub async fn upgrade(config: &ClientConfig) -> anyhow::Result<i32> {
    let Some((url, token)) = logged_in(config) else {
        match &config.hosted {
            Some(hosted) => say!("catty: not logged in to {}: run catty login", hosted.url),
            None => say!("catty: upgrade is for a hosted API: run catty login --api URL first"),
        }
        return Ok(1);
    };
    let api = DaemonClient::hosted(&url, &token);
    let body = serde_json::json!({});
    let checkout = match api
        .post::<CheckoutStarted>(BILLING_CHECKOUT_PATH, &body)
        .await
    {
        Ok(checkout) => checkout,
        Err(e) => return refused(&url, e),
    };
    out!("To move to the paid plan, open {}", checkout.url);
    if config.display && open_browser(&checkout.url) {
        out!("(a browser was opened on it)");
    }
    Ok(0)
}

/// What the API's refusal means for the user.
fn refused(url: &str, e: anyhow::Error) -> anyhow::Result<i32> {
    match status_of(&e) {
        Some(StatusCode::CONFLICT) => {
            out!("You are already on the paid plan of {url}: nothing to do.");
            Ok(0)
        }
        Some(StatusCode::UNAUTHORIZED) => {
            say!(
                "catty: not logged in to {url} (the login expired or was revoked): run catty login"
            );
            Ok(1)
        }
        Some(StatusCode::NOT_FOUND) => {
            say!("catty: billing is not configured on {url}: there is no paid plan to move to");
            Ok(1)
        }
        _ => Err(e.context("cannot open a checkout")),
    }
}
