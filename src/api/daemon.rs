//! The daemon's state, shared by every connection and the sweep: the provider, the session
//! store (the single truth, written before any machine exists or is destroyed), the token,
//! and the lookups. Creating sessions is in `create.rs`, ending them in `stop.rs`.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::Notify;
use tracing::Instrument;

use super::auth::Login;
use super::billing::Billing;
use super::db::Db;
use super::error::ApiError;
use super::provider::{InFlight, Liveness, LlmAccess, Provider};
use super::store::{Record, Store};
use crate::clock::unix_now;
use crate::config::{Allowances, Limits, SessionGateway};
use crate::db::instances::Presence;
use crate::llm_token::LlmKey;
use crate::locks;
use crate::protocol::api::{SessionInfo, SessionList, SessionState};

/// Who may ask the daemon.
pub(super) enum Auth {
    /// The local daemon: one user, whose token is the state directory's `api.token`, and
    /// only from this computer (loopback `Host`, no browser `Origin`).
    Local(String),
    /// The hosted API: each request's token is one catty minted for a user at login, by the
    /// login broker when an identity provider is configured.
    /// With Stripe's settings, billing too.
    Hosted {
        db: Db,
        login: Option<Box<Login>>,
        billing: Option<Box<Billing>>,
        /// Each plan's budget, for `GET /v1/usage`.
        allowances: Allowances,
    },
}

/// The gateway every session's agent goes through: where machines reach it, and the key the
/// sessions' tokens are made with (the gateway checks them with the same key).
pub(super) struct Gateway {
    pub url: String,
    pub key: LlmKey,
}

impl Gateway {
    pub(super) fn new(config: &SessionGateway) -> Gateway {
        Gateway {
            url: config.url.clone(),
            key: LlmKey::new(&config.gateway_key),
        }
    }

    /// What session `id`'s machine gets: the URL and the session's own token.
    pub(super) fn access(&self, id: &str) -> LlmAccess {
        LlmAccess {
            url: self.url.clone(),
            token: self.key.mint(id),
        }
    }
}

/// The daemon's state, shared by every connection and the sweep.
pub(super) struct Daemon<P> {
    pub provider: P,
    pub store: Store,
    /// Sessions this process is creating right now: the sweep leaves them alone.
    creating: Mutex<HashSet<String>>,
    /// Who may ask.
    pub auth: Auth,
    /// The hosted API's view of which instances live (a store many instances share).
    pub presence: Option<Presence>,
    /// What the hosted API offers a session at most.
    pub limits: Option<Limits>,
    /// The gateway sessions reach their providers through, if any.
    pub gateway: Option<Gateway>,
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
        auth: Auth,
        limits: (usize, std::time::Duration),
    ) -> Daemon<P> {
        Daemon {
            max_sessions: limits.0,
            keep_ended: limits.1,
            provider,
            store,
            creating: Mutex::new(HashSet::new()),
            presence: None,
            limits: None,
            gateway: None,
            auth,
            new_deadline: Notify::new(),
            extending: tokio::sync::Mutex::new(()),
        }
    }

    /// Marks session `id` as being created by this process until the guard is dropped.
    pub(super) fn mark_creating(&self, id: &str) -> InFlight<'_> {
        InFlight::new(&self.creating, id)
    }

    pub(super) fn is_creating(&self, id: &str) -> bool {
        locks::lock(&self.creating).contains(id)
    }

    /// Whether `record` is being created, by this process or by another instance that is
    /// still alive (a store many instances share). The sweep and the refresh leave such a
    /// record alone; once its creator died it is an orphan they finish.
    pub(super) fn in_creation(&self, record: &Record) -> bool {
        let by_a_live_instance = || match (&self.presence, record.creator) {
            (Some(presence), Some(creator)) => presence.is_live(creator),
            _ => false,
        };
        self.is_creating(&record.id)
            || (record.state == SessionState::Starting && by_a_live_instance())
    }

    /// Every session, each live one checked against its machine first (as [`Daemon::get`]),
    /// so a listing says what is true now, not at the last sweep.
    /// The hosted API lists what the sweep last found instead: a check per session per
    /// listing would multiply every user's listings into Machines API calls.
    pub(super) async fn list(&self, owner: Option<&str>) -> Result<SessionList, ApiError> {
        let records = self.store.list(owner).await.map_err(ApiError::internal)?;
        if self.presence.is_some() {
            return Ok(SessionList {
                sessions: records.iter().map(Record::info).collect(),
            });
        }
        let fresh = futures_util::future::join_all(records.into_iter().map(|r| self.refresh(r)));
        Ok(SessionList {
            sessions: fresh.await.iter().map(Record::info).collect(),
        })
    }

    /// One session, its state checked against its machine first: this is what a client
    /// asks before it reconnects, so it must not wait for the next sweep.
    pub(super) async fn get(
        &self,
        owner: Option<&str>,
        key: &str,
    ) -> Result<SessionInfo, ApiError> {
        let record = self.find(owner, key).await?;
        Ok(self.refresh(record).await.info())
    }

    async fn refresh(&self, record: Record) -> Record {
        let Some(machine) = record.machine.as_ref() else {
            return record;
        };
        if !record.state.is_live() || record.provider != P::NAME || self.in_creation(&record) {
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
                self.store
                    .get(&record.id)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(record)
            }
        }
    }

    /// Records that the program of `record` exited with `code`.
    async fn exited(&self, record: Record, code: i32) -> Record {
        let id = record.id.clone();
        let noted = self.store.update(&id, |r| {
            r.state.is_live().then(|| {
                r.exit_code = Some(code);
                r.clone()
            })
        });
        match noted.await.map(Option::flatten) {
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

    /// `owner`'s session `key` (an id or a label); someone else's is not found, as one that
    /// does not exist (no existence leak).
    pub(super) async fn find(&self, owner: Option<&str>, key: &str) -> Result<Record, ApiError> {
        self.store
            .find(owner, key)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("no session {key:?}")))
    }
}
