//! HTTP bodies of the daemon (`catty api`) and of the runtime: JSON only, no I/O.
//!
//! Daemon endpoints (all but `/healthz` need `Authorization: Bearer <token from the state
//! directory's token file>`; a non-loopback `Host` or any `Origin` is 403):
//!
//! | method and path | body | answer |
//! | --- | --- | --- |
//! | `GET /healthz` | | `200 ok`, with the headers below |
//! | `POST /v1/sessions` | [`CreateSession`] | [`SessionCreated`] |
//! | `GET /v1/sessions` | | [`SessionList`] |
//! | `GET /v1/sessions/{id-or-label}` | | [`SessionInfo`] |
//! | `POST /v1/sessions/{id-or-label}/stop` | | [`SessionInfo`] |
//! | `POST /v1/sessions/{id-or-label}/extend` | [`ExtendSession`] | [`SessionInfo`] with the new `expires_at` (`409` once ended) |
//! | `POST /v1/sessions/stop-all` | | [`StopAll`] |
//! | `DELETE /v1/sessions/{id-or-label}` | | [`SessionInfo`] of the ended session it forgot (`409` while it is live) |
//!
//! The hosted API (`catty api --database-url`) serves the same endpoints to many users over
//! the internet: no loopback rule, and the bearer token is the user's own, minted at login
//! (`/v1/auth/…`, in `api/auth.rs`; the login's endpoints are public). It also says what
//! the user spent this month (`GET /v1/usage`, in `api/usage.rs`).
//!
//! `GET /v1/sessions` lists every session the daemon remembers, ended ones too, until
//! `catty api --keep-ended` (default a day) after their end; a client shows the live ones
//! unless asked for all. A session whose program exited stays `running` (its runtime keeps the
//! output and the work for its grace) with [`SessionInfo::exit_code`] set, and becomes
//! `exited` when its machine is gone; [`SessionInfo::shown_state`] is `exited` from the exit
//! on (what `catty list` shows) and [`SessionInfo::state_text`] says it for people.
//!
//! The daemon's `/healthz` tells a client who answers, so that a client never talks to a
//! daemon that is not the one it would start: [`DAEMON_VERSION_HEADER`] (a client of another
//! build restarts it; sessions outlive the daemon), [`DAEMON_PROVIDER_HEADER`] (a client
//! whose environment would choose the other provider refuses, naming the fix) and
//! [`DAEMON_PID_HEADER`] (whom to stop).
//!
//! Credentials come with the request that creates a session ([`CreateSession::credentials`]),
//! never from the daemon's own environment: `catty new` sends the first of the chosen agent's
//! [`Agent::credential_vars`] that is set where it runs (Codex's login file as
//! [`CODEX_AUTH_VAR`]), the one the agent would use. The daemon refuses (`400`) any other variable, an empty value, a NUL
//! and a value over [`CREDENTIAL_LIMIT_BYTES`]; it hands them to the session's runtime as
//! environment variables and keeps them nowhere (not in its store, not in its logs).
//!
//! A daemon with a gateway (`CATTY_GATEWAY_URL`, the hosted API's always) takes no credentials
//! at all: it refuses a request that brings any ([`NO_CREDENTIALS_WITH_GATEWAY`], `400`), and
//! a client sends none to a hosted API, nor to a daemon whose `/healthz` has
//! [`DAEMON_GATEWAY_HEADER`]. Each session's runtime gets the gateway's URL
//! ([`LLM_URL_VAR`]) and a token bound to that session ([`LLM_TOKEN_VAR`], `crate::llm_token`)
//! instead, and points each agent at the gateway's route for its provider
//! ([`GATEWAY_ANTHROPIC_ROUTE`], [`GATEWAY_OPENAI_ROUTE`], [`GATEWAY_GEMINI_ROUTE`]), which
//! puts the provider's key in place of the token. No provider key enters a machine.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod auth;
mod billing;
mod usage;
pub use auth::*;
pub use billing::*;
pub use usage::*;

/// The agents a session can run: the program started when no command is given, the
/// configuration the runtime prepares for it (`src/exec/agents/`), and the variables that
/// sign it in. On the wire, its lowercase name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Agent {
    #[default]
    Claude,
    Codex,
    Gemini,
    /// The login shell; nothing is prepared.
    Shell,
}

