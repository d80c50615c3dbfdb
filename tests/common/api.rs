//! Test support for the daemon: a real `catty api --provider local` with its own state
//! directory and `HOME` (killed on drop, with every runtime it started), the HTTP client for it
//! (`client.rs`), and `/proc` helpers to find and signal session runtimes.

use std::ops::Deref;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use catty::net::DialError;
use catty::protocol::ConnectParams;

use super::launch::api_command;
use super::{Client, DEADLINE, sized};

mod client;
pub mod fly;
pub mod proc;
mod process;

pub use client::{Answer, ApiClient};
use proc::{runtimes, signal};
use process::ApiProcess;

/// A `catty api --provider local` child process and the directories it lives in. It derefs to
/// the client for its current address and token.
pub struct Daemon {
    process: ApiProcess,
    pub sandbox: bool,
    /// More of the daemon's environment.
    env: Vec<(String, String)>,
}

impl Daemon {
    /// Starts a daemon; `sandbox` false passes `--no-sandbox`.
    pub fn start(sandbox: bool) -> Daemon {
        Daemon::start_in(tempfile::tempdir().unwrap(), sandbox, &[])
    }

    /// Starts a daemon whose directories are in `root`, with `env` added to its environment.
    pub fn start_in(root: tempfile::TempDir, sandbox: bool, env: &[(&str, &str)]) -> Daemon {
        let mut daemon = Daemon {
            process: ApiProcess::new_in(root),
            sandbox,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        daemon.spawn();
        daemon
    }

    /// Holds `state/` (XDG_STATE_HOME), `home/` (HOME) and `api.log` (the daemon's stderr).
    pub fn root(&self) -> &Path {
        self.process.root.path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root().join("state/catty")
    }

    pub fn workspace(&self, session_id: &str) -> PathBuf {
        self.state_dir()
            .join("sessions")
            .join(session_id)
            .join("workspace")
    }

    /// Starts the binary (again, after a stop: same state) and waits until it answers.
    pub fn spawn(&mut self) {
        let mut cmd = api_command(&["--provider", "local"]);
        if !self.sandbox {
            cmd.arg("--no-sandbox");
        }
        let state_home = self.root().join("state");
        cmd.env("XDG_STATE_HOME", &state_home)
            .env("HOME", self.process.home())
            .env("PS1", "$ ")
            .env("CATTY_LOG", "catty=debug,info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("FLY_API_TOKEN")
            .env_remove("CATTY_CMD")
            // Its own process group, as in a terminal, so a test can Ctrl-C the group.
            .process_group(0);
        self.process.spawn(cmd, &state_home);
    }

    /// `kill -9` the daemon.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// SIGTERM the daemon and wait for it to exit; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = self.process.pid();
        self.signal_and_wait(&pid.to_string(), "TERM")
    }

    /// Ctrl-C as a terminal sends it: SIGINT to the daemon's whole process group.
    pub fn interrupt_group(&mut self) -> Option<i32> {
        let pid = self.process.pid();
        self.signal_and_wait(&format!("-{pid}"), "INT")
    }

    fn signal_and_wait(&mut self, target: &str, sig: &str) -> Option<i32> {
        let mut child = self.process.take();
        let sent = Command::new("kill")
            .args([format!("-{sig}").as_str(), "--", target])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{sig} -- {target}");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the daemon ignores SIG{sig}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// An HTTP client for this daemon that a spawned task can own.
    pub fn client(&self) -> ApiClient {
        self.process.api.clone()
    }

    /// The pid of the runtime serving `session_id`, from `/proc`.
    pub fn runtime_pid(&self, session_id: &str) -> Option<i32> {
        runtimes(&self.state_dir())
            .into_iter()
            .find(|(_, id)| id == session_id)
            .map(|(pid, _)| pid)
    }
}

impl Deref for Daemon {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.process.api
    }
}

/// The runtimes run in process groups of their own, so they outlive the daemon: end them too.
impl Drop for Daemon {
    fn drop(&mut self) {
        for (pid, _) in runtimes(&self.state_dir()) {
            signal(pid, "KILL");
        }
    }
}

impl Client {
    /// Attaches to a session the daemon made, with that session's own token.
    pub async fn connect_with_token(
        connect_url: &str,
        token: &str,
        params: &ConnectParams,
    ) -> Result<Client, DialError> {
        let base = connect_url.replacen("http://", "ws://", 1);
        let url = format!("{base}/connect?{}", params.to_query());
        Client::dial(&url, token).await
    }

    /// Attaches interactively (80x24) to a session; panics if it cannot.
    pub async fn attach(connect_url: &str, token: &str) -> Client {
        Client::connect_with_token(connect_url, token, &sized(80, 24))
            .await
            .unwrap_or_else(|e| panic!("cannot attach to {connect_url}: {e}"))
    }

    /// Types `command` and waits for `expect` in the output.
    pub async fn run(&mut self, command: &str, expect: &str) {
        self.send(format!("{command}\n").as_bytes()).await;
        self.read_until_contains(expect).await;
    }
}
