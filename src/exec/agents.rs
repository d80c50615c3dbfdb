//! Agent profiles: what the runtime does right before the program starts so that the agent
//! opens at its main prompt with no first-run dialog (onboarding, folder trust, API-key
//! approval, login), and what it says when the agent is not installed. The recipes and the
//! evidence for them are in `../shared/reference/agents.md`; each agent has a submodule.

mod claude;
mod codex;
mod files;
mod gateway;
mod gemini;
mod toml;

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};

use super::command::Command;
use crate::protocol::Agent;
use crate::protocol::api::CODEX_AUTH_VAR;

/// The program's environment as the profiles read it: the last value of a name wins, and an
/// empty value counts as unset.
struct ChildEnv<'a>(&'a [(String, String)]);

impl<'a> ChildEnv<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn home(&self) -> anyhow::Result<PathBuf> {
        self.get("HOME")
            .map(PathBuf::from)
            .ok_or_else(|| anyhow!("HOME is not set"))
    }
}

/// Fails, with the line for the terminal, when the program is not on the PATH. A program
/// given as a path is left to the spawn to report.
pub(super) fn find_program(command: &Command) -> Result<(), String> {
    let Some(program) = command.argv.first() else {
        return Err("there is no command to run".into());
    };
    if program.contains('/') || ChildEnv(&command.env).get("PATH").is_none() {
        return Ok(());
    }
    match locate(command) {
        Some(_) => Ok(()),
        None => Err(not_installed(command)),
    }
}

/// The line for the terminal when the spawn itself failed.
pub(super) fn cannot_start(command: &Command, error: &io::Error) -> String {
    let program = command.argv.first().map_or("", String::as_str);
    if error.kind() == io::ErrorKind::NotFound {
        match locate(command) {
            None => return not_installed(command),
            // The program is there but its `#!` interpreter is not.
            Some(script) => {
                if let Some(interpreter) = interpreter(&script) {
                    return format!(
                        "cannot start {program}: its interpreter {interpreter} is missing"
                    );
                }
            }
        }
    }
    format!("cannot start {program:?}: {error}")
}

fn not_installed(command: &Command) -> String {
    let program = command.argv.first().map_or("", String::as_str);
    let name = Path::new(program).file_name().and_then(|n| n.to_str());
    let agent = command.agent;
    match (agent.program(), agent.npm_package()) {
        (Some(own), Some(npm)) if name == Some(own) => format!(
            "cannot start {program}: {} is not installed on this machine \
             (install it with `npm install -g {npm}`)",
            agent.title()
        ),
        _ => format!("cannot start {program:?}: no such program on the PATH"),
    }
}