impl Agent {
    pub const ALL: [Agent; 4] = [Agent::Claude, Agent::Codex, Agent::Gemini, Agent::Shell];

    /// Its name on the wire, in `CATTY_AGENT` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Agent::Claude => "claude",
            Agent::Codex => "codex",
            Agent::Gemini => "gemini",
            Agent::Shell => "shell",
        }
    }

    /// The agent `name` names, if any.
    pub fn parse(name: &str) -> Option<Agent> {
        Agent::ALL.into_iter().find(|agent| agent.as_str() == name)
    }

    /// The variables that sign the agent in, the one it uses when several are set first: a
    /// session gets these (and only these) from the `catty new` that creates it.
    ///
    /// - Claude Code: an API key, or the one-year token `claude setup-token` prints for a
    ///   Pro/Max subscription. With both set it uses the key, which the runtime's profile
    ///   approves (tests/exec_agents/credentials.rs: its requests carry `x-api-key`).
    /// - Codex: the user's `auth.json` (a ChatGPT login), written back into a file by the
    ///   runtime; else an API key, which the runtime logs in with.
    /// - Gemini CLI: an API key.
    pub fn credential_vars(self) -> &'static [&'static str] {
        match self {
            Agent::Claude => &["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"],
            Agent::Codex => &[CODEX_AUTH_VAR, "OPENAI_API_KEY"],
            Agent::Gemini => &["GEMINI_API_KEY"],
            Agent::Shell => &[],
        }
    }

    /// The program the agent is, as the user types it: `claude`; none for the shell.
    pub fn program(self) -> Option<&'static str> {
        match self {
            Agent::Claude => Some("claude"),
            Agent::Codex => Some("codex"),
            Agent::Gemini => Some("gemini"),
            Agent::Shell => None,
        }
    }

    /// What the agent is called in messages: `Claude Code`.
    pub fn title(self) -> &'static str {
        match self {
            Agent::Claude => "Claude Code",
            Agent::Codex => "Codex",
            Agent::Gemini => "Gemini CLI",
            Agent::Shell => "the shell",
        }
    }

    /// The npm package that installs the agent.
    pub fn npm_package(self) -> Option<&'static str> {
        match self {
            Agent::Claude => Some("@anthropic-ai/claude-code"),
            Agent::Codex => Some("@openai/codex"),
            Agent::Gemini => Some("@google/gemini-cli"),
            Agent::Shell => None,
        }
    }

    /// For messages: `claude, codex, gemini or shell`.
    pub const CHOICES: &'static str = "claude, codex, gemini or shell";
}

// `pad`, not `write_str`: `catty list` lines agents up with `{:<8}`.
impl std::fmt::Display for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A name outside the agent set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAgent(pub String);

impl std::fmt::Display for UnknownAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown agent {:?} ({})", self.0, Agent::CHOICES)
    }
}

impl std::error::Error for UnknownAgent {}

impl TryFrom<String> for Agent {
    type Error = UnknownAgent;

    fn try_from(name: String) -> Result<Agent, UnknownAgent> {
        Agent::parse(&name).ok_or(UnknownAgent(name))
    }
}

impl From<Agent> for &'static str {
    fn from(agent: Agent) -> &'static str {
        agent.as_str()
    }
}

/// The contents of the user's Codex `auth.json` (`$CODEX_HOME/auth.json`, by default
/// `~/.codex/auth.json`: what `codex login` writes). The runtime writes it into the session's
/// own `$CODEX_HOME` and takes it out of the program's environment.
pub const CODEX_AUTH_VAR: &str = "CATTY_CODEX_AUTH";

/// The gateway's URL as the session's machine reaches it (`http://catty-gateway.flycast` on
/// Fly.io, `http://127.0.0.1:PORT` for a gateway beside a local daemon), in the runtime's
/// environment. The runtime turns it into each agent's own base-URL setting.
pub const LLM_URL_VAR: &str = "CATTY_LLM_URL";

/// The session's gateway token (`cst_<session id>.<MAC>`), in the runtime's environment beside
/// [`LLM_URL_VAR`]: what the agent shows the gateway where it would show a provider key. It
/// is good for this session only and only while it is live, so it may stay in the agent's
/// environment.
pub const LLM_TOKEN_VAR: &str = "CATTY_LLM_TOKEN";

