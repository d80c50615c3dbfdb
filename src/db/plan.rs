//! Which plan a user is on, derived from Stripe's last word on their subscription (the
//! `subscriptions` row the billing webhook keeps), never stored: `active` and `trialing`
//! are paid; `past_due` is paid for [`PAST_DUE_GRACE`] after the period it failed to renew;
//! anything else (none, `incomplete`, `unpaid`, `canceled`, …) is the free plan. Each plan's
//! budget is for a period, the calendar month in UTC ([`THIS_PERIOD`]).

use std::time::Duration;

use anyhow::Context;

use super::Database;
use crate::config::Allowances;

/// How long a subscription whose renewal failed keeps the paid plan while Stripe retries.
pub(crate) const PAST_DUE_GRACE: Duration = Duration::from_secs(7 * 86400);

/// SQL, true when user `$1` is on the paid plan now, with `$2` the grace in seconds
/// ([`grace_secs`]): for a query that needs the plan without a round trip of its own.
pub(crate) const IS_PAID: &str = "EXISTS (SELECT 1 FROM subscriptions WHERE user_id = $1 AND (
         status IN ('active', 'trialing')
         OR (status = 'past_due'
             AND current_period_end + make_interval(secs => $2) > now())))";

/// SQL, the start of this period: this calendar month's first instant in UTC (`now()` is the
/// transaction's start, so one transaction sees one period).
pub(crate) const THIS_PERIOD: &str =
    "(date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')";

/// SQL, the start of the next period (the end of this one).
pub(crate) const NEXT_PERIOD: &str =
    "((date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC')";

/// [`PAST_DUE_GRACE`] as [`IS_PAID`]'s `$2`.
pub(crate) fn grace_secs() -> f64 {
    PAST_DUE_GRACE.as_secs() as f64
}

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

    /// What this plan may spend in a period, in micro-dollars.
    pub(crate) fn limit(self, allowances: &Allowances) -> i64 {
        match self {
            Plan::Free => allowances.free_micro_usd,
            Plan::Paid => allowances.paid_micro_usd,
        }
    }

    pub(crate) fn of(paid: bool) -> Plan {
        if paid { Plan::Paid } else { Plan::Free }
    }
}

impl Database {
    /// `user`'s plan now.
    pub(crate) async fn plan_of(&self, user: &str) -> anyhow::Result<Plan> {
        let client = self.client().await?;
        let paid: bool = client
            .query_one(&format!("SELECT {IS_PAID}"), &[&user, &grace_secs()])
            .await
            .context("cannot read the user's plan")?
            .get(0);
        Ok(Plan::of(paid))
    }
}
