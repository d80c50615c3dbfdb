//! A real terminal for client tests: a private tmux server whose pane runs a shell with the
//! test's environment; keys go in with `send-keys`, the screen comes out with `capture-pane`.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::DEADLINE;
use super::launch::{api_command, start_api};

pub struct Tmux {
    socket: String,
    pub dirs: Rc<Dirs>,
}

/// What several terminals of one test share: the state directory, home and daemon address. The
/// last one dropped stops the daemon (if the test did not start it elsewhere) and the sessions.
pub struct Dirs {
    pub state: tempfile::TempDir,
    pub home: tempfile::TempDir,
    pub api_addr: SocketAddr,
    daemon: Daemon,
}

/// Who starts the daemon the terminals' client talks to.
enum Daemon {
    /// This module, before any client, as the client would (`Tmux::start`).
    Here(Child),
    /// The test, by its own means (a Fly.io daemon, a squatter); not ours to stop.
    Test,
    /// The first client. Its address is held by a socket bound with `SO_REUSEADDR` and never
    /// listening: the kernel hands the port to no one else (no `bind` to port 0, no outgoing
    /// connection), while the daemon, which binds with `SO_REUSEADDR` too, may listen on it.
    Client { _held: tokio::net::TcpSocket },
}

impl Drop for Dirs {
    fn drop(&mut self) {
        match &mut self.daemon {
            Daemon::Here(child) => {
                let _ = child.kill();
                let _ = child.wait();
                // One the client started in its place (it restarts a daemon of another build).
                let pattern = format!("api --addr {}$", self.api_addr);
                let _ = Command::new("pkill").args(["-f", "--", &pattern]).output();
            }
            Daemon::Client { .. } => {
                // The client started it as `catty api --addr ADDR`; `$`: not ADDR's prefix.
                let pattern = format!("api --addr {}$", self.api_addr);
                // `--`: the pattern may start with dashes, which pkill would take for options.
                let _ = Command::new("pkill").args(["-f", "--", &pattern]).output();
            }
            Daemon::Test => {}
        }
        let sessions = self.state.path().join("catty/sessions");
        let _ = Command::new("pkill")
            .args(["-f", &sessions.display().to_string()])
            .output();
    }
}

impl Dirs {
    /// The environment of the terminals' shells.
    fn env(&self) -> Vec<(String, String)> {
        pane_env(self.state.path(), self.home.path(), Some(self.api_addr))
    }
}

/// The environment of a shell in a pane, and of the daemon started before it (no address yet).
fn pane_env(state: &Path, home: &Path, api_addr: Option<SocketAddr>) -> Vec<(String, String)> {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_catty")).parent().unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), format!("{}:{path}", bin_dir.display())),
        ("HOME".into(), home.display().to_string()),
        ("XDG_STATE_HOME".into(), state.display().to_string()),
        ("PS1".into(), "$ ".into()),
        ("TERM".into(), "xterm-256color".into()),
    ];
    env.extend(api_addr.map(|addr| ("CATTY_API_ADDR".into(), addr.to_string())));
    env
}

impl Tmux {
    /// A pane of `cols`x`rows` running bash in `cwd`, with catty on PATH, its own state
    /// directory and home, and a daemon started as the client would start it (`catty api`,
    /// logging to the state directory, in its own process group).
    pub fn start(cwd: &Path, cols: u16, rows: u16) -> Tmux {
        Self::start_with_daemon_env(cwd, cols, rows, &[])
    }

    /// Like [`Tmux::start`], with `daemon_env` added to the daemon's environment only (the
    /// panes do not see it).
    pub fn start_with_daemon_env(
        cwd: &Path,
        cols: u16,
        rows: u16,
        daemon_env: &[(&str, &str)],
    ) -> Tmux {
        Self::start_with_daemon(cwd, cols, rows, api_command(&[]), daemon_env)
    }

    /// Like [`Tmux::start_with_daemon_env`], the daemon started by `cmd` (`catty api` of
    /// another build, say) instead of [`api_command`].
    pub fn start_with_daemon(
        cwd: &Path,
        cols: u16,
        rows: u16,
        mut cmd: Command,
        daemon_env: &[(&str, &str)],
    ) -> Tmux {
        let (state, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let state_dir = state.path().join("catty");
        std::fs::create_dir_all(&state_dir).unwrap();
        let log = std::fs::File::create(state_dir.join("api.log")).unwrap();
        cmd.env_remove("CATTY_API_ADDR")
            .envs(pane_env(state.path(), home.path(), None))
            .envs(daemon_env.iter().copied())
            .stderr(log)
            .process_group(0);
        let (child, api_addr) = start_api(cmd);
        let daemon = Daemon::Here(child);
        let dirs = Dirs {
            state,
            home,
            api_addr,
            daemon,
        };
        Self::start_sharing(cwd, cols, rows, Rc::new(dirs))
    }

    /// Like [`Tmux::start`], but no daemon runs: the first `catty` command starts its own.
    pub fn start_without_daemon(cwd: &Path, cols: u16, rows: u16) -> Tmux {
        let held = tokio::net::TcpSocket::new_v4().unwrap();
        held.set_reuseaddr(true).unwrap();
        held.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let dirs = Dirs {
            state: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
            api_addr: held.local_addr().unwrap(),
            daemon: Daemon::Client { _held: held },
        };
        Self::start_sharing(cwd, cols, rows, Rc::new(dirs))
    }

    /// A pane whose client talks to the daemon on `api_addr`, which the test started (with
    /// `state` as its `XDG_STATE_HOME`) or holds by other means.
    pub fn start_with(
        cwd: &Path,
        cols: u16,
        rows: u16,
        state: tempfile::TempDir,
        api_addr: SocketAddr,
    ) -> Tmux {
        let dirs = Dirs {
            state,
            home: tempfile::tempdir().unwrap(),
            api_addr,
            daemon: Daemon::Test,
        };
        Self::start_sharing(cwd, cols, rows, Rc::new(dirs))
    }

    /// Another terminal of the same user: same state directory, home and daemon.
    pub fn another(&self, cwd: &Path, cols: u16, rows: u16) -> Tmux {
        Self::start_sharing(cwd, cols, rows, self.dirs.clone())
    }

    fn start_sharing(cwd: &Path, cols: u16, rows: u16, dirs: Rc<Dirs>) -> Tmux {
        let socket = format!("catty-test-{}", super::client_id());
        let tmux = Tmux { socket, dirs };
        let conf = tmux.dirs.home.path().join(".tmux-test.conf");
        std::fs::write(&conf, "set -g history-limit 400000\n").unwrap();
        let mut cmd = tmux.command();
        cmd.arg("-f").arg(&conf).args([
            "new-session",
            "-d",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
        ]);
        cmd.arg("-c").arg(cwd);
        // tmux resets PATH in new panes from its own: run the shell through `env`.
        cmd.arg("env");
        for (k, v) in tmux.dirs.env() {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.args(["bash", "--norc", "--noprofile"]);
        check(cmd.output().unwrap());
        tmux.wait_for("the shell prompt", |screen| screen.contains("$ "));
        tmux
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket]);
        cmd
    }