/// The gateway's route for Anthropic's API: Claude Code's `ANTHROPIC_BASE_URL` is
/// `$CATTY_LLM_URL/anthropic`, so its `POST /v1/messages?beta=true` arrives as
/// `/anthropic/v1/messages?beta=true` with `Authorization: Bearer <token>`.
pub const GATEWAY_ANTHROPIC_ROUTE: &str = "/anthropic";
/// The gateway's route for OpenAI's API: Codex's provider `base_url` is
/// `$CATTY_LLM_URL/openai/v1`, so its requests arrive as `/openai/v1/responses` with
/// `Authorization: Bearer <token>`.
pub const GATEWAY_OPENAI_ROUTE: &str = "/openai";
/// The gateway's route for Gemini's API: Gemini CLI's `GOOGLE_GEMINI_BASE_URL` is
/// `$CATTY_LLM_URL/gemini`, so its requests arrive as
/// `/gemini/v1beta/models/<model>:streamGenerateContent?alt=sse` with `x-goog-api-key: <token>`.
pub const GATEWAY_GEMINI_ROUTE: &str = "/gemini";

/// Why a daemon with a gateway refuses a request that brings credentials (`400`).
pub const NO_CREDENTIALS_WITH_GATEWAY: &str =
    "this API meters agents through its gateway; it takes no provider credentials";

/// The most one credential may hold: API keys are ~100 bytes, OAuth tokens a few hundred, a
/// Codex `auth.json` (three JWTs) a few KiB.
pub const CREDENTIAL_LIMIT_BYTES: usize = 64 * 1024;

/// Credentials by variable name (`ANTHROPIC_API_KEY` → the key). Secrets: its `Debug` names
/// the variables and never shows a value, so a logged request or spec leaks nothing.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Credentials(BTreeMap<String, String>);

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Every credential, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Credentials")
            .field(&self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Credentials {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        Credentials(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// The daemon's build (`0.1.0+<build id>`, see `crate::version`) in its `/healthz` answer.
pub const DAEMON_VERSION_HEADER: &str = "x-catty-version";
/// The daemon's provider (`local` or `fly`) in its `/healthz` answer.
pub const DAEMON_PROVIDER_HEADER: &str = "x-catty-provider";
/// In the daemon's `/healthz` answer (`on`) when its sessions go through a gateway: a client
/// then sends no credentials ([`NO_CREDENTIALS_WITH_GATEWAY`]).
pub const DAEMON_GATEWAY_HEADER: &str = "x-catty-gateway";
/// The daemon's process id in its `/healthz` answer: a client stops it with SIGTERM (it
/// drains and exits; its sessions keep running).
pub const DAEMON_PID_HEADER: &str = "x-catty-pid";

/// Why a session with a region cannot be local, and what to do: said by the client before it
/// asks, and by the daemon to any client that asks anyway (400).
pub const NO_LOCAL_REGIONS: &str = "the local provider runs sessions on this computer and has \
     no regions; leave out --region, or set FLY_API_TOKEN to use Fly.io";

/// `POST /v1/sessions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSession {
    pub agent: Agent,
    /// A command to run instead of the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Where the machine runs: a provider's region (Fly.io's `ams`); the local provider
    /// has none and refuses one ([`NO_LOCAL_REGIONS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_sec: Option<u64>,
    /// The `PATH` of the shell that asked: on this computer, the session runs the program
    /// that shell would (the agent as the user installed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Chosen by the client (16 to 64 of `[0-9A-Za-z_-]`) and sent again with every try of
    /// this create: a retry after a lost answer gets the session the first try made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The agent's credentials from the environment of the `catty new` that asks (module doc).
    #[serde(default, skip_serializing_if = "Credentials::is_empty")]
    pub credentials: Credentials,
}

/// Answer to `POST /v1/sessions`: everything a client needs to upload and attach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCreated {
    pub session_id: String,
    pub label: String,
    pub machine_id: String,
    /// Base URL of the runtime (`http://…` or `https://…`); `/upload` and `/connect` hang off it.
    pub connect_url: String,
    pub connect_token: String,
    /// Extra headers for every request to the runtime (e.g. `fly-force-instance-id`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// The machine is being created.
    Starting,
    Running,
    /// Stopped by a user (`catty stop`, stop-all).
    Stopped,
    /// Its TTL passed; the machine was destroyed.
    Expired,
    /// Its program exited ([`SessionInfo::exit_code`] says how) and its machine is gone.
    Exited,
    /// The machine is gone for another reason (lost, or it never started).
    Gone,
}

impl SessionState {
    /// Its name on the wire and in `catty list`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Starting => "starting",
            SessionState::Running => "running",
            SessionState::Stopped => "stopped",
            SessionState::Expired => "expired",
            SessionState::Exited => "exited",
            SessionState::Gone => "gone",
        }
    }

    /// Whether a client can still attach.
    pub fn is_live(self) -> bool {
        matches!(self, SessionState::Starting | SessionState::Running)
    }
}

