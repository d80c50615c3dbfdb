//! Flags plus `CATTY_*` environment into validated configuration. The only place that reads
//! the environment; precedence is flag, then environment, then default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{ApiArgs, ExecArgs, NewArgs};
use crate::protocol::api::CreateSession;

/// A configuration problem: the user's input is wrong (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Output bytes a session keeps for resuming clients (the protocol promises at least 8 MiB).
pub const OUTPUT_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// How long the final output stays readable after the program exits, unless configured.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);

/// Everything `catty exec` needs.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    pub addr: SocketAddr,
    pub token: Option<String>,
    pub workspace: PathBuf,
    /// Whose configuration the runtime prepares before the program starts (`CATTY_AGENT`).
    pub agent: Agent,
    pub command: Vec<String>,
    /// The program's environment: ours, minus the connect token, plus `TERM`.
    pub child_env: Vec<(String, String)>,
    pub ttl: Option<Duration>,
    pub grace: Duration,
    pub buffer_bytes: usize,
}

impl ExecConfig {
    pub fn new(args: ExecArgs, env: impl Fn(&str) -> Option<String>) -> Result<Self, UsageError> {
        let addr = args
            .addr
            .or_else(|| env("CATTY_EXEC_ADDR"))
            .unwrap_or_else(|| "0.0.0.0:8080".into());
        let addr = addr.parse().map_err(|_| {
            UsageError(format!(
                "CATTY_EXEC_ADDR / --addr: {addr:?} is not HOST:PORT"
            ))
        })?;
        let token = match (
            args.insecure_no_token,
            env("CONNECT_TOKEN").filter(|t| !t.is_empty()),
        ) {
            (true, _) => None,
            (false, Some(token)) => Some(token),
            (false, None) => {
                return Err(UsageError(
                    "CONNECT_TOKEN is not set (use --insecure-no-token for local experiments)"
                        .into(),
                ));
            }
        };
        let agent = match env("CATTY_AGENT").filter(|a| !a.is_empty()) {
            Some(name) => Agent::parse(&name).ok_or_else(|| {
                UsageError(format!(
                    "CATTY_AGENT {name:?} is unknown (claude, codex, gemini or shell)"
                ))
            })?,
            None => Agent::Shell,
        };
        // A command given with an agent (`--agent claude -- claude --resume`) still gets the
        // agent's preparation; without one, the agent's own program runs.
        let command = if !args.command.is_empty() {
            args.command
        } else if let Some(cmd) = env("CATTY_CMD").filter(|c| !c.trim().is_empty()) {
            parse_command(&cmd)?
        } else {
            agent_command(agent, env("SHELL"))
        };
        Ok(ExecConfig {
            addr,
            token,
            workspace: args
                .workspace
                .or_else(|| env("CATTY_WORKSPACE"))
                .unwrap_or_else(|| "/workspace".into())
                .into(),
            agent,
            command,
            child_env: Vec::new(),
            ttl: seconds(args.ttl_sec, env("CATTY_TTL_SEC"), "CATTY_TTL_SEC")?,
            grace: seconds(args.grace_sec, env("CATTY_GRACE_SEC"), "CATTY_GRACE_SEC")?
                .unwrap_or(DEFAULT_GRACE),
            buffer_bytes: OUTPUT_BUFFER_BYTES,
        })
    }

    /// Fills in the program's environment from the runtime's own.
    pub fn with_child_env(mut self, vars: impl Iterator<Item = (String, String)>) -> Self {
        let mut env: Vec<_> = vars
            .filter(|(k, _)| k != "CONNECT_TOKEN" && k != "TERM")
            .collect();
        env.push(("TERM".into(), "xterm-256color".into()));
        self.child_env = env;
        self
    }
}

/// Where the daemon listens unless `CATTY_API_ADDR` says otherwise.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:4815";

/// Where machines run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Local,
    Fly,
}

/// Everything `catty api` needs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub addr: SocketAddr,
    /// Token file, session store, logs and local workspaces live here.
    pub state_dir: PathBuf,
    pub provider: ProviderKind,
    /// Run local sessions under bubblewrap when it is installed.
    pub sandbox: bool,
    /// This binary, started as `catty exec` for local sessions.
    pub exe: PathBuf,
    /// Passed to every session: the agents' API keys.
    pub agent_env: Vec<(String, String)>,
    /// Set when the provider is Fly.io.
    pub fly: Option<FlyConfig>,
}