/// Where the spawn will find the program: the first executable file on the child's PATH
/// (relative entries are relative to its working directory), or the path it was given.
fn locate(command: &Command) -> Option<PathBuf> {
    let program = command.argv.first()?;
    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![command.cwd.join(program)]
    } else {
        let path = ChildEnv(&command.env).get("PATH")?;
        std::env::split_paths(path)
            .map(|dir| command.cwd.join(dir).join(program))
            .collect()
    };
    candidates.into_iter().find(|c| {
        std::fs::metadata(c).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The interpreter a script names in its `#!` line, when that file does not exist.
fn interpreter(script: &Path) -> Option<String> {
    let mut head = [0u8; 256];
    let n = io::Read::read(&mut std::fs::File::open(script).ok()?, &mut head).ok()?;
    let line = head[..n]
        .strip_prefix(b"#!")?
        .split(|&b| b == b'\n')
        .next()?;
    let path = std::str::from_utf8(line).ok()?.split_whitespace().next()?;
    (!Path::new(path).exists()).then(|| path.to_string())
}

/// Points the agent at catty's gateway when the session has one (`gateway.rs`), writes the
/// agent's configuration and adds its environment variables (never replacing a variable that
/// is already set). Blocking file work runs off the async threads. Codex's login is for its
/// file only: the program never sees `CATTY_CODEX_AUTH`, written or not.
pub(super) async fn prepare(command: &mut Command) -> anyhow::Result<()> {
    gateway::apply(command.agent, &mut command.env);
    let (agent, argv, cwd, env) = (
        command.agent,
        command.argv.clone(),
        command.cwd.clone(),
        command.env.clone(),
    );
    command.env.retain(|(name, _)| name != CODEX_AUTH_VAR);
    let Some(program) = agent.program() else {
        return Ok(());
    };
    let added = tokio::task::spawn_blocking(move || write_profile(agent, &argv, &cwd, &env))
        .await
        .map_err(|e| anyhow!("{e}"))
        .and_then(|written| written)
        .with_context(|| format!("cannot prepare {}'s configuration", agent.title()))?;
    for (name, value) in added {
        if ChildEnv(&command.env).get(&name).is_none() {
            command.env.push((name, value));
        }
    }
    tracing::info!(agent = program, "agent configuration prepared");
    Ok(())
}

/// The profile proper: writes the files, returns the variables to add.
fn write_profile(
    agent: Agent,
    argv: &[String],
    cwd: &Path,
    env: &[(String, String)],
) -> anyhow::Result<Vec<(String, String)>> {
    let env = ChildEnv(env);
    let workspace = workspace_key(cwd)?;
    match agent {
        Agent::Claude => claude::prepare(&env, &workspace, argv),
        Agent::Codex => codex::prepare(&env, &workspace),
        Agent::Gemini => gemini::prepare(&env, &workspace),
        Agent::Shell => Ok(Vec::new()),
    }
}

/// The workspace as the agents see their working directory (`getcwd`: symlinks resolved),
/// which is the key they look trust up by.
fn workspace_key(cwd: &Path) -> anyhow::Result<String> {
    let resolved = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    resolved
        .into_os_string()
        .into_string()
        .map_err(|p| anyhow!("the workspace {p:?} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(agent: Agent, argv: &[&str], path: &str) -> Command {
        Command {
            agent,
            argv: argv.iter().map(|a| a.to_string()).collect(),
            cwd: "/".into(),
            env: vec![("PATH".into(), path.into())],
        }
    }

    #[test]
    fn a_missing_agent_names_its_package() {
        let empty = tempfile::tempdir().unwrap();
        let path = empty.path().to_str().unwrap();
        let missing = find_program(&command(Agent::Claude, &["claude"], path)).unwrap_err();
        assert_eq!(
            missing,
            "cannot start claude: Claude Code is not installed on this machine \
             (install it with `npm install -g @anthropic-ai/claude-code`)"
        );
        let missing = find_program(&command(Agent::Codex, &["codex"], path)).unwrap_err();
        assert!(
            missing.contains("npm install -g @openai/codex"),
            "{missing}"
        );
        let missing = find_program(&command(Agent::Gemini, &["gemini"], path)).unwrap_err();
        assert!(
            missing.contains("npm install -g @google/gemini-cli"),
            "{missing}"
        );
        // Some other program, even under an agent's profile, is not an agent's package.
        let missing = find_program(&command(Agent::Claude, &["nope"], path)).unwrap_err();
        assert_eq!(
            missing,
            "cannot start \"nope\": no such program on the PATH"
        );
        assert!(find_program(&command(Agent::Shell, &["sh"], "/usr/bin:/bin")).is_ok());
    }

    #[tokio::test]
    async fn the_program_never_sees_the_codex_login() {
        let home = tempfile::tempdir().unwrap();
        for login in ["{\"tokens\": {}}", "not json"] {
            let mut cmd = command(Agent::Codex, &["codex"], "/usr/bin:/bin");
            cmd.env.extend([
                ("HOME".into(), home.path().display().to_string()),
                (CODEX_AUTH_VAR.into(), login.into()),
            ]);
            let prepared = prepare(&mut cmd).await;
            assert_eq!(prepared.is_ok(), login.starts_with('{'), "{prepared:?}");
            assert!(cmd.env.iter().all(|(k, _)| k != CODEX_AUTH_VAR), "{login}");
        }
    }

    #[test]
    fn only_executable_files_count() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("claude");
        std::fs::write(&file, "#!/nonexistent/interpreter\n").unwrap();
        let path = dir.path().to_str().unwrap();
        let cmd = command(Agent::Claude, &["claude"], path);
        assert!(find_program(&cmd).is_err());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(find_program(&cmd).is_ok());
        let spawn_error = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(
            cannot_start(&cmd, &spawn_error),
            "cannot start claude: its interpreter /nonexistent/interpreter is missing"
        );
    }
}
