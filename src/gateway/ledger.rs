//! The gateway's books over PostgreSQL: a request's estimate is held against its user's
//! quota of this month ([`Ledger::hold`]: one conditional `UPDATE`, so no number of requests on
//! any number of instances holds past the limit, the plan's, read in that same statement, so
//! a plan change counts from the next request), then settled with what the provider reported
//! ([`Ledger::settle`]). Holds of instances that died are given back by the others ([`sweep`]).

use std::time::{Duration, SystemTime};

use anyhow::Context;
use deadpool_postgres::GenericClient;

use super::prices;
use super::usage::{Provider, Usage};
use crate::config::Allowances;
use crate::db::Database;
use crate::db::instances::{Presence, holds_lock};
use crate::db::plan::{IS_PAID, THIS_PERIOD, grace_secs};

/// A hold this old is given back even if its instance lives: no answer streams for a day
/// (the longest output, 128k tokens, streams in well under an hour), so its request was lost
/// by its instance (a task that panicked) and would hold the budget down forever.
pub(crate) const STALE_HOLD: Duration = Duration::from_secs(24 * 3600);

/// The books: the database, the limits of each plan, and this instance (named on each hold,
/// and kept alive as long as the ledger).
#[derive(Clone)]
pub(crate) struct Ledger {
    db: Database,
    allowances: Allowances,
    presence: Presence,
}

/// What one request holds against its user's quota until it is settled.
#[derive(Debug)]
pub(crate) struct Hold {
    pub user: String,
    pub session: String,
    pub units: i64,
    /// The `reservations` row: whoever deletes it gives the hold back, once.
    pub reservation: i64,
    /// The period it was held in: it is settled against that period's row, even in the next.
    pub period: SystemTime,
}

/// Why a request was not let through.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The user's quota cannot hold the estimate: answered 402.
    OverQuota { used: i64, limit: i64, paid: bool },
}

/// What one answer cost, as the provider reported it (or as far as it got).
#[derive(Debug)]
pub(crate) struct Charge {
    pub provider: Provider,
    pub model: Option<String>,
    /// The upstream's request id (Anthropic's `request-id`, OpenAI's `x-request-id`), else
    /// one of the gateway's own: the usage row is written once per id.
    pub request_id: String,
    pub usage: Usage,
    /// False when the answer ended before the provider reported its usage.
    pub reported: bool,
}

impl Ledger {
    /// The books of the instance `presence` announces (`Database::announce`).
    pub(crate) fn new(db: Database, allowances: Allowances, presence: Presence) -> Ledger {
        Ledger {
            db,
            allowances,
            presence,
        }
    }

    /// This instance's number, as its holds name it.
    pub(crate) fn instance(&self) -> i32 {
        self.presence.number
    }

    /// Holds `estimate` micro-dollars of `user`'s quota for a request of `session`.
    pub(crate) async fn hold(
        &self,
        user: &str,
        session: &str,
        estimate: i64,
    ) -> anyhow::Result<Result<Hold, Refusal>> {
        let estimate = estimate.max(0);
        let mut client = self.db.client().await?;
        // Once the period's row exists (every request of a user but their month's first),
        // one statement decides.
        if let Some(hold) = self.try_hold(&client, user, session, estimate).await? {
            return Ok(Ok(hold));
        }
        // One transaction, so one `now()`: the row made is the row tried.
        let tx = client.transaction().await.context("cannot hold")?;
        let make = format!(
            "INSERT INTO quota (user_id, period_start) VALUES ($1, {THIS_PERIOD})
             ON CONFLICT DO NOTHING"
        );
        tx.execute(&make, &[&user])
            .await
            .context("cannot open the user's quota")?;
        let outcome = match self.try_hold(&tx, user, session, estimate).await? {
            Some(hold) => Ok(hold),
            None => Err(self.refusal(&tx, user).await?),
        };
        tx.commit().await.context("cannot hold")?;
        Ok(outcome)
    }

