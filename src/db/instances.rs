//! Which instances of the hosted API (or of the gateway) are alive. Each holds, for its whole life, an advisory
//! lock of its own (class [`INSTANCES`], its number) on a connection of its own: PostgreSQL
//! drops it the moment the process or that connection dies, `kill -9` included. A `starting`
//! record names the instance creating it; the others leave it alone while that one lives and
//! finish it (adopt its machine or give it up) once it died. An instance ends its presence
//! by dropping every [`Presence`] (its lock goes within [`LOOK_EVERY`]).

use std::collections::HashSet;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use anyhow::Context;

use super::Database;
use crate::locks;

/// The advisory lock class of instance locks (any constant of ours: "cat" in ASCII).
const INSTANCES: i32 = 0x0063_6174;
/// How often an instance reads which others are alive (and checks its own lock's connection).
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// This instance's number and what it last saw of the others.
#[derive(Clone)]
pub(crate) struct Presence {
    pub number: i32,
    live: Arc<RwLock<HashSet<i32>>>,
}

impl Presence {
    /// Whether instance `number` was alive at the last look (this one always is).
    pub(crate) fn is_live(&self, number: i32) -> bool {
        number == self.number || locks::read(&self.live).contains(&number)
    }
}

impl Database {
    /// Takes this instance's lock and keeps it, and the view of the others, fresh in a task
    /// of its own (reconnecting and taking the lock again if its connection drops).
    pub(crate) async fn announce(&self) -> anyhow::Result<Presence> {
        let number = i32::try_from(crate::random::u64() % i32::MAX as u64)
            .unwrap_or(1)
            .max(1);
        let presence = Presence {
            number,
            live: Arc::default(),
        };
        let held = self.hold(number).await?;
        look(self, &presence).await?;
        let (db, weak) = (self.clone(), Arc::downgrade(&presence.live));
        tokio::spawn(async move {
            let mut held = Some(held);
            loop {
                tokio::time::sleep(LOOK_EVERY).await;
                // Nobody holds this presence any more: the instance is gone (its lock with
                // `held`, dropped here).
                let Some(live) = Weak::upgrade(&weak) else {
                    return;
                };
                let seen = Presence { number, live };
                if held.as_ref().is_none_or(|h| h.is_closed()) {
                    held = match db.hold(number).await {
                        Ok(client) => Some(client),
                        Err(e) => {
                            tracing::warn!("this instance cannot announce itself: {e:#}");
                            None
                        }
                    };
                }
                if let Err(e) = look(&db, &seen).await {
                    tracing::warn!("cannot see which instances live: {e:#}");
                }
            }
        });
        Ok(presence)
    }

    /// A connection of its own (not the pool's) holding instance `number`'s lock.
    async fn hold(&self, number: i32) -> anyhow::Result<tokio_postgres::Client> {
        let client = self.dedicated().await?;
        client
            .execute("SELECT pg_advisory_lock($1, $2)", &[&INSTANCES, &number])
            .await
            .context("cannot take this instance's lock")?;
        Ok(client)
    }
}

/// SQL, true when the instance numbered by `column` holds its lock in this database now:
/// for a query that must not trust a view up to [`LOOK_EVERY`] old (an instance announced
/// since is alive).
pub(crate) fn holds_lock(column: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_locks l
                 WHERE l.locktype = 'advisory' AND l.classid = {INSTANCES}::oid
                       AND l.objid = ({column})::oid AND l.objsubid = 2 AND l.granted
                       AND l.database = (SELECT oid FROM pg_database
                                         WHERE datname = current_database()))"
    )
}

async fn look(db: &Database, presence: &Presence) -> anyhow::Result<()> {
    let client = db.client().await?;
    let rows = client
        .query(
            "SELECT objid::bigint FROM pg_locks
             WHERE locktype = 'advisory' AND classid = $1::bigint::oid AND objsubid = 2
                   AND granted",
            &[&i64::from(INSTANCES)],
        )
        .await
        .context("cannot read the instance locks")?;
    let live = rows
        .iter()
        .filter_map(|row| i32::try_from(row.get::<_, i64>(0)).ok())
        .collect();
    *locks::write(&presence.live) = live;
    Ok(())
}
