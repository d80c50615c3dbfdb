//! A private tmux server for the tmux mode, with a session (of one pane) per contender, driven
//! through one control-mode client (`tmux -C`): each `send-keys` and `capture-pane` is a line
//! on a pipe and its answer, not a process started, so polling a screen every millisecond
//! costs the machine little and puts no fork in what is timed. The control client sits in a
//! session of its own whose pane is silent, so tmux sends it no output to read.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a screen may take to show what is waited for before the bench gives up.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Panes {
    socket: String,
    control: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Panes {
    /// Starts the server (no configuration file: tmux's defaults) and its control client.
    pub fn start() -> Panes {
        let version = Command::new("tmux").arg("-V").output();
        assert!(
            version.is_ok_and(|v| v.status.success()),
            "tmux is missing: apt-get install -y tmux"
        );
        let socket = format!("catty-peers-{}", std::process::id());
        let mut control = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "-C", "new-session"])
            .args(["-s", "control", "--", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start tmux");
        let input = control.stdin.take().unwrap();
        let output = BufReader::new(control.stdout.take().unwrap());
        let mut panes = Panes {
            socket,
            control,
            input,
            output,
        };
        // The answer to `new-session` itself comes first.
        panes.answer("new-session");
        panes
    }

    /// A pane named `name`, `cols`x`rows`, running `argv` in `cwd`.
    pub fn open(&mut self, name: &str, cols: u16, rows: u16, cwd: &Path, argv: &[String]) {
        let cwd = cwd.to_str().unwrap();
        let mut line = format!(
            "new-session -d -s {name} -x {cols} -y {rows} -c {} --",
            quote(cwd)
        );
        for arg in argv {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        self.command(&line);
    }

    /// Sends tmux key names (`Enter`, `C-c`) to pane `name`; returns the instant just before.
    pub fn keys(&mut self, name: &str, keys: &[&str]) -> Instant {
        let at = Instant::now();
        self.command(&format!("send-keys -t {name} {}", keys.join(" ")));
        at
    }

    /// Types `text` literally into pane `name`; returns the instant just before.
    pub fn type_text(&mut self, name: &str, text: &str) -> Instant {
        let at = Instant::now();
        self.command(&format!("send-keys -t {name} -l {}", quote(text)));
        at
    }

    /// The lines of pane `name`'s screen that are not blank, trailing blanks cut.
    pub fn screen(&mut self, name: &str) -> Vec<String> {
        self.command(&format!("capture-pane -p -t {name}"))
            .into_iter()
            .map(|line| line.trim_end().to_string())
            .filter(|line| !line.is_empty())
            .collect()
    }

    /// Polls pane `name`'s screen every `poll` until `done` holds; returns when the screen
    /// that satisfied it was read, and that screen.
    pub fn wait_for(
        &mut self,
        name: &str,
        what: &str,
        poll: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> (Instant, Vec<String>) {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            let screen = self.screen(name);
            let at = Instant::now();
            if done(&screen) {
                return (at, screen);
            }
            assert!(
                at < deadline,
                "tmux: pane {name}: timed out waiting for {what}; the screen ends {:?}",
                &screen[screen.len().saturating_sub(5)..]
            );
            std::thread::sleep(poll);
        }
    }

    /// Runs one tmux command through the control client; returns its output lines.
    fn command(&mut self, line: &str) -> Vec<String> {
        writeln!(self.input, "{line}").expect("tmux control client gone");
        self.answer(line)
    }

    /// Reads up to the end of the next command's answer, skipping notifications.
    fn answer(&mut self, command: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let mut inside = false;
        loop {
            let mut line = String::new();
            let n = self
                .output
                .read_line(&mut line)
                .expect("tmux control client");
            assert!(n > 0, "tmux control client ended while running {command:?}");
            let line = line.trim_end_matches(['\r', '\n']);
            match (inside, line.split(' ').next()) {
                (false, Some("%begin")) => inside = true,
                (false, _) => {}
                (true, Some("%end")) => return lines,
                (true, Some("%error")) => panic!("tmux: {command:?} failed: {lines:?}"),
                (true, _) => lines.push(line.to_string()),
            }
        }
    }
}

impl Drop for Panes {
    /// Ends the server, every pane's program with it (each gets SIGHUP).
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
        let _ = self.control.kill();
        let _ = self.control.wait();
    }
}

/// One argument for tmux's command parser, taken literally: in double quotes, where only
/// `\`, `"` and `$` (a variable) mean something, each escaped.
fn quote(arg: &str) -> String {
    let mut quoted = String::from('"');
    for c in arg.chars() {
        if matches!(c, '\\' | '"' | '$') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}