    /// The conditional hold: `None` when the period's row is missing or cannot hold
    /// `estimate` more. The row, its reservation, or neither: one statement.
    async fn try_hold(
        &self,
        client: &impl GenericClient,
        user: &str,
        session: &str,
        estimate: i64,
    ) -> anyhow::Result<Option<Hold>> {
        let sql = format!(
            "WITH held AS (
                 UPDATE quota SET reserved = reserved + $3
                 WHERE user_id = $1 AND period_start = {THIS_PERIOD}
                       AND used + reserved + $3 <= CASE WHEN {IS_PAID} THEN $4::bigint ELSE $5::bigint END
                 RETURNING user_id, period_start)
             INSERT INTO reservations (user_id, period_start, session_id, units, instance)
             SELECT user_id, period_start, $6, $3, $7 FROM held
             RETURNING id, period_start"
        );
        let a = &self.allowances;
        // Prepared once per connection: the hot path is then one round trip.
        let sql = client.prepare_cached(&sql).await.context("cannot hold")?;
        let row = client
            .query_opt(
                &sql,
                &[
                    &user,
                    &grace_secs(),
                    &estimate,
                    &a.paid_micro_usd,
                    &a.free_micro_usd,
                    &session,
                    &self.presence.number,
                ],
            )
            .await
            .context("cannot hold against the quota")?;
        Ok(row.map(|row| Hold {
            user: user.into(),
            session: session.into(),
            units: estimate,
            reservation: row.get(0),
            period: row.get(1),
        }))
    }

    /// Why the period's row cannot hold more: what it used, the user's limit and plan.
    async fn refusal(&self, client: &impl GenericClient, user: &str) -> anyhow::Result<Refusal> {
        let sql = format!(
            "SELECT used, CASE WHEN {IS_PAID} THEN $3::bigint ELSE $4::bigint END, {IS_PAID}
             FROM quota WHERE user_id = $1 AND period_start = {THIS_PERIOD}"
        );
        let a = &self.allowances;
        let row = client
            .query_one(
                &sql,
                &[&user, &grace_secs(), &a.paid_micro_usd, &a.free_micro_usd],
            )
            .await
            .context("cannot read the quota")?;
        Ok(Refusal::OverQuota {
            used: row.get(0),
            limit: row.get(1),
            paid: row.get(2),
        })
    }

    /// Settles `hold` with `charge`: the usage row (once per request id), the quota's `used`
    /// up by its price and `reserved` down by the hold, in one transaction.
    pub(crate) async fn settle(&self, hold: &Hold, charge: &Charge) -> anyhow::Result<()> {
        let units = prices::units(charge.provider, charge.model.as_deref(), &charge.usage);
        self.settle_at(hold, charge, units).await.map(|_| ())
    }

    /// [`Ledger::settle`] at `units`: whether this charge was new (a request id seen before
    /// charges nothing). The hold is given back unless a sweep gave it back already.
    async fn settle_at(&self, hold: &Hold, charge: &Charge, units: i64) -> anyhow::Result<bool> {
        let sql = "WITH released AS (
                 DELETE FROM reservations WHERE id = $1 RETURNING units),
             charged AS (
                 INSERT INTO usage_events (user_id, session_id, provider, model,
                     upstream_request_id, input_tokens, cache_write_tokens, cache_read_tokens,
                     output_tokens, reported, units, cache_write_1h_tokens)
                 VALUES ($2, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                 ON CONFLICT (upstream_request_id) DO NOTHING
                 RETURNING units)
             UPDATE quota SET used = used + COALESCE((SELECT units FROM charged), 0),
                 reserved = reserved - COALESCE((SELECT units FROM released), 0)
             WHERE user_id = $2 AND period_start = $3
             RETURNING EXISTS (SELECT 1 FROM charged)";
        let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let u = &charge.usage;
        let client = self.db.client().await?;
        let sql = client.prepare_cached(sql).await.context("cannot settle")?;
        let row = client
            .query_one(
                &sql,
                &[
                    &hold.reservation,
                    &hold.user,
                    &hold.period,
                    &hold.session,
                    &provider_name(charge.provider),
                    &charge.model,
                    &charge.request_id,
                    &tokens(u.input),
                    &tokens(u.cache_write),
                    &tokens(u.cache_read),
                    &tokens(u.output),
                    &charge.reported,
                    &units.max(0),
                    &tokens(u.cache_write_1h),
                ],
            )
            .await
            .context("cannot settle a request's usage")?;
        Ok(row.get(0))
    }

    /// Gives back every hold of an instance that does not hold its lock now (it died, or
    /// lost its database), and any older than [`STALE_HOLD`]: how many. A hold settled
    /// meanwhile is not given back twice: the settle and the sweep each give back only a
    /// reservation they deleted.
    pub(crate) async fn sweep_once(&self) -> anyhow::Result<u64> {
        let sql = format!(
            "WITH gone AS (
                 DELETE FROM reservations r
                 WHERE NOT {} OR r.created_at < now() - make_interval(secs => $1)
                 RETURNING user_id, period_start, units),
             given AS (
                 SELECT user_id, period_start, sum(units)::bigint AS units, count(*) AS n
                 FROM gone GROUP BY user_id, period_start)
             UPDATE quota q SET reserved = q.reserved - g.units FROM given g
             WHERE q.user_id = g.user_id AND q.period_start = g.period_start
             RETURNING g.n",
            holds_lock("r.instance")
        );
        let client = self.db.client().await?;
        let rows = client
            .query(&sql, &[&(STALE_HOLD.as_secs() as f64)])
            .await
            .context("cannot give back the holds of instances that died")?;
        Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u64).sum())
    }
}

