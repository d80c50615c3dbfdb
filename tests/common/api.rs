//! Test support for the daemon: a real `catty api --provider local` with its own state
//! directory and `HOME` (killed on drop, with every runtime it started), the HTTP client for it
//! (`client.rs`), and `/proc` helpers to find and signal session runtimes.

use std::ops::Deref;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use catty::net::DialError;
use catty::protocol::ConnectParams;

use super::launch::{api_command, start_api};
use super::{Client, DEADLINE, sized};

mod client;
pub mod fly;
pub mod proc;

pub use client::{Answer, ApiClient};
use proc::{runtimes, signal};

/// A `catty api` child process and the directories it lives in. It derefs to the client for
/// its current address and token.
pub struct Daemon {
    child: Option<Child>,
    api: ApiClient,
    /// Holds `state/` (XDG_STATE_HOME), `home/` (HOME) and `api.log` (the daemon's stderr).
    pub root: tempfile::TempDir,
    pub sandbox: bool,
}

impl Daemon {
    /// Starts a daemon; `sandbox` false passes `--no-sandbox`.
    pub fn start(sandbox: bool) -> Daemon {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("home")).unwrap();
        let api = ApiClient {
            addr: ([127, 0, 0, 1], 0).into(),
            token: String::new(),
        };
        let mut daemon = Daemon {
            child: None,
            api,
            root,
            sandbox,
        };
        daemon.spawn();
        daemon
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.path().join("state/catty")
    }

    pub fn workspace(&self, session_id: &str) -> PathBuf {
        self.state_dir()
            .join("sessions")
            .join(session_id)
            .join("workspace")
    }

    /// Starts the binary (again, after a stop: same state) and waits until it answers. A
    /// restart listens on a new port, never on one given up before: the sessions and the
    /// token live in the state directory, and nothing the tests check depends on the port.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "the daemon already runs");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("api.log"))
            .unwrap();
        let mut cmd = api_command(&["--provider", "local"]);
        if !self.sandbox {
            cmd.arg("--no-sandbox");
        }
        cmd.env("XDG_STATE_HOME", self.root.path().join("state"))
            .env("HOME", self.root.path().join("home"))
            .env("PS1", "$ ")
            .env("CATTY_LOG", "catty=debug,info")
            .env_remove("CATTY_API_ADDR")
            .env_remove("FLY_API_TOKEN")
            .env_remove("CATTY_CMD")
            .stderr(log)
            // Its own process group, as in a terminal, so a test can Ctrl-C the group.
            .process_group(0);
        let (child, addr) = start_api(cmd);
        self.child = Some(child);
        self.api.addr = addr;
        self.api.token = std::fs::read_to_string(self.state_dir().join("api.token"))
            .unwrap()
            .trim()
            .to_string();
    }

    /// `kill -9` the daemon.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the daemon runs");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM the daemon and wait for it to exit; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.as_ref().expect("the daemon runs").id() as i32;
        self.signal_and_wait(&pid.to_string(), "TERM")
    }

    /// Ctrl-C as a terminal sends it: SIGINT to the daemon's whole process group.
    pub fn interrupt_group(&mut self) -> Option<i32> {
        let pid = self.child.as_ref().expect("the daemon runs").id() as i32;
        self.signal_and_wait(&format!("-{pid}"), "INT")
    }

    fn signal_and_wait(&mut self, target: &str, sig: &str) -> Option<i32> {
        let mut child = self.child.take().expect("the daemon runs");
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
        std::fs::read_to_string(self.root.path().join("api.log")).unwrap_or_default()
    }

    /// An HTTP client for this daemon that a spawned task can own.
    pub fn client(&self) -> ApiClient {
        self.api.clone()
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
        &self.api
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for (pid, _) in runtimes(&self.state_dir()) {
            signal(pid, "KILL");
        }
        if std::thread::panicking() {
            eprintln!("--- catty api log ---\n{}", self.log());
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
