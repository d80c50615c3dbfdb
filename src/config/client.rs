//! The client commands' configuration: how to reach (or start) the daemon, and what
//! `catty new` asks for, the chosen agent's credentials from this environment (and Codex's
//! login file) included.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::login_file::{self, LoginFile, api_url};
use super::parse::{api_addr, current_exe, state_dir};
use super::{Env, Logging, UsageError, parse_duration};
use crate::cli::{ExtendArgs, NewArgs};
use crate::protocol::Agent;
use crate::protocol::api::{CODEX_AUTH_VAR, CREDENTIAL_LIMIT_BYTES, CreateSession, Credentials};

/// What every client command needs to reach (or start) the daemon.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub api_addr: SocketAddr,
    pub state_dir: PathBuf,
    /// This binary, started as `catty api` when no daemon answers.
    pub exe: PathBuf,
    pub log: Logging,
    /// After an outage, output up to this many bytes is replayed; a larger gap is skipped for
    /// a repaint of the screen (`CATTY_REPLAY_MAX_BYTES`, default `REPLAY_MAX_BYTES`).
    pub replay_max_bytes: u64,
    /// The provider a daemon started from here would use: `fly` when `FLY_API_TOKEN` is set,
    /// else `local` (as `catty api` chooses); a running daemon of the other is refused.
    pub provider: &'static str,
    /// The hosted API every command talks to instead of the local daemon: `CATTY_API_URL`,
    /// else the one `catty login` remembered.
    pub hosted: Option<HostedApi>,
    /// Where `catty login` keeps the login (`login_file.rs`); none without a home.
    pub login_file: Option<PathBuf>,
    /// This session has a graphical display (`DISPLAY`, `WAYLAND_DISPLAY`): `catty login`
    /// opens a browser.
    pub display: bool,
}

/// A hosted API and the user's login to it.
#[derive(Clone)]
pub struct HostedApi {
    /// `https://HOST[:PORT]`.
    pub url: String,
    /// `CATTY_TOKEN`, else the login file's when it was minted by this URL.
    pub token: Option<String>,
    pub email: Option<String>,
}

impl std::fmt::Debug for HostedApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedApi")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<secret>"))
            .field("email", &self.email)
            .finish()
    }
}

impl HostedApi {
    /// From the environment and the login file, if either names an API.
    fn new(env: &Env, saved: Option<LoginFile>) -> Result<Option<HostedApi>, UsageError> {
        let url = match (env.non_empty("CATTY_API_URL"), &saved) {
            (Some(url), _) => api_url(&url)?,
            (None, Some(saved)) => saved.api_url.clone(),
            (None, None) => return Ok(None),
        };
        // A login is sent only to the API that minted it.
        let saved = saved.filter(|s| s.api_url == url);
        let token = (env.non_empty("CATTY_TOKEN")).or_else(|| Some(saved.as_ref()?.token.clone()));
        Ok(Some(HostedApi {
            url,
            token,
            email: saved.and_then(|s| s.email),
        }))
    }
}

/// The largest gap a reconnecting client replays: a few seconds of a fast writer through a
/// terminal; past it, replaying would keep the user waiting longer than a repaint.
pub(super) const REPLAY_MAX_BYTES: u64 = 16 * 1024 * 1024;

impl ClientConfig {
    pub fn new(env: &Env) -> Result<Self, UsageError> {
        let login_file = login_file::path(env);
        let saved = match &login_file {
            Some(path) => LoginFile::read(path).map_err(|e| UsageError(format!("{e:#}")))?,
            None => None,
        };
        Ok(ClientConfig {
            hosted: HostedApi::new(env, saved)?,
            login_file,
            display: ["DISPLAY", "WAYLAND_DISPLAY"]
                .iter()
                .any(|name| env.non_empty(name).is_some()),
            api_addr: api_addr(None, env)?,
            state_dir: state_dir(env)?,
            exe: current_exe()?,
            log: Logging::new(env),
            replay_max_bytes: replay_max_bytes(env)?,
            provider: match env.non_empty("FLY_API_TOKEN") {
                Some(_) => "fly",
                None => "local",
            },
        })
    }
}

/// `CATTY_REPLAY_MAX_BYTES`, whole bytes, else [`REPLAY_MAX_BYTES`].
fn replay_max_bytes(env: &Env) -> Result<u64, UsageError> {
    const NAME: &str = "CATTY_REPLAY_MAX_BYTES";
    match env.get(NAME) {
        None => Ok(REPLAY_MAX_BYTES),
        Some(s) => s
            .trim()
            .parse()
            .map_err(|_| UsageError(format!("{NAME} must be a number of bytes, got {s:?}"))),
    }
}