    /// Runs `catty ARGS` outside the pane, with the pane's environment.
    pub fn catty(&self, args: &[&str]) -> Output {
        self.catty_with_env(args, &[])
    }

    /// Runs `catty ARGS` outside the pane, with the pane's environment plus `extra`.
    pub fn catty_with_env(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        self.catty_command(args)
            .envs(extra.iter().copied())
            .output()
            .unwrap()
    }

    /// `catty ARGS` with the pane's environment, for the caller to run.
    pub fn catty_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_catty"));
        cmd.args(args).env_clear().envs(self.dirs.env());
        cmd
    }

    /// The daemon's state directory (`$XDG_STATE_HOME/catty`).
    pub fn state_dir(&self) -> PathBuf {
        self.dirs.state.path().join("catty")
    }

    /// Types `text` literally (no Enter).
    pub fn type_text(&self, text: &str) {
        check(
            self.command()
                .args(["send-keys", "-l", text])
                .output()
                .unwrap(),
        );
    }

    /// Sends tmux key names, such as `Enter` or `C-c`.
    pub fn keys(&self, keys: &[&str]) {
        check(self.command().arg("send-keys").args(keys).output().unwrap());
    }

    /// Types a command line and presses Enter.
    pub fn run(&self, line: &str) {
        self.type_text(line);
        self.keys(&["Enter"]);
    }

    pub fn screen(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p", "-J"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&check(out).stdout).into_owned()
    }

    /// The pane's history and screen, for long outputs.
    pub fn history(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p", "-J", "-S", "-", "-E", "-"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&check(out).stdout).into_owned()
    }

    /// Waits until the screen satisfies `done`; returns it.
    pub fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// Runs `command` (a `catty new …` line), waits for the session's shell prompt and
    /// returns the session's label from the line `catty new` printed.
    pub fn start_session(&self, command: &str) -> String {
        self.run(&format!("clear; {command}"));
        let screen = self.wait_for("the session's prompt", |s| {
            s.contains("catty connect") && at_prompt(s)
        });
        let label = screen.split("catty: session ").nth(1).unwrap();
        label.split_whitespace().next().unwrap().to_string()
    }

    pub fn wait_for_text(&self, needle: &str) -> String {
        self.wait_for(needle, |s| s.contains(needle))
    }

    /// The pid of the program the pane's shell is running now (e.g. the catty client).
    pub fn foreground_pid(&self) -> i32 {
        let out = self
            .command()
            .args(["display", "-p", "#{pane_pid}"])
            .output()
            .unwrap();
        let shell = String::from_utf8_lossy(&check(out).stdout)
            .trim()
            .to_string();
        let children =
            std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
        children
            .split_whitespace()
            .next()
            .expect("the shell runs a program")
            .parse()
            .unwrap()
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        let out = self
            .command()
            .args([
                "resize-window",
                "-x",
                &cols.to_string(),
                "-y",
                &rows.to_string(),
            ])
            .output();
        check(out.unwrap());
    }

    /// From now on, appends every byte the pane's programs write to `file` (`pipe-pane`): what
    /// was drawn, even if it was erased before any capture could see it.
    pub fn record(&self, file: &Path) {
        let cat = format!("cat >> '{}'", file.display());
        check(
            self.command()
                .args(["pipe-pane", "-o", &cat])
                .output()
                .unwrap(),
        );
    }

    /// Clears the screen and the pane's history.
    pub fn reset(&self) {
        check(self.command().args(["send-keys", "-R"]).output().unwrap());
        check(self.command().args(["clear-history"]).output().unwrap());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
    }
}

fn check(out: Output) -> Output {
    assert!(
        out.status.success(),
        "tmux failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether a session's shell waits at its prompt: the last thing on the screen is bash's
/// default prompt (`$`, or `#` as root; a session sees none of the caller's `PS1`).
pub fn at_prompt(screen: &str) -> bool {
    let s = screen.trim_end();
    s.ends_with('$') || s.ends_with('#')
}