/// One session as the daemon knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub session_id: String,
    pub label: String,
    pub state: SessionState,
    pub agent: Agent,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub machine_id: String,
    /// Unix seconds.
    pub created_at: u64,
    pub expires_at: u64,
    pub connect_url: String,
    pub connect_token: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The command it runs instead of an agent (`catty new -- CMD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// How its program exited (128+N for a signal), once the daemon knows: while the session
    /// is still `running` (its runtime stays for the grace) and once it is `exited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// When it stopped being live (unix seconds); ended sessions are forgotten some time
    /// after (`catty api --keep-ended`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<u64>,
}

impl SessionInfo {
    /// Its state as `catty list` shows it: `exited` as soon as its program exited, even while
    /// the record is still `running` (its runtime stays for the grace).
    pub fn shown_state(&self) -> SessionState {
        match (self.state, self.exit_code) {
            (SessionState::Running, Some(_)) => SessionState::Exited,
            (state, _) => state,
        }
    }

    /// Its state for people: `running`, `exited (code N)` as soon as its program exited,
    /// `stopped`, `expired`, `gone`.
    pub fn state_text(&self) -> String {
        match (self.shown_state(), self.exit_code) {
            (SessionState::Exited, Some(code)) => format!("exited (code {code})"),
            (state, _) => state.as_str().to_string(),
        }
    }

    /// What it runs, for people: the command of `catty new -- CMD`, else the agent's name.
    pub fn program_text(&self) -> String {
        match &self.cmd {
            Some(argv) if !argv.is_empty() => argv.join(" "),
            _ => self.agent.as_str().to_string(),
        }
    }
}

/// `GET /v1/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionList {
    pub sessions: Vec<SessionInfo>,
}

/// `POST /v1/sessions/stop-all`: how many machines were destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopAll {
    pub stopped: u64,
}

/// Every error answer: `{"error":{"code":"…","message":"…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `unauthorized`, `bad_archive`, `too_large`, `conflict`, …
    pub code: String,
    /// One line for a human.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: message.into(),
            },
        }
    }
}

/// The longest time to live a session may have, from its creation: a week. `POST
/// /v1/sessions` refuses more, and an extension (daemon and runtime) stops there.
pub const MAX_TTL_SEC: u64 = 7 * 86400;

/// `POST /v1/sessions/{id-or-label}/extend`: `by_sec` more seconds on the session's current
/// deadline (at least 1; the deadline stops at [`MAX_TTL_SEC`] from the creation). Answers the
/// session's [`SessionInfo`] with its new `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendSession {
    pub by_sec: u64,
}

/// `POST /ttl` to a runtime: end the session `in_sec` seconds from now (at least 1; at most
/// [`MAX_TTL_SEC`] from the runtime's start, where it is clamped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetTtl {
    pub in_sec: u64,
}

/// `200` answer of `POST /ttl`: the deadline the runtime took, in seconds from now and as
/// unix seconds by its clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ttl {
    pub in_sec: u64,
    pub expires_at: u64,
}

