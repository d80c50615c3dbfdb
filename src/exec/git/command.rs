//! git as `/git` runs it: in the workspace, in the program's environment without its `GIT_*`
//! variables, with no system or global configuration and no hooks, so neither the machine's
//! settings nor the upload can make it run anything else.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

/// Settings for every command: no hooks, no file-system monitor, no background maintenance.
const SETTINGS: [&str; 8] = [
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "gc.auto=0",
    "-c",
    "maintenance.auto=false",
];
/// How much of git's complaint goes into an error message.
const STDERR_CHARS: usize = 500;

/// Runs git in one workspace.
pub(super) struct Git {
    workspace: PathBuf,
    env: Vec<(String, String)>,
}

impl Git {
    /// Git in `workspace`, in `child_env` (the program's environment) minus its `GIT_*`.
    pub(super) fn new(workspace: &Path, child_env: &[(String, String)]) -> Git {
        let env = child_env.iter().filter(|(k, _)| !k.starts_with("GIT_"));
        Git {
            workspace: workspace.to_owned(),
            env: env.cloned().collect(),
        }
    }

    pub(super) fn dot_git(&self) -> PathBuf {
        self.workspace.join(".git")
    }

    /// Runs `git ARGS`; its stdout, or a message naming the command with git's stderr.
    pub(super) async fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Vec<u8>, String> {
        self.run_with_input(args, None).await
    }

    /// Like [`Git::run`], with `input` on stdin.
    pub(super) async fn run_with_input<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        input: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, String> {
        let named = describe(args);
        let mut cmd = tokio::process::Command::new("git");
        cmd.args(SETTINGS)
            .args(args)
            .current_dir(&self.workspace)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("GIT_DIR", self.dot_git())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A timeout or a client that hangs up drops the future: the command dies with it.
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run git on the runtime's machine: {e}"))?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(&input)
                .await
                .map_err(|e| format!("{named}: writing its input failed: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| format!("{named}: {e}"))?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr: String = stderr.trim().chars().take(STDERR_CHARS).collect();
        Err(match stderr.is_empty() {
            true => format!("{named} failed ({})", out.status),
            false => format!("{named} failed: {}", stderr.replace('\n', "; ")),
        })
    }

    /// Whether `git commit` would find an identity in the program's own environment (its
    /// `HOME`, its `GIT_*` variables included).
    pub(super) async fn has_identity(&self, child_env: &[(String, String)]) -> bool {
        let status = tokio::process::Command::new("git")
            .args(SETTINGS)
            .args(["var", "GIT_COMMITTER_IDENT"])
            .current_dir(&self.workspace)
            .env_clear()
            .envs(child_env.iter().map(|(k, v)| (k, v)))
            .env("GIT_DIR", self.dot_git())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status()
            .await;
        status.is_ok_and(|s| s.success())
    }
}

/// `git fetch`: the command and its first argument, for messages.
fn describe<S: AsRef<OsStr>>(args: &[S]) -> String {
    let first = args.first().map(|a| a.as_ref().to_string_lossy());
    format!("git {}", first.unwrap_or_default())
}
