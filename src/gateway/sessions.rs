//! Whether a session whose token checked out is still live, and whose it is: one query on the
//! hosted API's `sessions` table, its answer (live and owned by whom, or not live) cached
//! [`CACHE_TTL`]. A stopped session's token is refused within that time on every gateway.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::db::Database;
use crate::locks::lock;

/// How long an answer of the database is taken as true: a stopped session's token works at
/// most this much longer (the design's bound, reference/hosted.md §3.3).
pub(super) const CACHE_TTL: Duration = Duration::from_secs(2);

/// Entries the cache holds at most: about 1 MiB (an id, an owner, an instant). Only ids whose
/// token carried a good MAC get this far, so nobody without the gateway key can fill it; when
/// full, expired entries go, and if none had expired, all of them.
const CACHE_MAX_ENTRIES: usize = 10_000;

/// The live sessions, as the database last said.
pub(super) struct Sessions {
    db: Database,
    cache: Mutex<Cache>,
}

impl Sessions {
    pub(super) fn new(db: Database) -> Sessions {
        Sessions {
            db,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The owner of session `id` when it is live; `None` when it is not (ended, or unknown).
    pub(super) async fn live_owner(&self, id: &str) -> anyhow::Result<Option<String>> {
        if let Some(known) = lock(&self.cache).get(id, Instant::now()) {
            return Ok(known);
        }
        let owner = self.db.live_session_owner(id).await?;
        lock(&self.cache).put(id, owner.clone(), Instant::now());
        Ok(owner)
    }
}

impl Database {
    async fn live_session_owner(&self, id: &str) -> anyhow::Result<Option<String>> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT owner FROM sessions WHERE id = $1 AND live", &[&id])
            .await
            .with_context(|| format!("cannot look session {id} up"))?;
        Ok(row.map(|row| row.get(0)))
    }
}

/// Answers by session id, each good for [`CACHE_TTL`] from when it was read.
#[derive(Default)]
struct Cache {
    entries: HashMap<String, (Instant, Option<String>)>,
}

impl Cache {
    /// The answer for `id` if one younger than [`CACHE_TTL`] is kept.
    fn get(&self, id: &str, now: Instant) -> Option<Option<String>> {
        let (at, owner) = self.entries.get(id)?;
        (now.duration_since(*at) < CACHE_TTL).then(|| owner.clone())
    }

    fn put(&mut self, id: &str, owner: Option<String>, now: Instant) {
        if self.entries.len() >= CACHE_MAX_ENTRIES && !self.entries.contains_key(id) {
            self.entries
                .retain(|_, (at, _)| now.duration_since(*at) < CACHE_TTL);
            if self.entries.len() >= CACHE_MAX_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries.insert(id.to_string(), (now, owner));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_live_and_dead_alike_for_the_ttl_only() {
        let mut cache = Cache::default();
        let t0 = Instant::now();
        cache.put("s-1", Some("u-1".into()), t0);
        cache.put("s-2", None, t0);
        assert_eq!(
            cache.get("s-1", t0 + CACHE_TTL / 2),
            Some(Some("u-1".into()))
        );
        assert_eq!(cache.get("s-2", t0 + CACHE_TTL / 2), Some(None));
        assert_eq!(cache.get("s-1", t0 + CACHE_TTL), None);
        assert_eq!(cache.get("s-3", t0), None);
    }

    #[test]
    fn the_cache_stays_within_its_bound() {
        let mut cache = Cache::default();
        let t0 = Instant::now();
        for i in 0..CACHE_MAX_ENTRIES {
            cache.put(&format!("s-{i}"), None, t0);
        }
        // Full of fresh entries: all go, the new one stays.
        cache.put("new", None, t0 + CACHE_TTL / 2);
        assert_eq!(cache.entries.len(), 1);
        for i in 0..CACHE_MAX_ENTRIES - 1 {
            cache.put(&format!("s-{i}"), None, t0);
        }
        // Full again, mostly of expired entries: only those go.
        cache.put("newer", None, t0 + CACHE_TTL);
        assert_eq!(cache.entries.len(), 2);
    }
}
