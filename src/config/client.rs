//! The client commands' configuration: how to reach (or start) the daemon, and what
//! `catty new` asks for.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use super::parse::{api_addr, current_exe, state_dir};
use super::{Env, Logging, UsageError, parse_duration};
use crate::cli::NewArgs;
use crate::protocol::Agent;
use crate::protocol::api::CreateSession;

/// What every client command needs to reach (or start) the daemon.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub api_addr: SocketAddr,
    pub state_dir: PathBuf,
    /// This binary, started as `catty api` when no daemon answers.
    pub exe: PathBuf,
    pub log: Logging,
}

impl ClientConfig {
    pub fn new(env: &Env) -> Result<Self, UsageError> {
        Ok(ClientConfig {
            api_addr: api_addr(None, env)?,
            state_dir: state_dir(env)?,
            exe: current_exe()?,
            log: Logging::new(env),
        })
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
}

impl NewOptions {
    /// The request from the flags, and the directory the session starts from. A directory
    /// that cannot be read is a failure (exit 1), not a usage error.
    pub fn new(args: NewArgs, env: &Env) -> anyhow::Result<Self> {
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
            path: env.get("PATH"),
        };
        let dir = std::env::current_dir().context("cannot read the current directory")?;
        Ok(NewOptions {
            create,
            upload: !args.no_upload,
            sync: !args.no_sync,
            dir,
        })
    }
}

/// The agent whose program `program` is (`claude`, `/usr/bin/codex`, …), if any.
fn agent_of_program(program: &str) -> Option<Agent> {
    let name = program.rsplit('/').next()?;
    Agent::parse(name).filter(|agent| *agent != Agent::Shell)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            NewOptions::new(args, &Env::default()).map(|o| o.create.agent.as_str())
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
            NewOptions::new(NewArgs::from_args(&["new"], args).unwrap(), &Env::default())
        };
        assert!(options(&[]).unwrap().sync);
        assert!(!options(&["--no-sync"]).unwrap().sync);
        assert!(options(&["--no-sync"]).unwrap().upload, "uploads still");
    }
}