/// The Machines API's address unless `FLY_MACHINES_API_BASE` says otherwise.
pub const DEFAULT_FLY_API_BASE: &str = "https://api.machines.dev";
/// The Fly app session machines run in unless `CATTY_EXEC_APP` says otherwise.
pub const DEFAULT_EXEC_APP: &str = "catty-exec";
/// How long a new machine may take to reach `started` (pulling a large image onto a fresh
/// host takes a while) unless `CATTY_FLY_START_TIMEOUT` says otherwise.
pub const DEFAULT_FLY_START_TIMEOUT: Duration = Duration::from_secs(180);

/// What the Fly.io provider needs (SPEC section 3).
#[derive(Clone)]
pub struct FlyConfig {
    /// `FLY_API_TOKEN` as the user gave it; the provider picks the scheme.
    pub token: String,
    /// `FLY_MACHINES_API_BASE`, without a trailing slash.
    pub api_base: String,
    /// `CATTY_EXEC_APP`.
    pub app: String,
    /// Base URL of the runtimes, without a trailing slash: `CATTY_EXEC_URL`, else
    /// `https://` and `CATTY_EXEC_HOST` (default `<app>.fly.dev`).
    pub exec_url: String,
    /// `CATTY_IMAGE`; otherwise the provider finds the image of the app's machines.
    pub image: Option<String>,
    /// `CATTY_FLY_START_TIMEOUT`: a machine not `started` by then is destroyed.
    pub start_timeout: Duration,
}

// By hand: the token must never reach a log.
impl std::fmt::Debug for FlyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlyConfig")
            .field("token", &"<redacted>")
            .field("api_base", &self.api_base)
            .field("app", &self.app)
            .field("exec_url", &self.exec_url)
            .field("image", &self.image)
            .field("start_timeout", &self.start_timeout)
            .finish()
    }
}

impl FlyConfig {
    pub fn new(env: &impl Fn(&str) -> Option<String>) -> Result<Self, UsageError> {
        let set = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let token = set("FLY_API_TOKEN").ok_or_else(|| {
            UsageError("FLY_API_TOKEN is not set (the fly provider needs it)".into())
        })?;
        let api_base = set("FLY_MACHINES_API_BASE").unwrap_or_else(|| DEFAULT_FLY_API_BASE.into());
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            return Err(UsageError(format!(
                "FLY_MACHINES_API_BASE {api_base:?} is not an http(s):// URL"
            )));
        }
        let app = set("CATTY_EXEC_APP").unwrap_or_else(|| DEFAULT_EXEC_APP.into());
        let start_timeout = match set("CATTY_FLY_START_TIMEOUT") {
            Some(text) => parse_duration(&text)
                .map_err(|e| UsageError(format!("CATTY_FLY_START_TIMEOUT: {e}")))?,
            None => DEFAULT_FLY_START_TIMEOUT,
        };
        Ok(FlyConfig {
            token,
            api_base: api_base.trim_end_matches('/').to_string(),
            exec_url: exec_url(set("CATTY_EXEC_URL"), set("CATTY_EXEC_HOST"), &app)?,
            app,
            image: set("CATTY_IMAGE"),
            start_timeout,
        })
    }
}

/// The runtimes' base URL: `CATTY_EXEC_URL` as given (custom domains, tests), else
/// `https://<CATTY_EXEC_HOST or <app>.fly.dev>`. Attaches upgrade it to a WebSocket.
fn exec_url(url: Option<String>, host: Option<String>, app: &str) -> Result<String, UsageError> {
    if let Some(url) = url {
        let base = url.trim_end_matches('/');
        let scheme = match base.split_once("://") {
            Some(("https" | "wss", rest)) if is_base(rest) => "https",
            Some(("http" | "ws", rest)) if is_base(rest) => "http",
            _ => {
                return Err(UsageError(format!(
                    "CATTY_EXEC_URL {url:?} is not a base URL like https://exec.example.com"
                )));
            }
        };
        let rest = base.split_once("://").map_or("", |(_, rest)| rest);
        return Ok(format!("{scheme}://{rest}"));
    }
    let host = host.unwrap_or_else(|| format!("{app}.fly.dev"));
    if host.contains(['/', '?', '#', '@']) || host.is_empty() {
        return Err(UsageError(format!(
            "CATTY_EXEC_HOST {host:?} is not a host name (use CATTY_EXEC_URL for a full URL)"
        )));
    }
    Ok(format!("https://{host}"))
}

