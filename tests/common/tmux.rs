//! A real terminal for client tests: a private tmux server whose pane runs a shell with the
//! test's environment; keys go in with `send-keys`, the screen comes out with `capture-pane`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::DEADLINE;

pub struct Tmux {
    socket: String,
    pub dirs: Rc<Dirs>,
}

/// What several terminals of one test share: the state directory, home and daemon port. The
/// last one dropped stops the daemon and the sessions it started.
pub struct Dirs {
    pub state: tempfile::TempDir,
    pub home: tempfile::TempDir,
    pub api_addr: String,
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            // `--`: the pattern starts with dashes, which pkill would take for an option.
            .args(["-f", "--", &format!("--addr {}", self.api_addr)])
            .output();
        let sessions = self.state.path().join("catty/sessions");
        let _ = Command::new("pkill")
            .args(["-f", &sessions.display().to_string()])
            .output();
    }
}

impl Tmux {
    /// A pane of `cols`x`rows` running bash in `cwd`, with catty on PATH, its own state
    /// directory, home and daemon port.
    pub fn start(cwd: &Path, cols: u16, rows: u16) -> Tmux {
        let dirs = Dirs {
            state: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
            api_addr: format!("127.0.0.1:{}", free_port()),
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
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_catty"))
            .parent()
            .unwrap()
            .to_path_buf();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
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
        for (k, v) in tmux.env(&path) {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.args(["bash", "--norc", "--noprofile"]);
        check(cmd.output().unwrap());
        tmux.wait_for("the shell prompt", |screen| screen.contains("$ "));
        tmux
    }

    fn env(&self, path: &str) -> Vec<(String, String)> {
        vec![
            ("PATH".into(), path.into()),
            ("HOME".into(), self.dirs.home.path().display().to_string()),
            (
                "XDG_STATE_HOME".into(),
                self.dirs.state.path().display().to_string(),
            ),
            ("CATTY_API_ADDR".into(), self.dirs.api_addr.clone()),
            ("PS1".into(), "$ ".into()),
            ("TERM".into(), "xterm-256color".into()),
        ]
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket]);
        cmd
    }

    /// Runs `catty ARGS` outside the pane, with the pane's environment.
    pub fn catty(&self, args: &[&str]) -> Output {
        let bin = env!("CARGO_BIN_EXE_catty");
        let path = std::env::var("PATH").unwrap_or_default();
        Command::new(bin)
            .args(args)
            .env_clear()
            .envs(self.env(&path))
            .output()
            .unwrap()
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

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
