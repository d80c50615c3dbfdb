//! The daemon's state (`Api`: the provider, the store, the token) and the creating side of
//! sessions: lookups and `POST /v1/sessions`. The store is the single truth: a session is
//! written `starting` before its machine exists, so a crash at any point leaves a record the
//! sweep can finish. Ending sessions is in `stop.rs`.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tracing::Instrument;

use super::labels::{self, random_hex};
use super::provider::{InFlight, Liveness, Machine, MachineSpec, Provider};
use super::routes::ApiError;
use super::store::{self, Record, Store};
use super::unix_now;
use crate::protocol::api::{CreateSession, SessionCreated, SessionInfo, SessionList, SessionState};

/// How long a new machine gets to answer `/healthz`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// A session's time to live unless the request says otherwise: two hours, as the runtime.
pub const DEFAULT_TTL_SEC: u64 = 2 * 3600;
/// The longest time to live a request may ask for: a week.
pub const MAX_TTL_SEC: u64 = 7 * 86400;

/// The daemon's state, shared by every connection and the sweep.
pub struct Api<P> {
    pub provider: P,
    store: tokio::sync::Mutex<Store>,
    /// Sessions this process is creating right now: the sweep leaves them alone.
    creating: Mutex<HashSet<String>>,
    /// The bearer token every request but `/healthz` must carry.
    pub token: String,
    /// Wakes the sweep loop: a new session brings a deadline that may come before its next
    /// sweep.
    pub new_deadline: Notify,
}

impl<P: Provider> Api<P> {
    pub fn new(provider: P, store: Store, token: String) -> Api<P> {
        Api {
            provider,
            store: tokio::sync::Mutex::new(store),
            creating: Mutex::new(HashSet::new()),
            token,
            new_deadline: Notify::new(),
        }
    }

    pub async fn records(&self) -> Vec<Record> {
        self.store.lock().await.records.clone()
    }

