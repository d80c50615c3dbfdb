//! Sessions in PostgreSQL: the record as JSON (the local store's shape) with the columns its
//! queries and constraints need beside it, written together by [`write`]. Each operation is
//! one transaction; a create locks its owner's rows (an advisory lock on the owner), so two
//! instances creating for one user at once cannot both pass the limit or reuse a label.
//!
//! The connect token is not stored: it is an HMAC of the session id under the deployment's
//! key (`CATTY_CONNECT_KEY`), put into each record read.

use anyhow::Context;
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;

use super::Db;
use crate::api::store::{self, Made, NewSession, Record};

impl Db {
    /// The sessions of `owner` (of everyone for `None`), oldest first.
    pub(in crate::api) async fn sessions_of(
        &self,
        owner: Option<&str>,
    ) -> anyhow::Result<Vec<Record>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM sessions WHERE $1::text IS NULL OR owner = $1
                 ORDER BY created_at, id",
                &[&owner],
            )
            .await
            .context("cannot list sessions")?;
        self.records(rows)
    }

    /// Live sessions and pending destructions, of everyone.
    pub(in crate::api) async fn sweepable_sessions(&self) -> anyhow::Result<Vec<Record>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM sessions WHERE live OR destroy_pending
                 ORDER BY created_at, id",
                &[],
            )
            .await
            .context("cannot list sessions")?;
        self.records(rows)
    }

    /// Sessions whose id or label is `key`, of everyone, oldest first.
    pub(in crate::api) async fn sessions_by_key(&self, key: &str) -> anyhow::Result<Vec<Record>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM sessions WHERE id = $1 OR label = $1
                 ORDER BY created_at, id",
                &[&key],
            )
            .await
            .context("cannot look the session up")?;
        self.records(rows)
    }

    pub(in crate::api) async fn session(&self, id: &str) -> anyhow::Result<Option<Record>> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT record FROM sessions WHERE id = $1", &[&id])
            .await
            .context("cannot look the session up")?;
        row.map(|row| self.record(&row)).transpose()
    }

    pub(in crate::api) async fn create_session(&self, new: NewSession) -> anyhow::Result<Made> {
        let owner = (new.record.owner.clone()).context("a hosted session has an owner")?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&owner],
        )
        .await
        .context("cannot lock the user's sessions")?;
        let rows = tx
            .query(
                "SELECT record FROM sessions WHERE owner = $1 ORDER BY created_at, id",
                &[&owner],
            )
            .await
            .context("cannot read the user's sessions")?;
        let made = store::decide(&self.records(rows)?, new);
        if let Made::New(record) = &made {
            insert(&tx, record).await?;
        }
        tx.commit().await.context("cannot record the session")?;
        Ok(made)
    }

    pub(in crate::api) async fn update_session<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut Record) -> T,
    ) -> anyhow::Result<Option<T>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "SELECT record FROM sessions WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .context("cannot read the session")?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut record = self.record(&row)?;
        let before = record.clone();
        let out = change(&mut record);
        if record != before {
            update(&tx, &record).await?;
            tx.commit().await.context("cannot record the session")?;
        }
        Ok(Some(out))
    }

    pub(in crate::api) async fn remove_session(&self, id: &str) -> anyhow::Result<bool> {
        let client = self.client().await?;
        let n = client
            .execute("DELETE FROM sessions WHERE id = $1", &[&id])
            .await
            .context("cannot forget the session")?;
        Ok(n > 0)
    }

    pub(in crate::api) async fn prune_sessions(
        &self,
        ended_before: u64,
    ) -> anyhow::Result<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "DELETE FROM sessions
                 WHERE NOT live AND NOT destroy_pending AND ended_at < to_timestamp($1)
                 RETURNING id",
                &[&(ended_before as f64)],
            )
            .await
            .context("cannot prune sessions")?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    pub(in crate::api) async fn next_due(
        &self,
        slack: u64,
        keep: u64,
    ) -> anyhow::Result<Option<u64>> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT min(CASE WHEN live THEN extract(epoch FROM expires_at) + $1::float8
                                 ELSE extract(epoch FROM ended_at) + $2::float8 + 1 END)::float8
                 FROM sessions WHERE live OR ended_at IS NOT NULL",
                &[&(slack as f64), &(keep as f64)],
            )
            .await
            .context("cannot read the next deadline")?;
        Ok(row.get::<_, Option<f64>>(0).map(|due| due.max(0.0) as u64))
    }

    fn records(&self, rows: Vec<Row>) -> anyhow::Result<Vec<Record>> {
        rows.iter().map(|row| self.record(row)).collect()
    }

    fn record(&self, row: &Row) -> anyhow::Result<Record> {
        let json: Value = row.get(0);
        let mut record: Record =
            serde_json::from_value(json).context("a session record does not parse")?;
        record.connect_token = self.connect_token(&record.id);
        Ok(record)
    }
}

/// The record as stored: without its connect token.
fn stored(record: &Record) -> anyhow::Result<Value> {
    let mut json = serde_json::to_value(record)?;
    if let Some(fields) = json.as_object_mut() {
        fields.remove("connect_token");
    }
    Ok(json)
}

fn seconds(unix: u64) -> f64 {
    unix as f64
}

async fn insert(client: &impl GenericClient, r: &Record) -> anyhow::Result<()> {
    client
        .execute(
            "INSERT INTO sessions (id, owner, label, live, destroy_pending, expires_at,
                                   ended_at, request_id, created_at, record)
             VALUES ($1, $2, $3, $4, $5, to_timestamp($6), to_timestamp($7), $8,
                     to_timestamp($9), $10)",
            &[
                &r.id,
                &r.owner,
                &r.label,
                &r.state.is_live(),
                &r.destroy_pending,
                &seconds(r.expires_at),
                &r.ended_at.map(seconds),
                &r.request_id,
                &seconds(r.created_at),
                &stored(r)?,
            ],
        )
        .await
        .context("cannot record the session")?;
    Ok(())
}

async fn update(client: &impl GenericClient, r: &Record) -> anyhow::Result<()> {
    client
        .execute(
            "UPDATE sessions SET label = $2, live = $3, destroy_pending = $4,
                    expires_at = to_timestamp($5), ended_at = to_timestamp($6), record = $7
             WHERE id = $1",
            &[
                &r.id,
                &r.label,
                &r.state.is_live(),
                &r.destroy_pending,
                &seconds(r.expires_at),
                &r.ended_at.map(seconds),
                &stored(r)?,
            ],
        )
        .await
        .context("cannot record the session")?;
    Ok(())
}
