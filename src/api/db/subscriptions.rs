//! Billing's rows (migration 0003): each user's Stripe customer, made once, and what Stripe
//! last said of their subscription; and `stripe_events`, the webhook's deliveries, each
//! inserted in the one transaction of its effect, so a redelivery finds it and does nothing,
//! and a failed effect leaves no row (Stripe retries).

use std::future::Future;

use anyhow::Context;

use super::Db;

/// A subscription as fetched from Stripe, to store for the user it names or whose customer
/// it is.
#[derive(Debug, Clone)]
pub(in crate::api) struct SubscriptionRow {
    /// `metadata[user_id]` or the Checkout Session's `client_reference_id`.
    pub user_hint: Option<String>,
    pub customer: String,
    pub subscription: String,
    pub status: String,
    pub price_id: Option<String>,
    /// Unix seconds.
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
}

/// What a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::api) enum Delivery {
    /// Its event id was recorded before: nothing done.
    Duplicate,
    /// Recorded; the subscription stored for this user.
    Stored { user: String },
    /// Recorded, with nothing to store: an event type billing ignores, a subscription of no
    /// catty user, or an older subscription that must not replace the user's live one.
    Recorded,
}

/// The statuses that may keep a paid plan (`db/plan.rs`): a subscription in one of them is
/// never replaced by another subscription of the user that is in none.
const LIVE: &str = "('active', 'trialing', 'past_due')";

impl Db {
    /// `user`'s Stripe customer, if one was stored.
    pub(in crate::api) async fn stripe_customer(
        &self,
        user: &str,
    ) -> anyhow::Result<Option<String>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT stripe_customer_id FROM subscriptions WHERE user_id = $1",
                &[&user],
            )
            .await
            .context("cannot read the user's Stripe customer")?;
        Ok(row.and_then(|r| r.get(0)))
    }

    /// Stores `customer` as `user`'s unless one is stored already; the one stored either way.
    pub(in crate::api) async fn keep_stripe_customer(
        &self,
        user: &str,
        customer: &str,
    ) -> anyhow::Result<String> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO subscriptions (user_id, stripe_customer_id) VALUES ($1, $2)
                 ON CONFLICT (user_id) DO UPDATE SET stripe_customer_id =
                     COALESCE(subscriptions.stripe_customer_id, EXCLUDED.stripe_customer_id)
                 RETURNING stripe_customer_id",
                &[&user, &customer],
            )
            .await
            .context("cannot store the user's Stripe customer")?;
        Ok(row.get(0))
    }

    /// Records Stripe event `id` and applies what `effect` fetched, in one transaction that
    /// commits only when both succeed. `effect` runs only for an event not seen before; while
    /// it runs, a second delivery of the same event waits on this one's row.
    pub(in crate::api) async fn deliver<F, Fut>(
        &self,
        id: &str,
        kind: &str,
        effect: F,
    ) -> anyhow::Result<Delivery>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = anyhow::Result<Option<SubscriptionRow>>>,
    {
        let mut client = self.client().await?;
        let tx = client.transaction().await.context("cannot begin")?;
        let new = tx
            .execute(
                "INSERT INTO stripe_events (event_id, type) VALUES ($1, $2)
                 ON CONFLICT (event_id) DO NOTHING",
                &[&id, &kind],
            )
            .await
            .context("cannot record the Stripe event")?;
        if new == 0 {
            return Ok(Delivery::Duplicate);
        }
        // On an error the transaction is dropped, and rolled back with the event's row.
        let delivery = match effect().await? {
            Some(row) => store(&tx, &row).await?,
            None => Delivery::Recorded,
        };
        tx.commit()
            .await
            .context("cannot commit the Stripe event")?;
        Ok(delivery)
    }
}

/// Upserts `row` for the user it names (if they exist) or whose customer it is.
async fn store(
    tx: &tokio_postgres::Transaction<'_>,
    row: &SubscriptionRow,
) -> anyhow::Result<Delivery> {
    let period = row.current_period_end.map(|t| t as f64);
    let sql = format!(
        "WITH who AS (
             SELECT id AS user_id FROM users WHERE id = $1
             UNION ALL
             SELECT user_id FROM subscriptions WHERE stripe_customer_id = $2
             LIMIT 1)
         INSERT INTO subscriptions (user_id, stripe_customer_id, stripe_subscription_id, status,
             price_id, current_period_end, cancel_at_period_end, updated_at)
         SELECT user_id, $2, $3, $4, $5, to_timestamp($6), $7, now() FROM who
         ON CONFLICT (user_id) DO UPDATE SET
             stripe_customer_id = EXCLUDED.stripe_customer_id,
             stripe_subscription_id = EXCLUDED.stripe_subscription_id,
             status = EXCLUDED.status,
             price_id = EXCLUDED.price_id,
             current_period_end = EXCLUDED.current_period_end,
             cancel_at_period_end = EXCLUDED.cancel_at_period_end,
             updated_at = now()
         WHERE subscriptions.stripe_subscription_id IS NULL
             OR subscriptions.stripe_subscription_id = EXCLUDED.stripe_subscription_id
             OR subscriptions.status IS NULL
             OR subscriptions.status NOT IN {LIVE}
             OR EXCLUDED.status IN {LIVE}
         RETURNING user_id"
    );
    let stored = tx
        .query_opt(
            &sql,
            &[
                &row.user_hint,
                &row.customer,
                &row.subscription,
                &row.status,
                &row.price_id,
                &period,
                &row.cancel_at_period_end,
            ],
        )
        .await
        .context("cannot store the subscription")?;
    Ok(match stored {
        Some(r) => Delivery::Stored { user: r.get(0) },
        None => Delivery::Recorded,
    })
}