    /// Applies `change` to the records and writes them to disk; on a failed write the
    /// records stay as they were. The change lands in memory first, so a caller that is
    /// cancelled halfway leaves memory ahead of the disk, never behind.
    pub async fn modify<T>(&self, change: impl FnOnce(&mut Vec<Record>) -> T) -> anyhow::Result<T> {
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

    pub fn is_creating(&self, id: &str) -> bool {
        self.creating.lock().expect("creating lock").contains(id)
    }

    pub async fn list(&self) -> SessionList {
        let records = self.records().await;
        SessionList {
            sessions: records.iter().map(Record::info).collect(),
        }
    }

    /// One session, its state checked against its machine first: this is what a client
    /// asks before it reconnects, so it must not wait for the next sweep.
    pub async fn get(&self, key: &str) -> Result<SessionInfo, ApiError> {
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
        let Ok(Liveness::Dead) = self.provider.alive(machine).await else {
            return record;
        };
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

    pub(super) async fn find(&self, key: &str) -> Result<Record, ApiError> {
        let store = self.store.lock().await;
        store
            .find(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no session {key:?}")))
    }

    /// `POST /v1/sessions`: the record first, then the machine, then its `/healthz`.
    pub async fn create(&self, req: CreateSession) -> Result<SessionCreated, ApiError> {
        let ttl_sec = validate(&req)?;
        let id = format!("s-{}", random_hex(8));
        let _creating = InFlight::new(&self.creating, &id);
        let now = unix_now();
        let record = self
            .modify(|records| {
                let label = labels::generate(|l| records.iter().any(|r| r.label == l));
                records.push(Record {
                    id: id.clone(),
                    label,
                    state: SessionState::Starting,
                    agent: req.agent,
                    provider: P::NAME.to_string(),
                    // The machine says where it runs.
                    region: None,
                    created_at: now,
                    expires_at: now + ttl_sec,
                    connect_token: random_hex(32),
                    machine: None,
                    destroy_pending: false,
                    ended_at: None,
                    reason: None,
                });
                records.last().cloned().expect("just pushed")
            })
            .await
            .map_err(ApiError::internal)?;
        self.new_deadline.notify_one();
        let spec = MachineSpec {
            session_id: id.clone(),
            label: record.label.clone(),
            agent: req.agent,
            cmd: req.cmd,
            region: req.region,
            cpus: req.cpus,
            memory_mb: req.memory_mb,
            ttl_sec,
            connect_token: record.connect_token.clone(),
        };
        let span = tracing::info_span!("session", session = %record.label);
        self.provision(record, spec).instrument(span).await
    }

    async fn provision(
        &self,
        record: Record,
        spec: MachineSpec,
    ) -> Result<SessionCreated, ApiError> {
        let label = &record.label;
        tracing::info!(agent = %spec.agent, ttl_sec = spec.ttl_sec, "creating a session");
        let machine = match self.provider.create(&spec).await {
            Ok(machine) => machine,
            Err(e) => {
                tracing::warn!("creating the machine failed: {e:#}");
                let _ = self
                    .end(
                        &record.id,
                        SessionState::Gone,
                        "its machine could not be created",
                    )
                    .await;
                return Err(ApiError::machine(format!(
                    "cannot create a machine for session {label}: {e:#}"
                )));
            }
        };
        if !self
            .advance(&record.id, Some(&machine), SessionState::Starting)
            .await?
        {
            return Err(self.abandoned(&machine, label).await);
        }
        if let Err(e) = self.provider.wait_ready(&machine, READY_TIMEOUT).await {
            tracing::warn!("the machine did not get ready: {e:#}");
            let _ = self
                .end_and_destroy(&record.id, SessionState::Gone, "its runtime did not start")
                .await;
            return Err(ApiError::machine(format!(
                "session {label} did not start: {e:#}"
            )));
        }
        if !self
            .advance(&record.id, None, SessionState::Running)
            .await?
        {
            return Err(self.abandoned(&machine, label).await);
        }
        tracing::info!(machine = %machine.id, "session running");
        Ok(SessionCreated {
            session_id: record.id,
            label: record.label,
            machine_id: machine.id,
            connect_url: machine.connect_url,
            connect_token: record.connect_token,
            headers: machine.headers,
        })
    }

    /// Moves a starting session on (attaching `machine`, or to `to`); false when it is no
    /// longer starting (stopped meanwhile).
    async fn advance(
        &self,
        id: &str,
        machine: Option<&Machine>,
        to: SessionState,
    ) -> Result<bool, ApiError> {
        let advanced = self.modify(|records| match records.iter_mut().find(|r| r.id == id) {
            Some(r) if r.state == SessionState::Starting => {
                if let Some(machine) = machine {
                    r.region = machine.region.clone();
                    r.machine = Some(machine.clone());
                }
                r.state = to;
                true
            }
            _ => false,
        });
        advanced.await.map_err(ApiError::internal)
    }

    /// The session was stopped while its machine was being made: destroy that machine here.
    async fn abandoned(&self, machine: &Machine, label: &str) -> ApiError {
        if let Err(e) = self.provider.destroy(machine).await {
            tracing::warn!("cannot destroy the machine of a stopped session: {e:#}");
        }
        ApiError::conflict(format!("session {label} was stopped while it was starting"))
    }
}

/// The request's time to live, once the request is known to be sound.
fn validate(req: &CreateSession) -> Result<u64, ApiError> {
    if req
        .cmd
        .as_ref()
        .is_some_and(|cmd| cmd.first().is_none_or(|program| program.is_empty()))
    {
        return Err(ApiError::bad_request(
            "cmd must be a non-empty list of arguments",
        ));
    }
    if req.cpus == Some(0) || req.memory_mb == Some(0) {
        return Err(ApiError::bad_request("cpus and memory_mb must be positive"));
    }
    let ttl_sec = req.ttl_sec.unwrap_or(DEFAULT_TTL_SEC);
    if !(1..=MAX_TTL_SEC).contains(&ttl_sec) {
        return Err(ApiError::bad_request(format!(
            "ttl_sec must be between 1 and {MAX_TTL_SEC} (7 days), got {ttl_sec}"
        )));
    }
    Ok(ttl_sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Agent;

    fn req(agent: Agent) -> CreateSession {
        CreateSession {
            agent,
            ..Default::default()
        }
    }

    #[test]
    fn validation() {
        // An unknown agent never gets this far: see protocol::api's `agents_by_name`.
        assert_eq!(validate(&req(Agent::Shell)).unwrap(), DEFAULT_TTL_SEC);
        let ttl = |t| CreateSession {
            ttl_sec: Some(t),
            ..req(Agent::Claude)
        };
        assert!(validate(&ttl(0)).is_err());
        assert!(validate(&ttl(MAX_TTL_SEC + 1)).is_err());
        assert_eq!(validate(&ttl(MAX_TTL_SEC)).unwrap(), MAX_TTL_SEC);
        let cmd = |c: &[&str]| CreateSession {
            cmd: Some(c.iter().map(|s| s.to_string()).collect()),
            ..req(Agent::Shell)
        };
        assert!(validate(&cmd(&[])).is_err());
        assert!(validate(&cmd(&[""])).is_err());
        assert!(validate(&cmd(&["bash", "-i"])).is_ok());
    }
}
