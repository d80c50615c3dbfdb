//! Embedded, ordered migrations: each `migrations/NNNN_name.sql` once, in order, all of them
//! in one transaction under an advisory lock, so instances starting together apply each
//! exactly once and a failed migration leaves the database as it was.

use anyhow::Context;

/// Every migration of this build, by version. Append only: a migration that shipped is never
/// edited (a database that applied it would not apply the edit).
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "accounts and sessions",
        include_str!("migrations/0001_accounts_and_sessions.sql"),
    ),
    (
        2,
        "device polls",
        include_str!("migrations/0002_device_polls.sql"),
    ),
    (
        3,
        "usage, quota and billing",
        include_str!("migrations/0003_usage_quota_billing.sql"),
    ),
    (
        4,
        "hour-long cache writes",
        include_str!("migrations/0004_cache_write_1h.sql"),
    ),
];

/// The advisory lock's key: any constant of our own ("catty" in ASCII).
const LOCK_KEY: i64 = 0x0063_6174_7479;

/// Applies what the database lacks; returns how many migrations ran.
pub(super) async fn run(client: &mut tokio_postgres::Client) -> anyhow::Result<usize> {
    let tx = client
        .transaction()
        .await
        .context("cannot start the migrations")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .context("cannot take the migrations' lock")?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .context("cannot make the schema_migrations table")?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let newest = MIGRATIONS.last().map_or(0, |m| m.0);
    if let Some(ahead) = applied.iter().filter(|&&v| v > newest).max() {
        // A newer build migrated (a rolling deploy): migrations only add, so this one still
        // works with what it knows.
        tracing::warn!("the database has migration {ahead}, newer than this build's {newest}");
    }
    let mut ran = 0;
    for &(version, name, sql) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .with_context(|| format!("migration {version} ({name}) failed"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&version, &name],
        )
        .await?;
        tracing::info!(version, name, "applied a database migration");
        ran += 1;
    }
    tx.commit().await.context("cannot commit the migrations")?;
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_ascend_from_one_without_gaps() {
        for (i, (version, _, sql)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i as i32 + 1);
            assert!(!sql.trim().is_empty());
        }
    }
}
