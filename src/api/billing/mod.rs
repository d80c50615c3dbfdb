//! Stripe billing for the hosted API (issue 18; wire: protocol::api's `billing` part):
//! `checkout.rs` opens a Checkout Session (for the CLI's `catty upgrade`, and for the upgrade
//! link a browser opens), `webhook.rs` hears what Stripe says of subscriptions, `signature.rs`
//! checks each delivery, `stripe.rs` is the three calls to Stripe, `pages.rs` the browser's
//! few pages. Off (404) unless the API has every Stripe setting (config/billing.rs).

mod checkout;
mod pages;
mod signature;
mod stripe;
mod webhook;

use hyper::StatusCode;

use super::error::ApiError;
use crate::config::BillingConfig;
use crate::protocol::api::BILLING_NOT_CONFIGURED;
pub(super) use checkout::{checkout, upgrade};
pub(super) use pages::{cancelled, succeeded};
pub(super) use webhook::{WEBHOOK_LIMIT_BYTES, webhook};

/// Billing's settings and its Stripe client.
pub(super) struct Billing {
    config: BillingConfig,
    stripe: stripe::Stripe,
    /// Verifies upgrade links (`CATTY_GATEWAY_KEY`); without it they are all refused.
    gateway_key: Option<Vec<u8>>,
}

impl Billing {
    pub(super) fn new(config: BillingConfig, gateway_key: Option<Vec<u8>>) -> Billing {
        Billing {
            stripe: stripe::Stripe::new(&config),
            config,
            gateway_key,
        }
    }
}

/// The billing of an API that has it, else the `404` every billing route answers.
pub(super) fn configured(billing: Option<&Billing>) -> Result<&Billing, ApiError> {
    billing.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            BILLING_NOT_CONFIGURED,
            "billing is not configured on this API",
        )
    })
}