/// What `catty new` asks for.
#[derive(Debug, Clone)]
pub struct NewOptions {
    pub create: CreateSession,
    pub upload: bool,
    /// Whether the session's changes come back while attached (`--no-sync` turns it off).
    pub sync: bool,
    /// The directory the session starts from: the current one.
    pub dir: PathBuf,
    /// The agent's other credentials set here, after the one sent: the agent would use the
    /// first anyway, and Claude Code given both warns that its login may not work.
    pub unused_credentials: Vec<&'static str>,
}

impl NewOptions {
    /// The request from the flags and `env`, and the directory the session starts from. A
    /// directory or a login file that cannot be read is a failure (exit 1), not a usage error.
    /// A `hosted` API meters agents through its gateway and takes no credentials: none are
    /// read, none sent.
    pub fn new(args: NewArgs, env: &Env, hosted: bool) -> anyhow::Result<Self> {
        let agent = match args.agent {
            Some(name) => Agent::parse(&name).ok_or_else(|| {
                UsageError(format!("--agent {name:?} is unknown ({})", Agent::CHOICES))
            })?,
            None => match args.command.first() {
                // `catty new -- claude --resume` still gets Claude Code's preparation.
                Some(program) => agent_of_program(program).unwrap_or(Agent::Shell),
                None => Agent::Claude,
            },
        };
        let ttl_sec = args.ttl.as_deref().map(ttl).transpose()?;
        let cmd = (!args.command.is_empty()).then_some(args.command);
        let found = match hosted {
            true => Credentials::default(),
            false => credentials(agent, env)?,
        };
        let mut set = (agent.credential_vars().iter().copied()).filter(|n| found.contains(n));
        let credentials = set
            .next()
            .and_then(|name| Some([(name, found.get(name)?)].into_iter().collect()))
            .unwrap_or_default();
        let create = CreateSession {
            agent,
            cmd,
            region: args.region,
            cpus: args.cpus,
            memory_mb: args.memory_mb,
            ttl_sec,
            path: env.get("PATH"),
            // The same for every try of this create (client/mod.rs).
            request_id: Some(crate::random::hex(16)),
            credentials,
        };
        let dir = std::env::current_dir().context("cannot read the current directory")?;
        Ok(NewOptions {
            create,
            upload: !args.no_upload,
            sync: !args.no_sync,
            dir,
            unused_credentials: set.collect(),
        })
    }
}

/// The chosen agent's credential variables that are set here, and for Codex the login in its
/// `auth.json` unless `CATTY_CODEX_AUTH` already holds one: sent with every `catty new`, so a
/// key exported here is the key the session uses.
fn credentials(agent: Agent, env: &Env) -> anyhow::Result<Credentials> {
    let set = |name: &&str| env.get(name).filter(|v| !v.trim().is_empty());
    let mut found: Credentials = agent
        .credential_vars()
        .iter()
        .filter_map(|name| Some((*name, set(name)?)))
        .collect();
    if agent == Agent::Codex
        && !found.contains(CODEX_AUTH_VAR)
        && let Some(login) = codex_login(env)?
    {
        found.insert(CODEX_AUTH_VAR, login);
    }
    Ok(found)
}

/// The contents of `$CODEX_HOME/auth.json` (by default `~/.codex/auth.json`), what
/// `codex login` writes; none when there is no such file (not logged in, or a login kept in
/// the system keyring).
fn codex_login(env: &Env) -> anyhow::Result<Option<String>> {
    let dir = match (env.non_empty("CODEX_HOME"), env.non_empty("HOME")) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(home)) => PathBuf::from(home).join(".codex"),
        (None, None) => return Ok(None),
    };
    let path = dir.join("auth.json");
    let login = read_at_most(&path, CREDENTIAL_LIMIT_BYTES)
        .with_context(|| format!("cannot read your Codex login {}", path.display()))?;
    Ok(login.filter(|text| !text.trim().is_empty()))
}

/// The file's text, none when it does not exist; an error past `limit` bytes, without
/// reading more than one byte past it.
fn read_at_most(path: &Path, limit: usize) -> anyhow::Result<Option<String>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut text = String::new();
    file.take(limit as u64 + 1).read_to_string(&mut text)?;
    if text.len() > limit {
        bail!("it is larger than {limit} bytes");
    }
    Ok(Some(text))
}

/// The agent whose program `program` is (`claude`, `/usr/bin/codex`, …), if any.
fn agent_of_program(program: &str) -> Option<Agent> {
    let name = program.rsplit('/').next()?;
    Agent::parse(name).filter(|agent| *agent != Agent::Shell)
}

/// `--ttl` as typed: a duration with its unit (a bare number is refused: minutes or seconds?).
fn ttl(text: &str) -> Result<u64, UsageError> {
    with_unit("--ttl", text)
}