/// Sweeps `every` (`CATTY_GATEWAY_SWEEP_EVERY`, 15 s unless told) until `shutdown`: run by
/// whoever starts the gateway.
pub(crate) async fn sweep(ledger: Ledger, every: Duration, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        match ledger.sweep_once().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(holds = n, "gave back the holds of instances that died"),
            Err(e) => tracing::warn!("{e:#}"),
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// The provider as `usage_events.provider` names it.
fn provider_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Anthropic => "anthropic",
        Provider::OpenAi => "openai",
        Provider::Gemini => "gemini",
    }
}

/// The ledger as the integration tests drive it (`tests/gateway_ledger.rs`): real
/// PostgreSQL, several instances, no gateway. Not an API.
#[doc(hidden)]
pub mod testing {
    use super::*;

    pub struct TestLedger(Ledger);

    /// A hold, as the tests see it.
    pub struct TestHold(Hold);

    impl TestHold {
        pub fn units(&self) -> i64 {
            self.0.units
        }
    }

    /// A new instance's ledger on a pool of its own, over `url`; `(free, paid)` budgets in
    /// micro-dollars. Dropping it ends the instance (its lock goes within a few seconds).
    pub async fn ledger(url: &str, (free, paid): (i64, i64)) -> anyhow::Result<TestLedger> {
        let db = Database::connect(url).await?;
        let presence = db.announce().await?;
        let allowances = Allowances {
            free_micro_usd: free,
            paid_micro_usd: paid,
        };
        Ok(TestLedger(Ledger::new(db, allowances, presence)))
    }

    /// What `usage` of `model` costs (`prices::units`).
    pub fn units(provider: Provider, model: Option<&str>, usage: &Usage) -> i64 {
        prices::units(provider, model, usage)
    }

    impl TestLedger {
        pub fn instance(&self) -> i32 {
            self.0.instance()
        }

        /// `Ok(hold)`, or `Err((used, limit))` when over quota.
        pub async fn hold(
            &self,
            user: &str,
            session: &str,
            estimate: i64,
        ) -> anyhow::Result<Result<TestHold, (i64, i64)>> {
            Ok(match self.0.hold(user, session, estimate).await? {
                Ok(hold) => Ok(TestHold(hold)),
                Err(Refusal::OverQuota { used, limit, .. }) => Err((used, limit)),
            })
        }

        /// Settles `hold` as request `request_id` that used `usage` of `model`.
        pub async fn settle(
            &self,
            hold: TestHold,
            request_id: &str,
            model: &str,
            usage: Usage,
        ) -> anyhow::Result<()> {
            let charge = Charge {
                provider: Provider::Anthropic,
                model: Some(model.into()),
                request_id: request_id.into(),
                usage,
                reported: true,
            };
            self.0.settle(&hold.0, &charge).await
        }

        pub async fn sweep_once(&self) -> anyhow::Result<u64> {
            self.0.sweep_once().await
        }

        /// The hold that reservation `id` records, as `hold` would have answered it (for a
        /// hold arranged in the database, such as one of a past period).
        pub async fn held(&self, id: i64) -> anyhow::Result<TestHold> {
            let client = self.0.db.client().await?;
            let row = client
                .query_one(
                    "SELECT user_id, session_id, units, period_start FROM reservations
                     WHERE id = $1",
                    &[&id],
                )
                .await?;
            Ok(TestHold(Hold {
                user: row.get(0),
                session: row.get(1),
                units: row.get(2),
                reservation: id,
                period: row.get(3),
            }))
        }
    }
}
