//! catty's side: a warm daemon with the local provider on a private state directory (sandbox
//! off or on), `catty new` on a terminal of ours, and where a session's runtime is (its pid
//! for memory, its port for cutting the link).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::launch::start_api;
use crate::proc;
use crate::pty::Term;
use crate::{PROMPT, SHELL};

/// A session with an 80 MiB upload on a busy machine: seconds; minutes mean it is stuck.
const NEW_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Daemon {
    child: Child,
    addr: String,
    state: String,
    pub sandbox: bool,
}

impl Daemon {
    /// Starts `catty api --provider local` on a loopback port of the kernel's choosing with
    /// `state` as `XDG_STATE_HOME`.
    pub fn start(state: &Path, sandbox: bool) -> Daemon {
        std::fs::create_dir_all(state).unwrap();
        let mut cmd = Command::new(catty());
        cmd.args(["api", "--provider", "local"])
            .stdin(Stdio::null());
        if !sandbox {
            cmd.arg("--no-sandbox");
        }
        // Info level: the runtime logs each client attaching, which resume reports.
        let log = std::fs::File::create(state.join("api.log")).unwrap();
        cmd.env("XDG_STATE_HOME", state)
            .env("CATTY_LOG", "info")
            .stderr(log);
        let (child, addr) = start_api(cmd);
        Daemon {
            child,
            addr: addr.to_string(),
            state: state.to_str().unwrap().to_string(),
            sandbox,
        }
    }

    pub fn name(&self) -> &'static str {
        match self.sandbox {
            true => "catty (sandbox on)",
            false => "catty (sandbox off)",
        }
    }

    /// What a catty client needs to find this daemon.
    pub fn env(&self) -> [(&str, &str); 2] {
        [
            ("XDG_STATE_HOME", &self.state),
            ("CATTY_API_ADDR", &self.addr),
        ]
    }

    /// `catty new [--no-upload] -- bash` on a new terminal in `cwd`, not waited for.
    pub fn spawn_new(&self, cwd: &Path, upload: bool) -> Term {
        let argv = new_argv(upload);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        Term::spawn(self.name(), &argv, &self.env(), cwd)
    }

    pub fn command(&self, args: &[&str]) -> Output {
        Command::new(catty())
            .args(args)
            .envs(self.env())
            .stdin(Stdio::null())
            .output()
            .expect("cannot run catty")
    }

    pub fn stop(&self, label: &str) {
        let _ = self.command(&["stop", label]);
    }

    /// The session `label` as `catty list --json` has it.
    fn info(&self, label: &str) -> serde_json::Value {
        let out = self.command(&["list", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("catty list --json: {e}: {out:?}"));
        list.into_iter()
            .find(|s| s["label"] == label)
            .unwrap_or_else(|| panic!("session {label} is not listed"))
    }

    /// The loopback port of `label`'s runtime.
    pub fn runtime_port(&self, label: &str) -> u16 {
        let url = self.info(label)["connect_url"]
            .as_str()
            .unwrap()
            .to_string();
        url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// How many times a client attached to `label`'s runtime so far (from its log).
    pub fn attaches(&self, label: &str) -> usize {
        let id = self.info(label)["session_id"].as_str().unwrap().to_string();
        let log = format!("{}/catty/sessions/{id}/runtime.log", self.state);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.matches("client attached").count()
    }

    /// The `catty exec` process of `label` (inside bubblewrap, when the sandbox is on).
    pub fn runtime_pid(&self, label: &str) -> i32 {
        let id = self.info(label)["session_id"].as_str().unwrap().to_string();
        let workspace = format!("{}/catty/sessions/{id}/workspace", self.state);
        let pid = proc::pids()
            .into_iter()
            .find(|pid| {
                let argv = proc::cmdline(*pid);
                argv.get(1).is_some_and(|a| a == "exec") && argv.contains(&workspace)
            })
            .unwrap_or_else(|| panic!("no runtime process for {label}"));
        // Be sure the column says what it measures.
        let parent = proc::stat_field(pid, 4).unwrap() as i32;
        assert_eq!(
            proc::comm(parent) == "bwrap",
            self.sandbox,
            "{}: the runtime's parent is {}",
            self.name(),
            proc::comm(parent)
        );
        pid
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.command(&["stop-all-sessions-dangerously", "--yes-i-mean-it"]);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A session attached on a terminal of ours, at its first prompt; stopped when dropped.
pub struct Session<'a> {
    pub term: Term,
    pub label: String,
    daemon: &'a Daemon,
}

impl<'a> Session<'a> {
    pub fn new(daemon: &'a Daemon, cwd: &Path) -> Session<'a> {
        let mut term = daemon.spawn_new(cwd, false);
        let (_, seen) = term.wait_for_text(PROMPT.as_bytes(), NEW_TIMEOUT);
        Session {
            term,
            label: label_in(&seen),
            daemon,
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.term.kill();
        self.daemon.stop(&self.label);
    }
}

/// Seconds from starting `catty new` in `cwd` to its prompt on our terminal; the session is
/// ended and stopped afterwards.
pub fn new_to_prompt(daemon: &Daemon, cwd: &Path, upload: bool) -> f64 {
    let start = Instant::now();
    let mut term = daemon.spawn_new(cwd, upload);
    let (at, seen) = term.wait_for_text(PROMPT.as_bytes(), NEW_TIMEOUT);
    let elapsed = at.duration_since(start).as_secs_f64();
    term.write(b"exit\r");
    term.wait_exit(Duration::from_secs(20));
    daemon.stop(&label_in(&seen));
    elapsed
}

/// The label in `catty: session LABEL (reattach with …)`.
pub fn label_in(seen: &str) -> String {
    let after = seen
        .split("catty: session ")
        .nth(1)
        .unwrap_or_else(|| panic!("no session label in {seen:?}"));
    after.split_whitespace().next().unwrap().to_string()
}

/// The catty binary every contender runs: this build's, or the one `CATTY_BENCH_BIN` names,
/// to time another build with the same harness (one new enough for `catty list --json`).
pub fn catty() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("CATTY_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_catty").into())
    })
}

/// `catty new [--no-upload] -- bash` with the bench's prompt (sessions see none of our
/// variables: it is set in the session).
pub fn new_argv(upload: bool) -> Vec<String> {
    let mut argv = vec![catty(), "new"];
    if !upload {
        argv.push("--no-upload");
    }
    let prompt = format!("PS1={PROMPT}");
    argv.extend(["--", "env", &prompt]);
    argv.extend(SHELL);
    argv.into_iter().map(String::from).collect()
}

/// Where the bench keeps a daemon's state.
pub fn state_dir(scratch: &Path, sandbox: bool) -> PathBuf {
    scratch.join(if sandbox { "state-sandbox" } else { "state" })
}
