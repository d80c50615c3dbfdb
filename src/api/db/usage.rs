//! What a user spent this period (`GET /v1/usage`): the quota row the gateway keeps (used and
//! held), the plan's limit, and this period's `usage_events` by model. Read in one
//! transaction, so one `now()` names one period.

use anyhow::Context;

use super::Db;
use crate::config::Allowances;
use crate::db::plan::{IS_PAID, NEXT_PERIOD, Plan, THIS_PERIOD, grace_secs};
use crate::protocol::api::{ModelUsage, UsageReport};

impl Db {
    /// `user`'s report for this period, with the plans' budgets `allowances`.
    pub(in crate::api) async fn usage_report(
        &self,
        user: &str,
        allowances: &Allowances,
    ) -> anyhow::Result<UsageReport> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.context("cannot read usage")?;
        let books = format!(
            "SELECT extract(epoch FROM {THIS_PERIOD})::bigint,
                    extract(epoch FROM {NEXT_PERIOD})::bigint,
                    {IS_PAID}, COALESCE(q.used, 0), COALESCE(q.reserved, 0)
             FROM (SELECT 1) AS one
             LEFT JOIN quota q ON q.user_id = $1 AND q.period_start = {THIS_PERIOD}"
        );
        let row = tx
            .query_one(&books, &[&user, &grace_secs()])
            .await
            .context("cannot read the quota")?;
        let plan = Plan::of(row.get(2));
        let by_model = format!(
            "SELECT provider, model, count(*), sum(input_tokens)::bigint,
                    sum(cache_write_tokens)::bigint, sum(cache_read_tokens)::bigint,
                    sum(output_tokens)::bigint, sum(units)::bigint
             FROM usage_events
             WHERE user_id = $1 AND created_at >= {THIS_PERIOD}
             GROUP BY provider, model ORDER BY 8 DESC, 1, 2"
        );
        let rows = tx
            .query(&by_model, &[&user])
            .await
            .context("cannot read usage")?;
        tx.commit().await.context("cannot read usage")?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let models = rows
            .iter()
            .map(|r| ModelUsage {
                provider: r.get(0),
                model: r.get(1),
                requests: count(r.get(2)),
                input_tokens: count(r.get(3)),
                cache_write_tokens: count(r.get(4)),
                cache_read_tokens: count(r.get(5)),
                output_tokens: count(r.get(6)),
                cost_micro_usd: r.get(7),
            })
            .collect();
        Ok(UsageReport {
            plan: plan.name().into(),
            period_start: count(row.get(0)),
            period_end: count(row.get(1)),
            used_micro_usd: row.get(3),
            reserved_micro_usd: row.get(4),
            limit_micro_usd: plan.limit(allowances),
            models,
        })
    }
}
