//! Flags plus `CATTY_*` environment into validated configuration. The only place that reads
//! the environment; precedence is flag, then environment, then default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::ExecArgs;

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
        let command = if !args.command.is_empty() {
            args.command
        } else if let Some(cmd) = env("CATTY_CMD").filter(|c| !c.trim().is_empty()) {
            parse_command(&cmd)?
        } else {
            agent_command(env("CATTY_AGENT").as_deref(), env("SHELL"))?
        };
        Ok(ExecConfig {
            addr,
            token,
            workspace: args
                .workspace
                .or_else(|| env("CATTY_WORKSPACE"))
                .unwrap_or_else(|| "/workspace".into())
                .into(),
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

/// The program an agent name stands for.
fn agent_command(agent: Option<&str>, shell: Option<String>) -> Result<Vec<String>, UsageError> {
    match agent.unwrap_or("shell") {
        "claude" => Ok(vec!["claude".into()]),
        "codex" => Ok(vec!["codex".into()]),
        "shell" => Ok(vec![
            shell
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/bash".into()),
            "-l".into(),
        ]),
        other => Err(UsageError(format!(
            "CATTY_AGENT {other:?} is unknown (claude, codex or shell)"
        ))),
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
        assert!(cmd(&[("CATTY_AGENT", "vi")]).is_err());
        assert!(cmd(&[("CATTY_CMD", "[]")]).is_err());
        assert!(cmd(&[("CATTY_CMD", "[1]")]).is_err());
        assert!(cmd(&[("CATTY_TTL_SEC", "soon")]).is_err());
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
