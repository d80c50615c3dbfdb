//! `catty exec`'s configuration: where to listen, the token, the workspace, the agent and
//! command, the program's environment, the TTL, the grace period and the retention.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::parse::seconds;
use super::{Env, Logging, UsageError};
use crate::cli::ExecArgs;
use crate::protocol::{Agent, OUTPUT_BUFFER_BYTES};

/// How long the final output stays readable after the program exits, unless configured.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);

/// How long the runtime stays up after the program exits while the workspace holds work not
/// yet pulled, unless configured (the local provider asks for a day).
const DEFAULT_RETAIN: Duration = Duration::from_secs(3600);

/// The transcript's bound on disk unless `CATTY_TRANSCRIPT_BYTES` says otherwise (0 turns
/// it off): a long agent session's output many times over, a small part of a machine's disk.
const DEFAULT_TRANSCRIPT_BYTES: u64 = 1024 * 1024 * 1024;

/// Where the runtime takes its connections from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// Bind this address.
    Addr(SocketAddr),
    /// A listening socket inherited at this descriptor.
    Fd(i32),
}

/// Everything `catty exec` needs.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    pub listen: Listen,
    pub token: Option<String>,
    pub workspace: PathBuf,
    /// Whose configuration the runtime prepares before the program starts (`CATTY_AGENT`).
    pub agent: Agent,
    pub command: Vec<String>,
    /// The program's environment: ours, minus the connect token, plus `TERM`.
    pub child_env: Vec<(String, String)>,
    pub ttl: Option<Duration>,
    pub grace: Duration,
    /// The longest the runtime stays after the program exits for work not yet pulled; never
    /// less than `grace` in effect.
    pub retain: Duration,
    pub buffer_bytes: usize,
    /// The directory of the output transcript (`None`: no transcript), outside the
    /// workspace so the program's files and sync-back never see it.
    pub transcript: Option<PathBuf>,
    /// The most the transcript's files hold together.
    pub transcript_bytes: u64,
    pub log: Logging,
}

impl ExecConfig {
    pub fn new(args: ExecArgs, env: &Env) -> Result<Self, UsageError> {
        let addr = args
            .addr
            .or_else(|| env.get("CATTY_EXEC_ADDR"))
            .unwrap_or_else(|| "0.0.0.0:8080".into());
        let addr = addr.parse().map_err(|_| {
            UsageError(format!(
                "CATTY_EXEC_ADDR / --addr: {addr:?} is not HOST:PORT"
            ))
        })?;
        let listen = match args.listen_fd {
            // 0 to 2 are stdio.
            Some(fd) if fd < 3 => {
                return Err(UsageError(format!(
                    "--listen-fd {fd}: not an inherited socket"
                )));
            }
            Some(fd) => Listen::Fd(fd),
            None => Listen::Addr(addr),
        };
        let token = match (args.insecure_no_token, env.get("CONNECT_TOKEN")) {
            (true, _) => None,
            (false, Some(token)) if !token.is_empty() => Some(token),
            (false, _) => {
                return Err(UsageError(
                    "CONNECT_TOKEN is not set (use --insecure-no-token for local experiments)"
                        .into(),
                ));
            }
        };
        let agent = match env.get("CATTY_AGENT").filter(|a| !a.is_empty()) {
            Some(name) => Agent::parse(&name).ok_or_else(|| {
                UsageError(format!(
                    "CATTY_AGENT {name:?} is unknown ({})",
                    Agent::CHOICES
                ))
            })?,
            None => Agent::Shell,
        };
        // A command given with an agent (`--agent claude -- claude --resume`) still gets the
        // agent's preparation; without one, the agent's own program runs.
        let command = if !args.command.is_empty() {
            args.command
        } else if let Some(cmd) = env.get("CATTY_CMD").filter(|c| !c.trim().is_empty()) {
            parse_command(&cmd)?
        } else {
            agent_command(agent, env.get("SHELL"))
        };
        let workspace: PathBuf = args
            .workspace
            .or_else(|| env.get("CATTY_WORKSPACE"))
            .unwrap_or_else(|| "/workspace".into())
            .into();
        let transcript_bytes = match env.get("CATTY_TRANSCRIPT_BYTES") {
            Some(text) => text.trim().parse().map_err(|_| {
                UsageError(format!(
                    "CATTY_TRANSCRIPT_BYTES must be a number of bytes, got {text:?}"
                ))
            })?,
            None => DEFAULT_TRANSCRIPT_BYTES,
        };
        let transcript = args
            .transcript
            .or_else(|| env.get("CATTY_TRANSCRIPT"))
            .map(PathBuf::from)
            .unwrap_or_else(|| beside(&workspace, "transcript"));
        Ok(ExecConfig {
            listen,
            token,
            workspace,
            agent,
            command,
            child_env: child_env(env),
            ttl: seconds(args.ttl_sec, env, "CATTY_TTL_SEC")?,
            grace: seconds(args.grace_sec, env, "CATTY_GRACE_SEC")?.unwrap_or(DEFAULT_GRACE),
            retain: seconds(args.retain_sec, env, "CATTY_RETAIN_SEC")?.unwrap_or(DEFAULT_RETAIN),
            buffer_bytes: OUTPUT_BUFFER_BYTES,
            transcript: (transcript_bytes > 0).then_some(transcript),
            transcript_bytes,
            log: Logging::new(env),
        })
    }
}