/// What follows `scheme://` in a base URL: a host, maybe a path, no query.
fn is_base(rest: &str) -> bool {
    !rest.is_empty() && !rest.starts_with('/') && !rest.contains(['?', '#', '@'])
}

impl ApiConfig {
    pub fn new(args: ApiArgs, env: impl Fn(&str) -> Option<String>) -> Result<Self, UsageError> {
        let provider = match args.provider.as_deref() {
            Some("local") => ProviderKind::Local,
            Some("fly") => ProviderKind::Fly,
            Some(other) => {
                return Err(UsageError(format!(
                    "--provider {other:?} is unknown (local or fly)"
                )));
            }
            None if env("FLY_API_TOKEN").is_some_and(|t| !t.is_empty()) => ProviderKind::Fly,
            None => ProviderKind::Local,
        };
        let agent_env = ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"]
            .iter()
            .filter_map(|k| env(k).filter(|v| !v.is_empty()).map(|v| (k.to_string(), v)))
            .collect();
        Ok(ApiConfig {
            addr: api_addr(args.addr, &env)?,
            state_dir: state_dir(&env)?,
            provider,
            sandbox: !args.no_sandbox,
            exe: current_exe()?,
            agent_env,
            fly: match provider {
                ProviderKind::Fly => Some(FlyConfig::new(&env)?),
                ProviderKind::Local => None,
            },
        })
    }
}

/// What every client command needs to reach (or start) the daemon.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub api_addr: SocketAddr,
    pub state_dir: PathBuf,
    /// This binary, started as `catty api` when no daemon answers.
    pub exe: PathBuf,
}

impl ClientConfig {
    pub fn new(env: impl Fn(&str) -> Option<String>) -> Result<Self, UsageError> {
        Ok(ClientConfig {
            api_addr: api_addr(None, &env)?,
            state_dir: state_dir(&env)?,
            exe: current_exe()?,
        })
    }
}

/// The agent whose program `program` is (`claude`, `/usr/bin/codex`, …), if any.
fn agent_of_program(program: &str) -> Option<&'static str> {
    let name = program.rsplit('/').next()?;
    match Agent::parse(name)? {
        Agent::Shell => None,
        agent => Some(agent.name()),
    }
}

/// What `catty new` asks for.
#[derive(Debug, Clone)]
pub struct NewOptions {
    pub create: CreateSession,
    pub upload: bool,
}

impl NewOptions {
    pub fn new(args: NewArgs) -> Result<Self, UsageError> {
        let agent = match args.agent {
            Some(name) if Agent::parse(&name).is_some() => name,
            Some(name) => {
                return Err(UsageError(format!(
                    "--agent {name:?} is unknown (claude, codex, gemini or shell)"
                )));
            }
            None => match args.command.first() {
                // `catty new -- claude --resume` still gets Claude Code's preparation.
                Some(program) => agent_of_program(program).unwrap_or("shell").into(),
                None => "claude".into(),
            },
        };
        let ttl_sec = args
            .ttl
            .as_deref()
            .map(parse_duration)
            .transpose()?
            .map(|d| d.as_secs());
        let cmd = (!args.command.is_empty()).then_some(args.command);
        let create = CreateSession {
            agent,
            cmd,
            region: args.region,
            cpus: args.cpus,
            memory_mb: args.memory_mb,
            ttl_sec,
        };
        Ok(NewOptions {
            create,
            upload: !args.no_upload,
        })
    }
}

fn current_exe() -> Result<PathBuf, UsageError> {
    std::env::current_exe().map_err(|e| UsageError(format!("cannot find the catty binary: {e}")))
}

