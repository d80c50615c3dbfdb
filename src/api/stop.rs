//! Ending sessions: stop, stop-all, and the common path of every end (mark the record
//! first, then destroy the machine, then confirm), so a crash in between leaves
//! `destroy_pending` for the sweep to finish.

use futures_util::future::join_all;
use tracing::Instrument;

use super::daemon::Daemon;
use super::error::ApiError;
use super::provider::{Machine, Provider};
use super::store::Record;
use crate::clock::unix_now;
use crate::protocol::api::{SessionInfo, SessionState, StopAll};

impl<P: Provider> Daemon<P> {
    /// `POST /v1/sessions/{key}/stop`.
    pub(super) async fn stop(
        &self,
        owner: Option<&str>,
        key: &str,
    ) -> Result<SessionInfo, ApiError> {
        let record = self.find(owner, key).await?;
        if !record.state.is_live() && !record.destroy_pending {
            return Ok(record.info());
        }
        if record.provider != P::NAME {
            return Err(ApiError::conflict(format!(
                "session {} runs on the {} provider; stop it with `catty api --provider {}`",
                record.label, record.provider, record.provider
            )));
        }
        let span = tracing::info_span!("session", session = %record.label);
        async {
            let ended = self
                .end_and_destroy(&record.id, SessionState::Stopped, "stopped by the user")
                .await?;
            if ended.machine.is_none() && !self.in_creation(&record) {
                // Left `starting` by a daemon that died: its machine may exist all the same.
                self.destroy_unrecorded(&ended.id).await?;
            }
            tracing::info!("session stopped");
            Ok(ended.info())
        }
        .instrument(span)
        .await
    }

    /// `DELETE /v1/sessions/{key}`: forgets an ended session (`catty rm`).
    pub(super) async fn forget(
        &self,
        owner: Option<&str>,
        key: &str,
    ) -> Result<SessionInfo, ApiError> {
        let record = self.find(owner, key).await?;
        if record.state.is_live() || record.destroy_pending {
            return Err(ApiError::conflict(format!(
                "session {} is {}; stop it first: catty stop {}",
                record.label,
                record.info().state_text(),
                record.label
            )));
        }
        let id = record.id.clone();
        self.store.remove(&id).await.map_err(ApiError::internal)?;
        self.provider.forget(&id).await;
        tracing::info!(session = %record.label, "session forgotten");
        Ok(record.info())
    }

    async fn destroy_unrecorded(&self, session_id: &str) -> Result<(), ApiError> {
        let listed = self
            .provider
            .list()
            .await
            .map_err(|e| ApiError::machine(format!("cannot list machines: {e:#}")))?;
        for machine in listed.iter().filter(|m| m.session_id == session_id) {
            self.provider.destroy(machine).await.map_err(|e| {
                ApiError::machine(format!("cannot destroy machine {}: {e:#}", machine.id))
            })?;
        }
        Ok(())
    }

    /// `POST /v1/sessions/stop-all`: every machine the provider lists, recorded or not; for
    /// a user of the hosted API (`owner`), every session of theirs.
    pub(super) async fn stop_all(&self, owner: Option<&str>) -> Result<StopAll, ApiError> {
        let listed = match owner {
            None => self
                .provider
                .list()
                .await
                .map_err(|e| ApiError::machine(format!("cannot list machines: {e:#}")))?,
            Some(_) => Vec::new(),
        };
        let now = unix_now();
        let ours = self.store.list(owner).await.map_err(ApiError::internal)?;
        let mut pending = Vec::new();
        for r in ours.iter().filter(|r| r.provider == P::NAME) {
            let ended = self.store.update(&r.id, |r| {
                r.end(SessionState::Stopped, "stopped by stop-all", now);
                r.machine.clone().filter(|_| r.destroy_pending)
            });
            pending.extend(ended.await.map_err(ApiError::internal)?.flatten());
        }
        let mut targets = listed.clone();
        targets.extend(
            pending
                .into_iter()
                .filter(|m| !listed.iter().any(|l| l.id == m.id)),
        );
        let (destroyed, failures) = self.destroy_all(&targets).await;
        self.confirm_destroyed(&destroyed)
            .await
            .map_err(ApiError::internal)?;
        let stopped = match owner {
            None => listed
                .iter()
                .filter(|m| destroyed.iter().any(|d| d.id == m.id))
                .count(),
            Some(_) => destroyed.len(),
        } as u64;
        tracing::info!(stopped, "stop-all");
        match failures.first() {
            None => Ok(StopAll { stopped }),
            Some(first) => Err(ApiError::machine(format!(
                "destroyed {stopped} machine(s) but {} could not be destroyed (catty will retry), first: {first}",
                failures.len()
            ))),
        }
    }

    /// Destroys `machines` at once: those destroyed, and what failed for the others.
    async fn destroy_all<'m>(&self, machines: &'m [Machine]) -> (Vec<&'m Machine>, Vec<String>) {
        let results = join_all(machines.iter().map(|m| self.provider.destroy(m))).await;
        let mut destroyed = Vec::new();
        let mut failures = Vec::new();
        for (machine, result) in machines.iter().zip(results) {
            match result {
                Ok(()) => destroyed.push(machine),
                Err(e) => failures.push(format!("{}: {e:#}", machine.id)),
            }
        }
        (destroyed, failures)
    }

    /// Ends a session (if live) with `state`, then destroys its machine.
    pub(super) async fn end_and_destroy(
        &self,
        id: &str,
        state: SessionState,
        reason: &str,
    ) -> Result<Record, ApiError> {
        let record = self.end(id, state, reason).await?;
        let Some(machine) = record.machine.as_ref().filter(|_| record.destroy_pending) else {
            return Ok(record);
        };
        if let Err(e) = self.provider.destroy(machine).await {
            return Err(ApiError::machine(format!(
                "session {} is {} but destroying its machine {} failed (catty will retry): {e:#}",
                record.label,
                record.state.as_str(),
                machine.id
            )));
        }
        self.confirm_destroyed(&[machine])
            .await
            .map_err(ApiError::internal)?;
        Ok(Record {
            destroy_pending: false,
            ..record
        })
    }

    pub(super) async fn end(
        &self,
        id: &str,
        state: SessionState,
        reason: &str,
    ) -> Result<Record, ApiError> {
        let now = unix_now();
        let ended = self.store.update(id, |r| {
            r.end(state, reason, now);
            r.clone()
        });
        ended
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("no session {id:?}")))
    }

    /// Clears `destroy_pending` of the ended sessions whose machine is among `machines`.
    pub(super) async fn confirm_destroyed(&self, machines: &[&Machine]) -> anyhow::Result<()> {
        for machine in machines {
            self.store
                .update(&machine.session_id, |r| {
                    let ours = r.machine.as_ref().is_some_and(|m| m.id == machine.id);
                    if r.destroy_pending && !r.state.is_live() && ours {
                        r.destroy_pending = false;
                    }
                })
                .await?;
        }
        Ok(())
    }
}
