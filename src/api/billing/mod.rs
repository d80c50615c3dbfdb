//! Stripe billing for the hosted API (issue 18): for now the webhook's signature check.

// Unused outside tests until the webhook route (issue 18) uses it.
#[cfg_attr(not(test), allow(dead_code))]
pub(super) mod signature;