fn api_addr(
    flag: Option<String>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<SocketAddr, UsageError> {
    let addr = flag
        .or_else(|| env("CATTY_API_ADDR"))
        .unwrap_or_else(|| DEFAULT_API_ADDR.into());
    addr.parse().map_err(|_| {
        UsageError(format!(
            "CATTY_API_ADDR / --addr: {addr:?} is not HOST:PORT"
        ))
    })
}

/// `$XDG_STATE_HOME/catty`, else `~/.local/state/catty`.
fn state_dir(env: &impl Fn(&str) -> Option<String>) -> Result<PathBuf, UsageError> {
    if let Some(dir) = env("XDG_STATE_HOME").filter(|d| d.starts_with('/')) {
        return Ok(PathBuf::from(dir).join("catty"));
    }
    let home = env("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| UsageError("HOME is not set".into()))?;
    Ok(PathBuf::from(home).join(".local/state/catty"))
}

/// A duration as typed by a user: `90s`, `45m`, `2h`, `1d`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, UsageError> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 && scale > 0 => Ok(Duration::from_secs(n * scale)),
        _ => Err(UsageError(format!(
            "{text:?} is not a duration (like 90s, 45m, 2h)"
        ))),
    }
}

fn seconds(
    flag: Option<u64>,
    env: Option<String>,
    name: &str,
) -> Result<Option<Duration>, UsageError> {
    let value = match (flag, env) {
        (Some(v), _) => v,
        (None, Some(s)) => s
            .trim()
            .parse()
            .map_err(|_| UsageError(format!("{name} must be whole seconds, got {s:?}")))?,
        (None, None) => return Ok(None),
    };
    Ok(Some(Duration::from_secs(value)))
}

/// `CATTY_CMD`: a JSON array of arguments, or a command line for `/bin/sh -c`.
fn parse_command(cmd: &str) -> Result<Vec<String>, UsageError> {
    if cmd.trim_start().starts_with('[') {
        let argv: Vec<String> = serde_json::from_str(cmd)
            .map_err(|e| UsageError(format!("CATTY_CMD is not a JSON array of strings: {e}")))?;
        if argv.is_empty() {
            return Err(UsageError("CATTY_CMD is an empty array".into()));
        }
        return Ok(argv);
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), cmd.into()])
}

/// The agent a session runs: the program started when no command is given, and the
/// configuration the runtime prepares for it (`src/exec/agents.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    Claude,
    Codex,
    Gemini,
    /// The login shell; nothing is prepared.
    Shell,
}

impl Agent {
    /// The agent `CATTY_AGENT` names.
    pub fn parse(name: &str) -> Option<Agent> {
        match name {
            "claude" => Some(Agent::Claude),
            "codex" => Some(Agent::Codex),
            "gemini" => Some(Agent::Gemini),
            "shell" => Some(Agent::Shell),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Agent::Claude => "claude",
            Agent::Codex => "codex",
            Agent::Gemini => "gemini",
            Agent::Shell => "shell",
        }
    }
}

