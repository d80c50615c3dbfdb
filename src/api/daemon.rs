//! The daemon's state, shared by every connection and the sweep: the provider, the session
//! store (the single truth, written before any machine exists or is destroyed), the token,
//! and the lookups. Creating sessions is in `create.rs`, ending them in `stop.rs`.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::Notify;
use tracing::Instrument;

use super::error::ApiError;
use super::provider::{InFlight, Liveness, Provider};
use super::store::{self, Record, Store};
use crate::clock::unix_now;
use crate::locks;
use crate::protocol::api::{SessionInfo, SessionList, SessionState};

/// The daemon's state, shared by every connection and the sweep.
pub(super) struct Daemon<P> {
    pub provider: P,
    store: tokio::sync::Mutex<Store>,
    /// Sessions this process is creating right now: the sweep leaves them alone.
    creating: Mutex<HashSet<String>>,
    /// The bearer token every request but `/healthz` must carry.
    pub token: String,
    /// Wakes the sweep loop: a new session brings a deadline that may come before its next
    /// sweep.
    pub new_deadline: Notify,
    /// Live sessions (starting or running) at most; a create past it is refused.
    pub max_sessions: usize,
    /// Ended sessions are forgotten this long after their end.
    pub keep_ended: std::time::Duration,
    /// Held through an extension, so two of them reach the runtime in the order they moved
    /// the record.
    pub extending: tokio::sync::Mutex<()>,
}

impl<P: Provider> Daemon<P> {
    /// `limits`: live sessions at most, and how long ended ones are kept.
    pub(super) fn new(
        provider: P,
        store: Store,
        token: String,
        limits: (usize, std::time::Duration),
    ) -> Daemon<P> {
        Daemon {
            max_sessions: limits.0,
            keep_ended: limits.1,
            provider,
            store: tokio::sync::Mutex::new(store),
            creating: Mutex::new(HashSet::new()),
            token,
            new_deadline: Notify::new(),
            extending: tokio::sync::Mutex::new(()),
        }
    }

    pub(super) async fn records(&self) -> Vec<Record> {
        self.store.lock().await.records.clone()
    }

    /// Applies `change` to the records and writes them to disk; on a failed write the
    /// records stay as they were. The change lands in memory first, so a caller that is
    /// cancelled halfway leaves memory ahead of the disk, never behind.
    pub(super) async fn modify<T>(
        &self,
        change: impl FnOnce(&mut Vec<Record>) -> T,
    ) -> anyhow::Result<T> {
        let mut store = self.store.lock().await;
        let before = store.records.clone();
        let out = change(&mut store.records);
        if store.records == before {
            return Ok(out);
        }
        let (path, bytes) = (store.path().to_path_buf(), Store::encode(&store.records));
        let written = tokio::task::spawn_blocking(move || store::write_atomic(&path, &bytes)).await;
        match written.map_err(anyhow::Error::from).and_then(|w| w) {
            Ok(()) => Ok(out),
            Err(e) => {
                store.records = before;
                Err(e)
            }
        }
    }

    /// Marks session `id` as being created by this process until the guard is dropped.
    pub(super) fn mark_creating(&self, id: &str) -> InFlight<'_> {
        InFlight::new(&self.creating, id)
    }

    pub(super) fn is_creating(&self, id: &str) -> bool {
        locks::lock(&self.creating).contains(id)
    }

    /// Every session, each live one checked against its machine first (as [`Daemon::get`]),
    /// so a listing says what is true now, not at the last sweep.
    pub(super) async fn list(&self) -> SessionList {
        let records = self.records().await;
        let fresh = futures_util::future::join_all(records.into_iter().map(|r| self.refresh(r)));
        SessionList {
            sessions: fresh.await.iter().map(Record::info).collect(),
        }
    }

    /// One session, its state checked against its machine first: this is what a client
    /// asks before it reconnects, so it must not wait for the next sweep.
    pub(super) async fn get(&self, key: &str) -> Result<SessionInfo, ApiError> {
        let record = self.find(key).await?;
        Ok(self.refresh(record).await.info())
    }

    async fn refresh(&self, record: Record) -> Record {
        let Some(machine) = record.machine.as_ref() else {
            return record;
        };
        if !record.state.is_live() || record.provider != P::NAME || self.is_creating(&record.id) {
            return record;
        }
        let code = match self.provider.alive(machine).await {
            Ok(Liveness::Dead) => None,
            Ok(Liveness::Exited(code)) if record.exit_code != Some(code) => Some(code),
            _ => return record,
        };
        if let Some(code) = code {
            return self.exited(record, code).await;
        }
        let state = match unix_now() >= record.expires_at {
            true => SessionState::Expired,
            false => SessionState::Gone,
        };
        let span = tracing::info_span!("session", session = %record.label);
        let ended = self.end_and_destroy(&record.id, state, "its machine is gone");
        match ended.instrument(span).await {
            Ok(ended) => ended,
            Err(e) => {
                tracing::warn!("{}", e.message);
                self.find(&record.id).await.unwrap_or(record)
            }
        }
    }

    /// Records that the program of `record` exited with `code`.
    async fn exited(&self, record: Record, code: i32) -> Record {
        let id = record.id.clone();
        let noted = self.modify(|records| {
            let r = records
                .iter_mut()
                .find(|r| r.id == id && r.state.is_live())?;
            r.exit_code = Some(code);
            Some(r.clone())
        });
        match noted.await {
            Ok(Some(noted)) => {
                tracing::info!(session = %noted.label, code, "its program exited");
                noted
            }
            Ok(None) => record,
            Err(e) => {
                tracing::warn!("cannot record an exit: {e:#}");
                record
            }
        }
    }

    pub(super) async fn find(&self, key: &str) -> Result<Record, ApiError> {
        let store = self.store.lock().await;
        store
            .find(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no session {key:?}")))
    }
}
