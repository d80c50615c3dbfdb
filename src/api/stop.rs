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
    pub(super) async fn stop(&self, key: &str) -> Result<SessionInfo, ApiError> {
        let record = self.find(key).await?;
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
            if ended.machine.is_none() && !self.is_creating(&ended.id) {
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
    pub(super) async fn forget(&self, key: &str) -> Result<SessionInfo, ApiError> {
        let record = self.find(key).await?;
        if record.state.is_live() || record.destroy_pending {
            return Err(ApiError::conflict(format!(
                "session {} is {}; stop it first: catty stop {}",
                record.label,
                record.info().state_text(),
                record.label
            )));
        }
        let id = record.id.clone();
        self.modify(|records| records.retain(|r| r.id != id))
            .await
            .map_err(ApiError::internal)?;
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

    /// `POST /v1/sessions/stop-all`: every machine the provider lists, recorded or not.
    pub(super) async fn stop_all(&self) -> Result<StopAll, ApiError> {
        let listed = self
            .provider
            .list()
            .await
            .map_err(|e| ApiError::machine(format!("cannot list machines: {e:#}")))?;
        let now = unix_now();
        let pending = self
            .modify(|records| {
                let ours = records.iter_mut().filter(|r| r.provider == P::NAME);
                for r in ours {
                    r.end(SessionState::Stopped, "stopped by stop-all", now);
                }
                records
                    .iter()
                    .filter(|r| r.destroy_pending && r.provider == P::NAME)
                    .filter_map(|r| r.machine.clone())
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(ApiError::internal)?;
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
        let stopped = listed
            .iter()
            .filter(|m| destroyed.iter().any(|d| d.id == m.id))
            .count() as u64;
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
        let ended = self.modify(|records| {
            let r = records.iter_mut().find(|r| r.id == id)?;
            r.end(state, reason, now);
            Some(r.clone())
        });
        ended
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("no session {id:?}")))
    }

    /// Clears `destroy_pending` of the ended sessions whose machine is among `machines`.
    pub(super) async fn confirm_destroyed(&self, machines: &[&Machine]) -> anyhow::Result<()> {
        self.modify(|records| {
            for r in records
                .iter_mut()
                .filter(|r| r.destroy_pending && !r.state.is_live())
            {
                if r.machine
                    .as_ref()
                    .is_some_and(|m| machines.iter().any(|d| d.id == m.id))
                {
                    r.destroy_pending = false;
                }
            }
        })
        .await
    }
}
