//! Where machines run: the `Provider` trait the daemon drives (create, wait until ready,
//! destroy, list, liveness), shaped for a remote machines API; `local.rs` implements it with
//! `catty exec` processes on this computer, `fly.rs` with Fly.io Machines.

mod fly;
mod launch;
mod local;
mod procfs;
mod runtime_process;
mod runtime_ttl;
mod sandbox;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::locks;
use crate::protocol::Agent;
use crate::protocol::api::CreateSession;
use crate::protocol::api::Credentials;
use crate::protocol::api::Ttl;
use crate::protocol::api::{LLM_TOKEN_VAR, LLM_URL_VAR};

pub use fly::Fly;
pub use local::{Local, LocalOptions};

/// What the daemon asks a provider to start for one session.
#[derive(Debug, Clone)]
pub struct MachineSpec {
    /// Written into the machine's metadata, so [`Provider::list`] can say whose it is.
    pub session_id: String,
    pub label: String,
    pub agent: Agent,
    /// A command to run instead of the agent.
    pub cmd: Option<Vec<String>>,
    pub region: Option<String>,
    pub cpus: Option<u32>,
    pub memory_mb: Option<u32>,
    /// The runtime ends the session after this long (`CATTY_TTL_SEC`).
    pub ttl_sec: u64,
    /// The runtime's `CONNECT_TOKEN`.
    pub connect_token: String,
    /// The `PATH` of the user's shell, where a local session finds its program.
    pub path: Option<String>,
    /// The agent's credentials from the request, checked by the daemon: they go into the
    /// runtime's environment and nowhere else (a spec is never stored). Always empty with a
    /// gateway.
    pub credentials: Credentials,
    /// The gateway and this session's token for it, when the daemon has a gateway.
    pub llm: Option<LlmAccess>,
}

/// How a session's agent reaches its provider: through the gateway at `url`, showing `token`
/// (bound to the session) where it would show a key. The token is a secret: `Debug` hides it.
#[derive(Clone)]
pub struct LlmAccess {
    pub url: String,
    pub token: String,
}

impl LlmAccess {
    /// The runtime's variables for it ([`LLM_URL_VAR`], [`LLM_TOKEN_VAR`]).
    pub fn env(&self) -> [(String, String); 2] {
        [
            (LLM_URL_VAR.to_string(), self.url.clone()),
            (LLM_TOKEN_VAR.to_string(), self.token.clone()),
        ]
    }
}

impl std::fmt::Debug for LlmAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmAccess")
            .field("url", &self.url)
            .field("token", &"<secret>")
            .finish()
    }
}

/// A machine that runs (or ran) one session's runtime. Kept in the session store as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// The provider's id of the machine.
    pub id: String,
    /// The session it belongs to, from the machine's own metadata.
    pub session_id: String,
    /// Base URL of its runtime; empty when the provider cannot tell (a machine found by
    /// [`Provider::list`] that never reported its address).
    pub connect_url: String,
    /// Extra headers for every request to the runtime (e.g. `fly-force-instance-id`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The provider's own data about the machine (local: pid and start time), opaque to the
    /// daemon.
    #[serde(default)]
    pub private: serde_json::Value,
}

/// What a provider knows about whether a machine still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// It runs, but its program exited with this code (128+N for a signal): the runtime
    /// stays a while so its output and work can be fetched.
    Exited(i32),
    /// Certainly gone: never answered for a failed or ambiguous lookup.
    Dead,
    /// The provider could not tell this time; ask again later.
    Unknown,
}

/// A place that runs machines. The daemon picks one implementation at start (generic
/// `Daemon<P>`), so the futures are plain `async fn`s that must be `Send`.
pub trait Provider: Send + Sync + 'static {
    /// Stored in each session record and shown by `catty list`.
    const NAME: &'static str;
    /// Whether one [`Provider::list`] answer is the whole truth, so that a session missing
    /// from it has no machine. True for local (`/proc` is the truth); a remote API's list can
    /// lag behind a create or come back empty on a bad day.
    const AUTHORITATIVE: bool;

    /// Why the session `req` asks for cannot start here, before anything is made: the line
    /// for the user. Fly's image has the agents, and a custom one is checked by its runtime.
    fn check(&self, req: &CreateSession) -> Result<(), String> {
        let _ = req;
        Ok(())
    }

    /// Creates and starts a machine for `spec`. On error nothing of it is left running.
    fn create(&self, spec: &MachineSpec) -> impl Future<Output = anyhow::Result<Machine>> + Send;

    /// Returns once the machine is started and its runtime answers `GET /healthz`, or fails
    /// after `timeout` with what went wrong (for local: where the runtime's log is).
    fn wait_ready(
        &self,
        machine: &Machine,
        timeout: Duration,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Stops the machine and frees what it used. Succeeds for a machine that is already gone.
    fn destroy(&self, machine: &Machine) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Every catty machine of this provider, including ones the daemon has no record of.
    fn list(&self) -> impl Future<Output = anyhow::Result<Vec<Machine>>> + Send;

    /// Whether the machine still runs. `Dead` only when certain; errors mean "ask again".
    fn alive(&self, machine: &Machine) -> impl Future<Output = anyhow::Result<Liveness>> + Send;

    /// Moves the session's deadline to `expires_at` (unix seconds): the provider's own
    /// backstop first (Fly: the machine's `expires_at` metadata, which its reaper reads), so
    /// nothing ends the machine before the runtime's new deadline; then the runtime itself,
    /// `POST /ttl` with the session's `token`. The runtime's answer.
    fn extend(
        &self,
        machine: &Machine,
        token: &str,
        expires_at: u64,
    ) -> impl Future<Output = anyhow::Result<Ttl>> + Send;

    /// The session's record is gone for good: drop whatever the provider kept for it (local:
    /// its directory with the runtime's log).
    fn forget(&self, session_id: &str) -> impl Future<Output = ()> + Send;

    /// The daemon is exiting: stop background work. Machines keep running.
    fn shutdown(&self) -> impl Future<Output = ()> + Send;
}

/// `POST /ttl` to the runtime at `base`, to end `expires_at` (unix seconds, at least a second
/// from now).
async fn tell_runtime(
    base: &str,
    headers: &BTreeMap<String, String>,
    token: &str,
    expires_at: u64,
) -> anyhow::Result<Ttl> {
    let in_sec = expires_at.saturating_sub(crate::clock::unix_now()).max(1);
    runtime_ttl::set_ttl(base, headers, token, in_sec).await
}

/// Marks an id as in flight (a session being created) in `set` for as long as it lives, even
/// when the work is cancelled halfway.
pub struct InFlight<'a> {
    set: &'a std::sync::Mutex<std::collections::HashSet<String>>,
    id: String,
}

impl<'a> InFlight<'a> {
    pub fn new(set: &'a std::sync::Mutex<std::collections::HashSet<String>>, id: &str) -> Self {
        locks::lock(set).insert(id.to_string());
        InFlight {
            set,
            id: id.to_string(),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        locks::lock(self.set).remove(&self.id);
    }
}
