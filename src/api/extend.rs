//! `catty extend`: more time for a live session. The daemon's record and the provider's
//! backstop move first (Fly: the machine's metadata), then the runtime's own deadline, so no
//! backstop ends a machine before the deadline its runtime keeps.

use tracing::Instrument;

use super::daemon::Daemon;
use super::error::ApiError;
use super::provider::Provider;
use crate::clock::unix_now;
use crate::protocol::api::{ExtendSession, MAX_TTL_SEC, SessionInfo};

impl<P: Provider> Daemon<P> {
    /// `POST /v1/sessions/{key}/extend`: `by_sec` more on the current deadline, at most
    /// [`MAX_TTL_SEC`] from the creation.
    pub(super) async fn extend(
        &self,
        key: &str,
        req: ExtendSession,
    ) -> Result<SessionInfo, ApiError> {
        if req.by_sec == 0 {
            return Err(ApiError::bad_request("by_sec must be at least 1"));
        }
        let record = self.find(key).await?;
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
        let Some(machine) = record.machine.clone() else {
            return Err(ApiError::conflict(format!(
                "session {label} is still starting; extend it once it runs"
            )));
        };
        let now = unix_now();
        if record.expires_at <= now {
            return Err(ApiError::conflict(format!(
                "session {label} has reached the end of its time to live"
            )));
        }
        let cap = record.created_at.saturating_add(MAX_TTL_SEC);
        let expires_at = record.expires_at.saturating_add(req.by_sec).min(cap);
        if expires_at <= record.expires_at {
            return Err(ApiError::conflict(format!(
                "session {label} already has the longest time to live, {} days from its start",
                MAX_TTL_SEC / 86_400
            )));
        }
        let span = tracing::info_span!("session", session = %label);
        async {
            let id = record.id.clone();
            self.modify(|records| {
                if let Some(r) = records.iter_mut().find(|r| r.id == id) {
                    r.expires_at = r.expires_at.max(expires_at);
                }
            })
            .await
            .map_err(ApiError::internal)?;
            let told = self
                .provider
                .extend(&machine, &record.connect_token, expires_at)
                .await;
            if let Err(e) = told {
                return Err(ApiError::machine(format!(
                    "session {label}'s deadline could not be moved: {e:#}"
                )));
            }
            tracing::info!(expires_at, by_sec = req.by_sec, "session extended");
            Ok(self.find(&id).await?.info())
        }
        .instrument(span)
        .await
    }
}
