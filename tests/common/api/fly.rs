//! `catty api --provider fly` against the fake of Fly.io (`common::fly`), with its own state
//! directory and `HOME`, killed on drop. It derefs to the client for its address and token.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Child;

use super::ApiClient;
use crate::common::fly::FakeFly;
use crate::common::launch::{api_command, start_api};

pub struct FlyDaemon {
    child: Option<Child>,
    root: tempfile::TempDir,
    state_home: PathBuf,
    env: Vec<(String, String)>,
    api: ApiClient,
}

impl FlyDaemon {
    /// A daemon with its own state directory; `extra` adds to or replaces its environment.
    pub fn start(fake: &FakeFly, extra: &[(&str, &str)]) -> FlyDaemon {
        FlyDaemon::start_in(fake, None, extra)
    }

    /// The daemon a client finds with the state under `state_home` (a terminal's).
    pub fn start_in(
        fake: &FakeFly,
        state_home: Option<&Path>,
        extra: &[(&str, &str)],
    ) -> FlyDaemon {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("home")).unwrap();
        let state_home = state_home.map_or_else(|| root.path().join("state"), Path::to_path_buf);
        // Pasted with the wrong scheme: the provider must send `FlyV1` for a macaroon.
        let mut env = vec![
            ("FLY_API_TOKEN".into(), format!("Bearer {}", fake.token())),
            ("FLY_MACHINES_API_BASE".into(), fake.api_base()),
            ("CATTY_EXEC_URL".into(), fake.edge_url()),
            ("XDG_STATE_HOME".into(), state_home.display().to_string()),
            (
                "HOME".into(),
                root.path().join("home").display().to_string(),
            ),
            ("CATTY_LOG".into(), "catty=debug,info".into()),
        ];
        for (k, v) in extra {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v.to_string()));
        }
        let api = ApiClient {
            addr: ([127, 0, 0, 1], 0).into(),
            token: String::new(),
        };
        let mut daemon = FlyDaemon {
            child: None,
            root,
            state_home,
            env,
            api,
        };
        daemon.spawn();
        daemon
    }

    /// Starts the binary (again, after a kill: same state) and waits until it answers. A
    /// restart listens on a new port, never on one given up before; nothing here depends on it.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "the daemon already runs");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("api.log"))
            .unwrap();
        let mut cmd = api_command(&["--provider", "fly"]);
        for name in [
            "CATTY_API_ADDR",
            "CATTY_EXEC_APP",
            "CATTY_EXEC_HOST",
            "CATTY_IMAGE",
            "CATTY_CMD",
        ] {
            cmd.env_remove(name);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v))).stderr(log);
        let (child, addr) = start_api(cmd);
        self.child = Some(child);
        self.api.addr = addr;
        let token = self.state_home.join("catty/api.token");
        self.api.token = std::fs::read_to_string(token).unwrap().trim().to_string();
    }

    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the daemon runs");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("api.log")).unwrap_or_default()
    }
}

impl Deref for FlyDaemon {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.api
    }
}

impl Drop for FlyDaemon {
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
