//! Creating a session (`POST /v1/sessions`): the request checked (its credentials above all),
//! the record first, `starting`, then the machine, then its `/healthz`, then `running`. A
//! crash at any point leaves a record the sweep can finish. Credentials go into the machine's
//! spec only: the record (what the store writes to disk) has no place for them. With a
//! gateway there are none: the machine gets the gateway's URL and the session's token.

use std::time::Duration;

use hyper::StatusCode;

use tracing::Instrument;

use super::daemon::Daemon;
use super::error::ApiError;
use super::provider::{Machine, MachineSpec, Provider};
use super::store::{Made, NewSession, Record};
use crate::clock::unix_now;
use crate::config::Limits;
use crate::protocol::Agent;
use crate::protocol::api::{
    CREDENTIAL_LIMIT_BYTES, CreateSession, Credentials, MAX_TTL_SEC, NO_CREDENTIALS_WITH_GATEWAY,
    SessionCreated, SessionState,
};
use crate::protocol::control::valid_id;
use crate::random;

/// How long a new machine gets to answer `/healthz`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request tried again waits for its first try beyond the first try's own wait.
const RETRY_GRACE: Duration = Duration::from_secs(30);
/// Between two looks at the first try of a request tried again.
const RETRY_POLL: Duration = Duration::from_millis(50);
/// A session's time to live unless the request says otherwise: two hours, as the runtime.
pub(super) const DEFAULT_TTL_SEC: u64 = 2 * 3600;

impl<P: Provider> Daemon<P> {
    /// `POST /v1/sessions`: the record first, then the machine, then its `/healthz`.
    pub(super) async fn create(
        &self,
        owner: Option<&str>,
        req: CreateSession,
    ) -> Result<SessionCreated, ApiError> {
        let mut ttl_sec = validate(&req)?;
        if self.gateway.is_some() && !req.credentials.is_empty() {
            return Err(ApiError::bad_request(NO_CREDENTIALS_WITH_GATEWAY));
        }
        let mut req = req;
        if let Some(limits) = &self.limits {
            ttl_sec = limit(&mut req, ttl_sec, limits)?;
        }
        self.provider.check(&req).map_err(ApiError::bad_request)?;
        let id = format!("s-{}", random::hex(8));
        let _creating = self.mark_creating(&id);
        let now = unix_now();
        let max = self.max_sessions;
        let new = NewSession {
            record: Record {
                id: id.clone(),
                owner: owner.map(str::to_string),
                // The store chooses it, among the owner's.
                label: String::new(),
                state: SessionState::Starting,
                agent: req.agent,
                provider: P::NAME.to_string(),
                // The machine says where it runs.
                region: None,
                created_at: now,
                expires_at: now + ttl_sec,
                connect_token: self.store.connect_token(&id),
                machine: None,
                destroy_pending: false,
                ended_at: None,
                reason: None,
                request_id: req.request_id.clone(),
                creator: self.presence.as_ref().map(|p| p.number),
                cmd: req.cmd.clone(),
                exit_code: None,
            },
            max_live: max,
        };
        let made = self.store.create(new).await.map_err(ApiError::internal)?;
        let record = match made {
            Made::New(record) => *record,
            Made::Earlier(earlier) => return self.created_before(&earlier).await,
            Made::Full => {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "session_limit",
                    format!(
                        "{max} sessions are running, the limit: stop one with \
                         `catty stop <label>`, or restart the daemon with a larger \
                         CATTY_MAX_SESSIONS"
                    ),
                ));
            }
        };
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
            path: req.path,
            credentials: req.credentials,
            llm: self.gateway.as_ref().map(|g| g.access(&id)),
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

    /// The answer to a request tried again (`request_id`): the session its first try made,
    /// once that one is running (a try still under way, or left `starting` by a daemon that
    /// died, is waited for; the sweep settles the latter).
    async fn created_before(&self, id: &str) -> Result<SessionCreated, ApiError> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT + RETRY_GRACE;
        loop {
            let record = (self.store.get(id).await)
                .map_err(ApiError::internal)?
                .ok_or_else(|| ApiError::conflict("this request's session was removed"))?;
            match (record.state, &record.machine) {
                (SessionState::Running, Some(machine)) => {
                    return Ok(SessionCreated {
                        session_id: record.id.clone(),
                        label: record.label.clone(),
                        machine_id: machine.id.clone(),
                        connect_url: machine.connect_url.clone(),
                        connect_token: record.connect_token.clone(),
                        headers: machine.headers.clone(),
                    });
                }
                (SessionState::Starting | SessionState::Running, _)
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(RETRY_POLL).await;
                }
                (SessionState::Starting | SessionState::Running, _) => {
                    return Err(ApiError::machine(format!(
                        "session {} of this request did not start in time",
                        record.label
                    )));
                }
                (state, _) => {
                    return Err(ApiError::conflict(format!(
                        "session {} of this request is {}: {}",
                        record.label,
                        state.as_str(),
                        record.reason.as_deref().unwrap_or("it ended")
                    )));
                }
            }
        }
    }

    /// Moves a starting session on (attaching `machine`, or to `to`); false when it is no
    /// longer starting (stopped meanwhile).
    async fn advance(
        &self,
        id: &str,
        machine: Option<&Machine>,
        to: SessionState,
    ) -> Result<bool, ApiError> {
        let advanced = self.store.update(id, |r| {
            if r.state != SessionState::Starting {
                return false;
            }
            if let Some(machine) = machine {
                r.region = machine.region.clone();
                r.machine = Some(machine.clone());
            }
            r.state = to;
            true
        });
        Ok(advanced.await.map_err(ApiError::internal)? == Some(true))
    }

    /// The session was stopped while its machine was being made: destroy that machine here.
    async fn abandoned(&self, machine: &Machine, label: &str) -> ApiError {
        if let Err(e) = self.provider.destroy(machine).await {
            tracing::warn!("cannot destroy the machine of a stopped session: {e:#}");
        }
        ApiError::conflict(format!("session {label} was stopped while it was starting"))
    }
}