/// `200` answer of `POST /upload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadDone {
    pub files: u64,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_by_name() {
        for agent in Agent::ALL {
            let wire = format!("\"{agent}\"");
            assert_eq!(serde_json::to_string(&agent).unwrap(), wire);
            assert_eq!(serde_json::from_str::<Agent>(&wire).unwrap(), agent);
        }
        let err = serde_json::from_str::<CreateSession>(r#"{"agent":"vim"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown agent \"vim\" (claude, codex, gemini or shell)"),
            "{err}"
        );
    }

    #[test]
    fn each_agent_has_its_own_credentials() {
        assert_eq!(
            Agent::Claude.credential_vars(),
            ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"]
        );
        assert_eq!(
            Agent::Codex.credential_vars(),
            ["CATTY_CODEX_AUTH", "OPENAI_API_KEY"]
        );
        assert_eq!(Agent::Gemini.credential_vars(), ["GEMINI_API_KEY"]);
        assert!(Agent::Shell.credential_vars().is_empty());
    }

    #[test]
    fn credentials_travel_as_a_plain_map_and_only_when_there_are_some() {
        let none = CreateSession::default();
        assert_eq!(
            serde_json::to_string(&none).unwrap(),
            r#"{"agent":"claude"}"#
        );
        let req = CreateSession {
            credentials: [("ANTHROPIC_API_KEY", "sk-ant-secret")]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let wire = r#"{"agent":"claude","credentials":{"ANTHROPIC_API_KEY":"sk-ant-secret"}}"#;
        assert_eq!(serde_json::to_string(&req).unwrap(), wire);
        assert_eq!(serde_json::from_str::<CreateSession>(wire).unwrap(), req);
    }

    #[test]
    fn debug_names_the_credentials_but_never_shows_them() {
        let req = CreateSession {
            credentials: [
                ("ANTHROPIC_API_KEY", "sk-ant-secret"),
                ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-secret"),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let debug = format!("{req:?} {req:#?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(
            debug.contains(
                r#"credentials: Credentials(["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"])"#
            ),
            "{debug}"
        );
    }

    #[test]
    fn agents_line_up_in_columns() {
        assert_eq!(format!("{:<8}|", Agent::Shell), "shell   |");
    }

    #[test]
    fn session_state_names_match_the_wire() {
        for state in [
            SessionState::Starting,
            SessionState::Running,
            SessionState::Stopped,
            SessionState::Expired,
            SessionState::Exited,
            SessionState::Gone,
        ] {
            let wire = serde_json::to_string(&state).unwrap();
            assert_eq!(wire, format!("\"{}\"", state.as_str()));
        }
    }

    #[test]
    fn golden() {
        let err = ErrorBody::new("bad_archive", "entry \"../x\": path leaves the workspace");
        let wire = r#"{"error":{"code":"bad_archive","message":"entry \"../x\": path leaves the workspace"}}"#;
        assert_eq!(serde_json::to_string(&err).unwrap(), wire);
        assert_eq!(serde_json::from_str::<ErrorBody>(wire).unwrap(), err);

        let done = UploadDone {
            files: 3,
            bytes: 10,
        };
        assert_eq!(
            serde_json::to_string(&done).unwrap(),
            r#"{"files":3,"bytes":10}"#
        );
    }

    #[test]
    fn ttl_bodies_golden() {
        let extend = ExtendSession { by_sec: 3600 };
        let wire = r#"{"by_sec":3600}"#;
        assert_eq!(serde_json::to_string(&extend).unwrap(), wire);
        assert_eq!(serde_json::from_str::<ExtendSession>(wire).unwrap(), extend);
        let set = SetTtl { in_sec: 90 };
        assert_eq!(serde_json::to_string(&set).unwrap(), r#"{"in_sec":90}"#);
        let ttl = Ttl {
            in_sec: 90,
            expires_at: 1_700_000_090,
        };
        let wire = r#"{"in_sec":90,"expires_at":1700000090}"#;
        assert_eq!(serde_json::to_string(&ttl).unwrap(), wire);
        assert_eq!(serde_json::from_str::<Ttl>(wire).unwrap(), ttl);
    }

    #[test]
    fn ttl_bodies_refuse_what_is_not_a_count_of_seconds() {
        for bad in [
            r#"{}"#,
            r#"{"by_sec":-1}"#,
            r#"{"by_sec":"1h"}"#,
            r#"{"by_sec":1.5}"#,
        ] {
            assert!(serde_json::from_str::<ExtendSession>(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<SetTtl>(r#"{"in_sec":-3}"#).is_err());
    }
}
