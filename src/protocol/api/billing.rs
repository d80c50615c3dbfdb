//! The hosted API's billing (`/v1/billing/…` and the browser's `/billing/…` pages), on only
//! when the API has Stripe's settings (else `404 billing_not_configured`).
//!
//! | method and path | who | answer |
//! | --- | --- | --- |
//! | `POST /v1/billing/checkout` | the user's token | [`CheckoutStarted`]; `409` [`ALREADY_PAID`] |
//! | `POST /v1/billing/webhook` | Stripe (`Stripe-Signature`) | `200` once stored; `400` bad signature; `5xx`: Stripe retries |
//! | `GET /billing/upgrade?user=&exp=&sig=` | a browser (the gateway's 402 link) | `303` to Checkout, or a page |
//! | `GET /billing/success`, `GET /billing/cancel` | a browser (back from Checkout) | a page |
//!
//! The plan follows the subscription's status as Stripe last said it, through the webhook:
//! paying in Checkout makes it `paid` a moment later, not at once.

use serde::{Deserialize, Serialize};

pub const BILLING_CHECKOUT_PATH: &str = "/v1/billing/checkout";
pub const BILLING_WEBHOOK_PATH: &str = "/v1/billing/webhook";
/// Where Checkout sends the browser after paying, and after giving up.
pub const BILLING_SUCCESS_PATH: &str = "/billing/success";
pub const BILLING_CANCEL_PATH: &str = "/billing/cancel";

/// The error code of a checkout asked by a user already on the paid plan (`409`).
pub const ALREADY_PAID: &str = "already_paid";
/// The error code of any billing route on an API without Stripe (`404`).
pub const BILLING_NOT_CONFIGURED: &str = "billing_not_configured";

/// `200` answer of `POST /v1/billing/checkout` (the body sent is `{}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutStarted {
    /// Stripe Checkout's page, to open in a browser.
    pub url: String,
}