/// A directory beside the workspace, named after it (`/workspace` → `/workspace.transcript`):
/// outside it, and never shared by two runtimes whose workspaces share a parent (tests put
/// theirs in `/tmp`). The local provider passes `<state>/sessions/<id>/transcript` itself.
fn beside(workspace: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = workspace.as_os_str().to_owned();
    if name.is_empty() || name == "/" {
        return std::env::temp_dir().join(format!("catty.{suffix}"));
    }
    name.push(format!(".{suffix}"));
    PathBuf::from(name)
}

/// The program's environment: the runtime's own, minus the connect token, with `TERM` set.
fn child_env(env: &Env) -> Vec<(String, String)> {
    let mut vars: Vec<_> = env
        .iter()
        .filter(|(k, _)| *k != "CONNECT_TOKEN" && *k != "TERM")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.push(("TERM".into(), "xterm-256color".into()));
    vars
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

/// The shell a session of the shell agent runs when `SHELL` is not set.
pub const DEFAULT_SHELL: &str = "/bin/bash";

/// The program an agent stands for.
fn agent_command(agent: Agent, shell: Option<String>) -> Vec<String> {
    match agent {
        Agent::Shell => vec![
            shell
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_SHELL.into()),
            "-l".into(),
        ],
        agent => vec![agent.as_str().into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ExecArgs {
        ExecArgs {
            addr: None,
            listen_fd: None,
            workspace: None,
            transcript: None,
            ttl_sec: None,
            grace_sec: None,
            retain_sec: None,
            insecure_no_token: false,
            command: vec![],
        }
    }

    fn config(args: ExecArgs, vars: &[(&str, &str)]) -> Result<ExecConfig, UsageError> {
        ExecConfig::new(args, &Env::from_pairs(vars))
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
        assert_eq!(c.listen, Listen::Addr("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(c.grace, DEFAULT_GRACE);
        assert_eq!(c.retain, DEFAULT_RETAIN);
        let c = config(
            args(),
            &[
                ("CONNECT_TOKEN", "t"),
                ("CATTY_EXEC_ADDR", "127.0.0.1:0"),
                ("CATTY_GRACE_SEC", "3"),
                ("CATTY_RETAIN_SEC", "5"),
            ],
        )
        .unwrap();
        assert_eq!(c.listen, Listen::Addr("127.0.0.1:0".parse().unwrap()));
        assert_eq!(c.grace, Duration::from_secs(3));
        assert_eq!(c.retain, Duration::from_secs(5));
        let flagged = ExecArgs {
            addr: Some("127.0.0.1:9".into()),
            ..args()
        };
        let c = config(
            flagged,
            &[("CONNECT_TOKEN", "t"), ("CATTY_EXEC_ADDR", "127.0.0.1:0")],
        )
        .unwrap();
        assert_eq!(c.listen, Listen::Addr("127.0.0.1:9".parse().unwrap()));
        let inherited = |fd| {
            let args = ExecArgs {
                listen_fd: Some(fd),
                ..args()
            };
            config(args, &[("CONNECT_TOKEN", "t")]).map(|c| c.listen)
        };
        assert_eq!(inherited(3).unwrap(), Listen::Fd(3));
        assert!(inherited(2).unwrap_err().0.contains("--listen-fd 2"));
    }

    #[test]
    fn transcript_beside_the_workspace_unless_told() {
        let vars = [
            ("CONNECT_TOKEN", "t"),
            ("CATTY_WORKSPACE", "/s/1/workspace"),
        ];
        let c = config(args(), &vars).unwrap();
        assert_eq!(
            c.transcript,
            Some(PathBuf::from("/s/1/workspace.transcript"))
        );
        assert_eq!(c.transcript_bytes, DEFAULT_TRANSCRIPT_BYTES);
        let c = config(args(), &[("CONNECT_TOKEN", "t")]).unwrap();
        assert_eq!(c.transcript, Some(PathBuf::from("/workspace.transcript")));
        let told = [
            ("CONNECT_TOKEN", "t"),
            ("CATTY_TRANSCRIPT", "/t"),
            ("CATTY_TRANSCRIPT_BYTES", "4096"),
        ];
        let c = config(args(), &told).unwrap();
        assert_eq!(
            (c.transcript, c.transcript_bytes),
            (Some("/t".into()), 4096)
        );
        let off = [("CONNECT_TOKEN", "t"), ("CATTY_TRANSCRIPT_BYTES", "0")];
        assert_eq!(config(args(), &off).unwrap().transcript, None);
        let bad = [("CONNECT_TOKEN", "t"), ("CATTY_TRANSCRIPT_BYTES", "1G")];
        assert!(config(args(), &bad).is_err());
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
    fn child_env_drops_the_token_and_sets_term() {
        let vars = [("CONNECT_TOKEN", "t"), ("TERM", "dumb"), ("HOME", "/root")];
        let c = config(args(), &vars).unwrap();
        assert_eq!(
            c.child_env,
            [
                ("HOME".into(), "/root".into()),
                ("TERM".into(), "xterm-256color".into())
            ]
        );
    }
}
