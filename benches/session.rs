//! Session benchmark: `catty new` against a warm daemon with the local provider, timed from
//! the command's start to the first byte of the session's prompt in the user's terminal, with
//! and without uploading a generated 80 MiB / 40,000-file workspace. `cargo bench --bench
//! session` (or `just bench`).

// A bench has no public API: `pub` here only shares items between its own modules.
#![allow(unreachable_pub)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The generated inputs, shared with the peers bench; this one uses the workspace.
#[allow(dead_code)]
#[path = "peers/data.rs"]
mod data;
#[path = "../tests/common/launch.rs"]
mod launch;
#[path = "../tests/common/listen.rs"]
mod listen;

use data::{FILES, WORKSPACE_BYTES, write_workspace};

const ROUNDS: usize = 5;
const PROMPT: &str = "catty-bench$ ";

fn main() {
    let state = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    write_workspace(project.path());
    for sandbox in [false, true] {
        let daemon = Daemon::start(state.path(), sandbox);
        // One session first, so the daemon and the page cache are warm.
        new_to_prompt(&daemon, empty.path(), &["--no-upload"]);
        let bare: Vec<f64> = (0..ROUNDS)
            .map(|_| new_to_prompt(&daemon, empty.path(), &["--no-upload"]))
            .collect();
        let upload: Vec<f64> = (0..ROUNDS.min(3))
            .map(|_| new_to_prompt(&daemon, project.path(), &[]))
            .collect();
        let (bare, upload) = (median(bare), median(upload));
        let mb = WORKSPACE_BYTES as f64 / 1e6;
        println!("sandbox {}:", if sandbox { "on" } else { "off" });
        println!(
            "  catty new -- bash, warm daemon, to the first prompt byte: {:7.1} ms (median of {ROUNDS})",
            bare * 1e3
        );
        println!(
            "  the same with an upload of {FILES} files / {mb:.0} MB:  {:7.1} ms, upload {:.2} s = {:.1} MB/s",
            upload * 1e3,
            upload - bare,
            mb / (upload - bare)
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Daemon {
    child: Child,
    addr: String,
    state: std::path::PathBuf,
}

impl Daemon {
    fn start(state: &Path, sandbox: bool) -> Daemon {
        let mut cmd = launch::api_command(&["--provider", "local"]);
        if !sandbox {
            cmd.arg("--no-sandbox");
        }
        cmd.env("XDG_STATE_HOME", state)
            .env("CATTY_LOG", "warn")
            // Sessions inherit the daemon's environment: this is the prompt to wait for.
            .env("PS1", PROMPT);
        let (child, addr) = launch::start_api(cmd);
        Daemon {
            child,
            addr: addr.to_string(),
            state: state.to_path_buf(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_catty"))
            .args(["stop-all-sessions-dangerously", "--yes-i-mean-it"])
            .env("XDG_STATE_HOME", &self.state)
            .env("CATTY_API_ADDR", &self.addr)
            .output();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `catty new ARGS -- bash` on a PTY in `dir`; seconds until the prompt shows.
fn new_to_prompt(daemon: &Daemon, dir: &Path, args: &[&str]) -> f64 {
    let pty = nix::pty::openpty(None, None).unwrap();
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_catty"))
        .arg("new")
        .args(args)
        .args(["--", "bash", "--norc", "--noprofile"])
        .current_dir(dir)
        .env("XDG_STATE_HOME", &daemon.state)
        .env("CATTY_API_ADDR", &daemon.addr)
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave))
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(PROMPT) {
        let n = master
            .read(&mut buf)
            .expect("catty new ended before the prompt");
        assert!(
            n > 0,
            "catty new ended before the prompt: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    let elapsed = start.elapsed().as_secs_f64();
    master.write_all(b"exit\r").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "catty new did not exit");
        let _ = master.read(&mut buf);
    }
    elapsed
}
