//! `catty extend`: more time for a live session. The daemon's record and the provider's
//! backstop move first (Fly: the machine's metadata), then the runtime's own deadline, so no
//! backstop ends a machine before the deadline its runtime keeps.

use tracing::Instrument;

use super::daemon::Daemon;
use super::error::ApiError;
use super::provider::{Machine, Provider};
use super::store::Record;
use crate::clock::unix_now;
use crate::protocol::api::{ExtendSession, MAX_TTL_SEC, SessionInfo};

impl<P: Provider> Daemon<P> {
    /// `POST /v1/sessions/{key}/extend`: `by_sec` more on the current deadline, at most
    /// [`MAX_TTL_SEC`] from the creation.
    pub(super) async fn extend(
        &self,
        owner: Option<&str>,
        key: &str,
        req: ExtendSession,
    ) -> Result<SessionInfo, ApiError> {
        if req.by_sec == 0 {
            return Err(ApiError::bad_request("by_sec must be at least 1"));
        }
        // One at a time: two extensions reach the runtime in the order they moved the record.
        let _one_at_a_time = self.extending.lock().await;
        let record = self.find(owner, key).await?;
        let machine = extendable::<P>(&record)?;
        let label = &record.label;
        let (before, expires_at) =
            (self.push_deadline(&record.id, req.by_sec).await?).ok_or_else(|| {
                ApiError::conflict(format!(
                    "session {label} already has the longest time to live, {} h from its start",
                    self.longest_ttl() / 3600
                ))
            })?;
        let span = tracing::info_span!("session", session = %label);
        async {
            let told = self
                .provider
                .extend(&machine, &record.connect_token, expires_at)
                .await;
            if let Err(e) = told {
                // The user hears it failed: the record keeps the deadline it had (a backstop
                // that did move only comes later).
                self.restore_deadline(&record.id, expires_at, before).await;
                return Err(ApiError::machine(format!(
                    "session {label}'s deadline could not be moved: {e:#}"
                )));
            }
            tracing::info!(expires_at, by_sec = req.by_sec, "session extended");
            Ok(self.find(owner, &record.id).await?.info())
        }
        .instrument(span)
        .await
    }

    /// Moves the record's deadline `by_sec` later, at most [`MAX_TTL_SEC`] from its creation:
    /// the deadline before and after, or `None` when it cannot move.
    async fn push_deadline(&self, id: &str, by_sec: u64) -> Result<Option<(u64, u64)>, ApiError> {
        let longest = self.longest_ttl();
        let pushed = self.store.update(id, |r| {
            let cap = r.created_at.saturating_add(longest);
            let later = r.expires_at.saturating_add(by_sec).min(cap);
            let before = r.expires_at;
            (later > before).then(|| {
                r.expires_at = later;
                (before, later)
            })
        });
        Ok(pushed.await.map_err(ApiError::internal)?.flatten())
    }

    /// Puts the record's deadline back from `moved` to `before`, if nothing changed it since.
    async fn restore_deadline(&self, id: &str, moved: u64, before: u64) {
        let restored = self.store.update(id, |r| {
            if r.expires_at == moved {
                r.expires_at = before;
            }
        });
        if let Err(e) = restored.await {
            tracing::warn!("cannot restore the deadline: {e:#}");
        }
    }
}

impl<P> Daemon<P> {
    /// The longest time to live from a session's start: [`MAX_TTL_SEC`], or what the hosted
    /// API offers.
    fn longest_ttl(&self) -> u64 {
        self.limits
            .as_ref()
            .map_or(MAX_TTL_SEC, |l| l.max_ttl_sec.min(MAX_TTL_SEC))
    }
}

/// The machine of `record` if it can be given more time: a live session of this provider,
/// past its start and before its end.
fn extendable<P: Provider>(record: &Record) -> Result<Machine, ApiError> {
    let label = &record.label;
    if !record.state.is_live() {
        return Err(ApiError::conflict(format!(
            "session {label} is {}; only a live session can be extended (start another: catty new)",
            record.info().state_text()
        )));
    }
    if record.provider != P::NAME {
        return Err(ApiError::conflict(format!(
            "session {label} runs on the {} provider; extend it with `catty api --provider {}`",
            record.provider, record.provider
        )));
    }
    if record.expires_at <= unix_now() {
        return Err(ApiError::conflict(format!(
            "session {label} has reached the end of its time to live"
        )));
    }
    record.machine.clone().ok_or_else(|| {
        ApiError::conflict(format!(
            "session {label} is still starting; extend it once it runs"
        ))
    })
}
