//! Which plan a user is on, derived from Stripe's last word on their subscription (the
//! `subscriptions` row the billing webhook keeps), never stored: `active` and `trialing`
//! are paid; `past_due` is paid for [`PAST_DUE_GRACE`] after the period it failed to renew;
//! anything else (none, `incomplete`, `unpaid`, `canceled`, …) is the free plan.

#![allow(dead_code)] // Until the gateway and billing use it (issue 18, in progress).

use std::time::Duration;

use anyhow::Context;

use super::Database;

/// How long a subscription whose renewal failed keeps the paid plan while Stripe retries.
pub(crate) const PAST_DUE_GRACE: Duration = Duration::from_secs(7 * 86400);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    Free,
    Paid,
}

impl Plan {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Paid => "paid",
        }
    }
}

impl Database {
    /// `user`'s plan now.
    pub(crate) async fn plan_of(&self, user: &str) -> anyhow::Result<Plan> {
        let client = self.client().await?;
        let paid: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE user_id = $1 AND (
                     status IN ('active', 'trialing')
                     OR (status = 'past_due'
                         AND current_period_end + make_interval(secs => $2) > now())))",
                &[&user, &(PAST_DUE_GRACE.as_secs() as f64)],
            )
            .await
            .context("cannot read the user's plan")?
            .get(0);
        Ok(if paid { Plan::Paid } else { Plan::Free })
    }
}