/// A duration with its unit, in seconds; errors name `what` (the flag or command) and the text
/// as typed.
fn with_unit(what: &str, text: &str) -> Result<u64, UsageError> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UsageError(format!(
            "{what} {text}: which unit? Say {text}s, {text}m or {text}h"
        )));
    }
    match parse_duration(text) {
        Ok(d) => Ok(d.as_secs()),
        Err(UsageError(why)) => Err(UsageError(format!("{what}: {why}"))),
    }
}

/// `catty extend`: which session, and how much more time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendOptions {
    pub session: String,
    pub by_sec: u64,
}

impl ExtendOptions {
    pub fn new(args: ExtendArgs) -> Result<Self, UsageError> {
        Ok(ExtendOptions {
            by_sec: with_unit("catty extend", &args.duration)?,
            session: args.session,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_takes_a_duration_with_its_unit() {
        let args = |duration: &str| ExtendArgs {
            session: "brave-tiger-1234".into(),
            duration: duration.into(),
        };
        let options = ExtendOptions::new(args("90m")).unwrap();
        assert_eq!(options.by_sec, 5400);
        assert_eq!(options.session, "brave-tiger-1234");
        assert_eq!(ExtendOptions::new(args("1d")).unwrap().by_sec, 86_400);
        let bare = ExtendOptions::new(args("10")).unwrap_err();
        assert_eq!(
            bare.to_string(),
            "catty extend 10: which unit? Say 10s, 10m or 10h"
        );
        let zero = ExtendOptions::new(args("0h")).unwrap_err();
        assert_eq!(
            zero.to_string(),
            "catty extend: \"0h\" is not a duration (like 90s, 45m, 2h)"
        );
        assert!(ExtendOptions::new(args("soon")).is_err());
    }

    #[test]
    fn replay_max_bytes_comes_from_the_environment() {
        let read = |pairs: &[(&str, &str)]| replay_max_bytes(&Env::from_pairs(pairs));
        assert_eq!(read(&[]).unwrap(), REPLAY_MAX_BYTES);
        assert_eq!(read(&[("CATTY_REPLAY_MAX_BYTES", "1000")]).unwrap(), 1000);
        assert!(read(&[("CATTY_REPLAY_MAX_BYTES", "16M")]).is_err());
    }

    #[test]
    fn the_hosted_api_and_its_token() {
        let saved = LoginFile {
            api_url: "https://api.example".into(),
            token: "cat_saved".into(),
            email: Some("a@example.com".into()),
        };
        let hosted = |pairs: &[(&str, &str)], saved: Option<LoginFile>| {
            HostedApi::new(&Env::from_pairs(pairs), saved).unwrap()
        };
        assert!(hosted(&[], None).is_none(), "the local daemon");
        let h = hosted(&[], Some(saved.clone())).unwrap();
        assert_eq!(
            (h.url.as_str(), h.token.as_deref()),
            ("https://api.example", Some("cat_saved"))
        );
        let ci = hosted(&[("CATTY_TOKEN", "cat_ci")], Some(saved.clone())).unwrap();
        assert_eq!(ci.token.as_deref(), Some("cat_ci"));
        let other = [("CATTY_API_URL", "https://other.example")];
        let h = hosted(&other, Some(saved)).unwrap();
        assert_eq!(
            (h.url.as_str(), h.token),
            ("https://other.example", None),
            "never sent elsewhere"
        );
        assert!(
            format!(
                "{:?}",
                hosted(
                    &[
                        ("CATTY_API_URL", "https://a.example"),
                        ("CATTY_TOKEN", "cat_s3cret")
                    ],
                    None
                )
            )
            .find("s3cret")
            .is_none()
        );
    }

    #[test]
    fn new_infers_the_agent_from_the_command() {
        let agent = |agent: Option<&str>, command: &[&str]| {
            let args = NewArgs {
                agent: agent.map(String::from),
                no_upload: false,
                no_sync: false,
                region: None,
                cpus: None,
                memory_mb: None,
                ttl: None,
                command: command.iter().map(|c| c.to_string()).collect(),
            };
            NewOptions::new(args, &Env::default(), false).map(|o| o.create.agent.as_str())
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
    fn no_sync_turns_live_sync_off() {
        use argh::FromArgs;
        let options = |args: &[&str]| {
            let args = NewArgs::from_args(&["new"], args).unwrap();
            NewOptions::new(args, &Env::default(), false)
        };
        assert!(options(&[]).unwrap().sync);
        assert!(!options(&["--no-sync"]).unwrap().sync);
        assert!(options(&["--no-sync"]).unwrap().upload, "uploads still");
    }

    fn names(credentials: &Credentials) -> Vec<&str> {
        credentials.iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn only_the_chosen_agents_credentials_are_taken() {
        let env = Env::from_pairs(&[
            ("ANTHROPIC_API_KEY", "sk-ant-a"),
            ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-b"),
            ("OPENAI_API_KEY", "sk-proj-c"),
            ("GEMINI_API_KEY", " "),
            ("AWS_SECRET_ACCESS_KEY", "d"),
        ]);
        let claude = credentials(Agent::Claude, &env).unwrap();
        assert_eq!(
            names(&claude),
            ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"]
        );
        assert_eq!(claude.get("ANTHROPIC_API_KEY"), Some("sk-ant-a"));
        assert!(
            credentials(Agent::Gemini, &env).unwrap().is_empty(),
            "blank"
        );
        assert!(credentials(Agent::Shell, &env).unwrap().is_empty());
    }

    #[test]
    fn only_the_credential_in_use_is_sent() {
        let env = Env::from_pairs(&[
            ("ANTHROPIC_API_KEY", "sk-ant-a"),
            ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-b"),
        ]);
        let args: NewArgs = argh::FromArgs::from_args(&["new"], &[]).unwrap();
        let options = NewOptions::new(args, &env, false).unwrap();
        assert_eq!(names(&options.create.credentials), ["ANTHROPIC_API_KEY"]);
        assert_eq!(options.unused_credentials, ["CLAUDE_CODE_OAUTH_TOKEN"]);
    }

    #[test]
    fn a_hosted_api_is_sent_no_credential() {
        let home = tempfile::tempdir().unwrap();
        // Unreadable: a hosted create must not even look at the Codex login.
        std::fs::create_dir_all(home.path().join(".codex/auth.json")).unwrap();
        let env = Env::from_pairs(&[
            ("HOME", home.path().to_str().unwrap()),
            ("ANTHROPIC_API_KEY", "sk-ant-a"),
            ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-b"),
            ("OPENAI_API_KEY", "sk-proj-c"),
        ]);
        for agent in ["claude", "codex"] {
            let args: NewArgs = argh::FromArgs::from_args(&["new"], &["--agent", agent]).unwrap();
            let options = NewOptions::new(args, &env, true).unwrap();
            assert!(options.create.credentials.is_empty(), "{agent}");
            assert!(options.unused_credentials.is_empty(), "{agent}");
        }
    }

    #[test]
    fn codex_takes_the_login_file_from_codex_home_or_home() {
        let home = tempfile::tempdir().unwrap();
        let codex_dir = home.path().join(".codex");
        std::fs::create_dir(&codex_dir).unwrap();
        std::fs::write(codex_dir.join("auth.json"), r#"{"tokens":{}}"#).unwrap();
        let home_str = home.path().to_str().unwrap();
        let env = Env::from_pairs(&[("HOME", home_str), ("OPENAI_API_KEY", "sk-proj")]);
        let codex = credentials(Agent::Codex, &env).unwrap();
        assert_eq!(names(&codex), ["CATTY_CODEX_AUTH", "OPENAI_API_KEY"]);
        assert_eq!(codex.get("CATTY_CODEX_AUTH"), Some(r#"{"tokens":{}}"#));

        let elsewhere = tempfile::tempdir().unwrap();
        let env = Env::from_pairs(&[
            ("HOME", home_str),
            ("CODEX_HOME", elsewhere.path().to_str().unwrap()),
        ]);
        assert!(
            credentials(Agent::Codex, &env).unwrap().is_empty(),
            "no auth.json under CODEX_HOME: nothing"
        );
        let set = Env::from_pairs(&[("HOME", home_str), ("CATTY_CODEX_AUTH", "{}")]);
        let codex = credentials(Agent::Codex, &set).unwrap();
        assert_eq!(
            codex.get("CATTY_CODEX_AUTH"),
            Some("{}"),
            "the variable wins"
        );
    }

    #[test]
    fn a_login_file_too_large_or_unreadable_is_a_clear_error() {
        let home = tempfile::tempdir().unwrap();
        let file = home.path().join("auth.json");
        std::fs::write(&file, "x".repeat(CREDENTIAL_LIMIT_BYTES + 1)).unwrap();
        let env = Env::from_pairs(&[("CODEX_HOME", home.path().to_str().unwrap())]);
        let err = format!("{:#}", credentials(Agent::Codex, &env).unwrap_err());
        assert_eq!(
            err,
            format!(
                "cannot read your Codex login {}: it is larger than 65536 bytes",
                file.display()
            )
        );
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
        let err = format!("{:#}", credentials(Agent::Codex, &env).unwrap_err());
        assert!(err.starts_with("cannot read your Codex login"), "{err}");
        assert!(err.contains("Is a directory"), "{err}");
    }
}