/// The program an agent stands for.
fn agent_command(agent: Agent, shell: Option<String>) -> Vec<String> {
    match agent {
        Agent::Claude => vec!["claude".into()],
        Agent::Codex => vec!["codex".into()],
        Agent::Gemini => vec!["gemini".into()],
        Agent::Shell => vec![
            shell
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/bash".into()),
            "-l".into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn args() -> ExecArgs {
        ExecArgs {
            addr: None,
            workspace: None,
            ttl_sec: None,
            grace_sec: None,
            insecure_no_token: false,
            command: vec![],
        }
    }

    fn config(args: ExecArgs, vars: &[(&str, &str)]) -> Result<ExecConfig, UsageError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ExecConfig::new(args, |k| vars.get(k).cloned())
    }

    #[test]
    fn token_is_required() {
        let err = config(args(), &[]).unwrap_err();
        assert!(err.0.contains("CONNECT_TOKEN"));
        let ok = config(
            ExecArgs {
                insecure_no_token: true,
                ..args()
            },
            &[],
        )
        .unwrap();
        assert_eq!(ok.token, None);
    }

    #[test]
    fn flag_beats_env_beats_default() {
        let c = config(args(), &[("CONNECT_TOKEN", "t")]).unwrap();
        assert_eq!(c.addr.to_string(), "0.0.0.0:8080");
        assert_eq!(c.grace, DEFAULT_GRACE);
        let c = config(
            args(),
            &[
                ("CONNECT_TOKEN", "t"),
                ("CATTY_EXEC_ADDR", "127.0.0.1:0"),
                ("CATTY_GRACE_SEC", "3"),
            ],
        )
        .unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:0");
        assert_eq!(c.grace, Duration::from_secs(3));
        let flagged = ExecArgs {
            addr: Some("127.0.0.1:9".into()),
            ..args()
        };
        let c = config(
            flagged,
            &[("CONNECT_TOKEN", "t"), ("CATTY_EXEC_ADDR", "127.0.0.1:0")],
        )
        .unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:9");
    }

    #[test]
    fn commands() {
        let cmd = |vars: &[(&str, &str)]| {
            let mut all = vec![("CONNECT_TOKEN", "t")];
            all.extend_from_slice(vars);
            config(args(), &all).map(|c| c.command)
        };
        assert_eq!(
            cmd(&[("CATTY_CMD", r#"["seq","3"]"#)]).unwrap(),
            ["seq", "3"]
        );
        assert_eq!(
            cmd(&[("CATTY_CMD", "echo hi | cat")]).unwrap(),
            ["/bin/sh", "-c", "echo hi | cat"]
        );
        assert_eq!(
            cmd(&[("CATTY_AGENT", "shell"), ("SHELL", "/bin/zsh")]).unwrap(),
            ["/bin/zsh", "-l"]
        );
        assert_eq!(cmd(&[("CATTY_AGENT", "claude")]).unwrap(), ["claude"]);
        assert_eq!(cmd(&[("CATTY_AGENT", "gemini")]).unwrap(), ["gemini"]);
        assert!(cmd(&[("CATTY_AGENT", "vi")]).is_err());
        assert!(cmd(&[("CATTY_CMD", "[]")]).is_err());
        assert!(cmd(&[("CATTY_CMD", "[1]")]).is_err());
        assert!(cmd(&[("CATTY_TTL_SEC", "soon")]).is_err());
    }

    #[test]
    fn agent_profile_applies_to_a_given_command_too() {
        let c = config(
            args(),
            &[
                ("CONNECT_TOKEN", "t"),
                ("CATTY_AGENT", "claude"),
                ("CATTY_CMD", r#"["claude","--resume"]"#),
            ],
        )
        .unwrap();
        assert_eq!(
            (c.agent, &c.command[..]),
            (
                Agent::Claude,
                &["claude".to_string(), "--resume".to_string()][..]
            )
        );
        let c = config(args(), &[("CONNECT_TOKEN", "t"), ("CATTY_AGENT", "")]).unwrap();
        assert_eq!(c.agent, Agent::Shell);
        let err = config(args(), &[("CONNECT_TOKEN", "t"), ("CATTY_AGENT", "vi")]).unwrap_err();
        assert!(
            err.0.contains("claude, codex, gemini or shell"),
            "{}",
            err.0
        );
    }

    #[test]
    fn new_infers_the_agent_from_the_command() {
        let agent = |agent: Option<&str>, command: &[&str]| {
            let args = NewArgs {
                agent: agent.map(String::from),
                no_upload: false,
                region: None,
                cpus: None,
                memory_mb: None,
                ttl: None,
                command: command.iter().map(|c| c.to_string()).collect(),
            };
            NewOptions::new(args).map(|o| o.create.agent)
        };
        assert_eq!(agent(None, &[]).unwrap(), "claude");
        assert_eq!(agent(None, &["claude", "--resume"]).unwrap(), "claude");
        assert_eq!(agent(None, &["/usr/local/bin/codex"]).unwrap(), "codex");
        assert_eq!(agent(None, &["bash"]).unwrap(), "shell");
        assert_eq!(agent(None, &["shell"]).unwrap(), "shell");
        assert_eq!(agent(Some("gemini"), &[]).unwrap(), "gemini");
        assert!(agent(Some("vi"), &[]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("45m").unwrap(), Duration::from_secs(2700));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        for bad in ["", "0", "h", "2w", "1.5h", "-3"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn state_dir_follows_xdg() {
        let vars = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let v = vars(&[("XDG_STATE_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(
            state_dir(&|k: &str| v.get(k).cloned()).unwrap(),
            PathBuf::from("/x/catty")
        );
        let v = vars(&[("HOME", "/h")]);
        assert_eq!(
            state_dir(&|k: &str| v.get(k).cloned()).unwrap(),
            PathBuf::from("/h/.local/state/catty")
        );
    }

    fn api_config(provider: Option<&str>, vars: &[(&str, &str)]) -> Result<ApiConfig, UsageError> {
        let mut all: HashMap<String, String> = [("HOME", "/h")]
            .iter()
            .chain(vars)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.retain(|_, v| !v.is_empty());
        let args = ApiArgs {
            provider: provider.map(str::to_string),
            addr: None,
            no_sandbox: false,
        };
        ApiConfig::new(args, |k| all.get(k).cloned())
    }

    #[test]
    fn fly_is_chosen_by_its_token_or_the_flag() {
        let c = api_config(None, &[]).unwrap();
        assert_eq!((c.provider, c.fly.is_none()), (ProviderKind::Local, true));
        let c = api_config(None, &[("FLY_API_TOKEN", "fm2_abc")]).unwrap();
        assert_eq!(c.provider, ProviderKind::Fly);
        let fly = c.fly.unwrap();
        assert_eq!(fly.token, "fm2_abc");
        assert_eq!(fly.api_base, "https://api.machines.dev");
        assert_eq!(fly.app, "catty-exec");
        assert_eq!(fly.exec_url, "https://catty-exec.fly.dev");
        assert_eq!(fly.image, None);
        assert_eq!(fly.start_timeout, DEFAULT_FLY_START_TIMEOUT);
        assert!(
            !format!("{fly:?}").contains("fm2_abc"),
            "the token stays out of logs"
        );
        let c = api_config(Some("local"), &[("FLY_API_TOKEN", "t")]).unwrap();
        assert_eq!(c.provider, ProviderKind::Local);
        let err = api_config(Some("fly"), &[]).unwrap_err();
        assert!(err.0.contains("FLY_API_TOKEN"), "{}", err.0);
    }

    #[test]
    fn fly_urls() {
        let fly = |vars: &[(&str, &str)]| {
            let mut all = vec![("FLY_API_TOKEN", "t")];
            all.extend_from_slice(vars);
            api_config(Some("fly"), &all).map(|c| c.fly.unwrap())
        };
        let c = fly(&[("CATTY_EXEC_APP", "my-exec")]).unwrap();
        assert_eq!(c.exec_url, "https://my-exec.fly.dev");
        let c = fly(&[("CATTY_EXEC_HOST", "exec.example.com")]).unwrap();
        assert_eq!(c.exec_url, "https://exec.example.com");
        let url = [
            ("https://exec.example.com/", "https://exec.example.com"),
            ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
            ("wss://e.example/base", "https://e.example/base"),
            ("ws://127.0.0.1:1", "http://127.0.0.1:1"),
        ];
        for (given, want) in url {
            let c = fly(&[("CATTY_EXEC_URL", given), ("CATTY_EXEC_HOST", "ignored")]).unwrap();
            assert_eq!(c.exec_url, want);
        }
        for bad in [
            "exec.example.com",
            "https://",
            "https:///x",
            "https://h?x=1",
            "ftp://h",
        ] {
            assert!(fly(&[("CATTY_EXEC_URL", bad)]).is_err(), "{bad}");
        }
        assert!(fly(&[("CATTY_EXEC_HOST", "https://h")]).is_err());
        let c = fly(&[
            ("FLY_MACHINES_API_BASE", "http://127.0.0.1:4280/"),
            ("CATTY_IMAGE", "registry.fly.io/catty-exec:v1"),
            ("CATTY_FLY_START_TIMEOUT", "3s"),
        ])
        .unwrap();
        assert_eq!(c.api_base, "http://127.0.0.1:4280");
        assert_eq!(c.image.as_deref(), Some("registry.fly.io/catty-exec:v1"));
        assert_eq!(c.start_timeout, Duration::from_secs(3));
        assert!(fly(&[("FLY_MACHINES_API_BASE", "api.machines.dev")]).is_err());
        assert!(fly(&[("CATTY_FLY_START_TIMEOUT", "soon")]).is_err());
    }

    #[test]
    fn child_env_drops_the_token_and_sets_term() {
        let c = config(args(), &[("CONNECT_TOKEN", "t")]).unwrap();
        let vars = [("CONNECT_TOKEN", "t"), ("TERM", "dumb"), ("HOME", "/root")];
        let c = c.with_child_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(
            c.child_env,
            [
                ("HOME".into(), "/root".into()),
                ("TERM".into(), "xterm-256color".into())
            ]
        );
    }
}
