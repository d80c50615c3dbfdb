//! What the local and the Fly.io daemon harnesses share: one `catty api` process in a
//! directory of its own (`home/`, `state/`, `api.log`), started by the launcher, killed on
//! drop, its log printed when the test failed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use super::ApiClient;
use crate::common::launch::start_api;

pub struct ApiProcess {
    child: Option<Child>,
    /// Holds `home/` (HOME), `state/` (XDG_STATE_HOME unless a test gives another) and
    /// `api.log` (the daemon's stderr, across restarts).
    pub root: tempfile::TempDir,
    /// Talks to the daemon as it runs now.
    pub api: ApiClient,
}

impl ApiProcess {
    /// The directory, with nothing started yet.
    pub fn new() -> ApiProcess {
        ApiProcess::new_in(tempfile::tempdir().unwrap())
    }

    /// The same in `root`, a directory the test chose.
    pub fn new_in(root: tempfile::TempDir) -> ApiProcess {
        std::fs::create_dir(root.path().join("home")).unwrap();
        ApiProcess {
            child: None,
            root,
            api: ApiClient {
                addr: ([127, 0, 0, 1], 0).into(),
                token: String::new(),
            },
        }
    }

    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    /// Starts `cmd` (again, after a stop: same directories) with its stderr added to
    /// `api.log`, waits until it answers and reads its token from `state_home`. A restart
    /// listens on a new port, never on one given up before: sessions and the token live in the
    /// state directory, and nothing the tests check depends on the port.
    pub fn spawn(&mut self, mut cmd: Command, state_home: &Path) {
        assert!(self.child.is_none(), "the daemon already runs");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("api.log"))
            .unwrap();
        // Set by a user's shell, it would only name another daemon.
        cmd.env_remove("CATTY_API_ADDR").stderr(log);
        let (child, addr) = start_api(cmd);
        self.child = Some(child);
        self.api.addr = addr;
        // The hosted API has none: each request carries a user's token.
        let token = std::fs::read_to_string(state_home.join("catty/api.token"));
        self.api.token = token.unwrap_or_default().trim().to_string();
    }

    /// The running daemon, taken: the caller stops it.
    pub fn take(&mut self) -> Child {
        self.child.take().expect("the daemon runs")
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("the daemon runs").id() as i32
    }

    /// `kill -9` the daemon.
    pub fn kill9(&mut self) {
        let mut child = self.take();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("api.log")).unwrap_or_default()
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- catty api log ---\n{}", self.log());
        }
    }
}