/// Clamps what `req` asks to what the hosted API offers (`limits`); its time to live, clamped.
/// A region it does not offer is refused, naming those it does.
fn limit(req: &mut CreateSession, ttl_sec: u64, limits: &Limits) -> Result<u64, ApiError> {
    if let Some(region) = &req.region
        && !limits.regions.is_empty()
        && !limits.regions.contains(region)
    {
        return Err(ApiError::bad_request(format!(
            "region {region:?} is not offered; choose one of {}",
            limits.regions.join(", ")
        )));
    }
    req.cpus = req.cpus.map(|n| n.min(limits.max_cpus));
    req.memory_mb = req.memory_mb.map(|n| n.min(limits.max_memory_mb));
    Ok(ttl_sec.min(limits.max_ttl_sec))
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
    if req.request_id.as_deref().is_some_and(|id| !valid_id(id)) {
        return Err(ApiError::bad_request(
            "request_id must be 16 to 64 of [0-9A-Za-z_-]",
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
    check_credentials(req.agent, &req.credentials).map_err(ApiError::bad_request)?;
    Ok(ttl_sec)
}

/// Only the agent's own credential variables, each with a value the runtime can put in an
/// environment. The message names the variable, never its value.
fn check_credentials(agent: Agent, credentials: &Credentials) -> Result<(), String> {
    let allowed = agent.credential_vars();
    for (name, value) in credentials.iter() {
        if !allowed.contains(&name) {
            return Err(match allowed {
                [] => format!("credential {name:?}: the {agent} agent takes no credentials"),
                _ => format!(
                    "credential {name:?} is not one of {agent}'s ({})",
                    allowed.join(", ")
                ),
            });
        }
        if value.trim().is_empty() {
            return Err(format!("credential {name} is empty"));
        }
        if value.contains('\0') {
            return Err(format!("credential {name} contains a NUL byte"));
        }
        if value.len() > CREDENTIAL_LIMIT_BYTES {
            return Err(format!(
                "credential {name} is {} bytes, more than the {CREDENTIAL_LIMIT_BYTES} allowed",
                value.len()
            ));
        }
    }
    Ok(())
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

    fn with(agent: Agent, credentials: &[(&str, &str)]) -> Result<u64, ApiError> {
        validate(&CreateSession {
            credentials: credentials.iter().copied().collect(),
            ..req(agent)
        })
    }

    #[track_caller]
    fn refused(result: Result<u64, ApiError>, message: &str) {
        let err = result.unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.message, message);
    }

    #[test]
    fn an_agent_takes_its_own_credentials() {
        let claude = [
            ("ANTHROPIC_API_KEY", "sk-ant-a"),
            ("CLAUDE_CODE_OAUTH_TOKEN", "t"),
        ];
        assert!(with(Agent::Claude, &claude).is_ok());
        assert!(
            with(
                Agent::Codex,
                &[("CATTY_CODEX_AUTH", "{}"), ("OPENAI_API_KEY", "k")]
            )
            .is_ok()
        );
        assert!(with(Agent::Gemini, &[("GEMINI_API_KEY", "AIza")]).is_ok());
        assert!(with(Agent::Shell, &[]).is_ok());
    }

    #[test]
    fn another_agents_credential_is_refused_by_name() {
        refused(
            with(Agent::Claude, &[("OPENAI_API_KEY", "sk-secret")]),
            "credential \"OPENAI_API_KEY\" is not one of claude's \
             (ANTHROPIC_API_KEY, CLAUDE_CODE_OAUTH_TOKEN)",
        );
        refused(
            with(Agent::Shell, &[("ANTHROPIC_API_KEY", "sk-secret")]),
            "credential \"ANTHROPIC_API_KEY\": the shell agent takes no credentials",
        );
        refused(
            with(Agent::Gemini, &[("PATH", "/evil")]),
            "credential \"PATH\" is not one of gemini's (GEMINI_API_KEY)",
        );
    }

    #[test]
    fn empty_nul_and_oversize_values_are_refused_without_showing_them() {
        refused(
            with(Agent::Gemini, &[("GEMINI_API_KEY", " \n")]),
            "credential GEMINI_API_KEY is empty",
        );
        refused(
            with(Agent::Gemini, &[("GEMINI_API_KEY", "AIza\0secret")]),
            "credential GEMINI_API_KEY contains a NUL byte",
        );
        let big = "k".repeat(CREDENTIAL_LIMIT_BYTES + 1);
        refused(
            with(Agent::Codex, &[("CATTY_CODEX_AUTH", big.as_str())]),
            "credential CATTY_CODEX_AUTH is 65537 bytes, more than the 65536 allowed",
        );
        let most = "k".repeat(CREDENTIAL_LIMIT_BYTES);
        assert!(with(Agent::Codex, &[("CATTY_CODEX_AUTH", most.as_str())]).is_ok());
    }
}
