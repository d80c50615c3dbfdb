//! `catty api --provider fly` against the fake of Fly.io (`common::fly`), with its own state
//! directory and `HOME`, killed on drop. It derefs to the client for its address and token.

use std::ops::Deref;
use std::path::{Path, PathBuf};

use super::ApiClient;
use super::process::ApiProcess;
use crate::common::fly::FakeFly;
use crate::common::launch::api_command;

pub struct FlyDaemon {
    process: ApiProcess,
    state_home: PathBuf,
    env: Vec<(String, String)>,
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
        let process = ApiProcess::new();
        let state_home =
            state_home.map_or_else(|| process.root.path().join("state"), Path::to_path_buf);
        // Pasted with the wrong scheme: the provider must send `FlyV1` for a macaroon.
        let mut env = vec![
            ("FLY_API_TOKEN".into(), format!("Bearer {}", fake.token())),
            ("FLY_MACHINES_API_BASE".into(), fake.api_base()),
            ("CATTY_EXEC_URL".into(), fake.edge_url()),
            ("XDG_STATE_HOME".into(), state_home.display().to_string()),
            ("HOME".into(), process.home().display().to_string()),
            ("CATTY_LOG".into(), "catty=debug,info".into()),
        ];
        for (k, v) in extra {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v.to_string()));
        }
        let mut daemon = FlyDaemon {
            process,
            state_home,
            env,
        };
        daemon.spawn();
        daemon
    }

    /// Starts the binary (again, after a kill: same state) and waits until it answers.
    pub fn spawn(&mut self) {
        let mut cmd = api_command(&["--provider", "fly"]);
        for name in [
            "CATTY_EXEC_APP",
            "CATTY_EXEC_HOST",
            "CATTY_IMAGE",
            "CATTY_CMD",
        ] {
            cmd.env_remove(name);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        self.process.spawn(cmd, &self.state_home);
    }

    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

impl Deref for FlyDaemon {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.process.api
    }
}
