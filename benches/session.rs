//! Session benchmark: `catty new` against a warm daemon with the local provider, timed from
//! the command's start to the first byte of the session's prompt in the user's terminal, with
//! and without uploading a generated 80 MiB / 40,000-file workspace. `cargo bench --bench
//! session` (or `just bench`). With `CATTY_BENCH_BASELINE=/path/to/an/older/catty`, that
//! binary runs beside this one, round by round, and the table gives the ratio.

// A bench has no public API: `pub` here only shares items between its own modules.
#![allow(unreachable_pub)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The generated inputs, shared with the peers bench; this one uses the workspace.
#[allow(dead_code)]
#[path = "peers/data.rs"]
mod data;
// Its `api_command` runs this build only; the baseline is another binary.
#[allow(dead_code)]
#[path = "../tests/common/launch.rs"]
mod launch;
#[path = "../tests/common/listen.rs"]
mod listen;

use data::{FILES, WORKSPACE_BYTES, write_workspace};

const ROUNDS: usize = 5;
const PROMPT: &str = "catty-bench$ ";

fn main() {
    let empty = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    write_workspace(project.path());
    let mut binaries = vec![("this", PathBuf::from(env!("CARGO_BIN_EXE_catty")))];
    if let Some(baseline) = std::env::var_os("CATTY_BENCH_BASELINE") {
        binaries.push(("baseline", PathBuf::from(baseline)));
    }
    let mb = WORKSPACE_BYTES as f64 / 1e6;
    for sandbox in [false, true] {
        println!("sandbox {}:", if sandbox { "on" } else { "off" });
        let states: Vec<_> = binaries
            .iter()
            .map(|_| tempfile::tempdir().unwrap())
            .collect();
        let daemons: Vec<Daemon> = (binaries.iter().zip(&states))
            .map(|((_, exe), state)| Daemon::start(exe, state.path(), sandbox))
            .collect();
        // One session each first, so the daemons and the page cache are warm; then the
        // binaries take turns, round by round.
        let mut bare = vec![Vec::new(); daemons.len()];
        let mut upload = vec![Vec::new(); daemons.len()];
        for round in 0..=ROUNDS {
            for (i, daemon) in daemons.iter().enumerate() {
                let t = new_to_prompt(daemon, empty.path(), &["--no-upload"]);
                if round > 0 {
                    bare[i].push(t);
                }
                if round > 0 && round <= 3 {
                    upload[i].push(new_to_prompt(daemon, project.path(), &[]));
                }
            }
        }
        let bare: Vec<f64> = bare.into_iter().map(median).collect();
        let upload: Vec<f64> = upload.into_iter().map(median).collect();
        for (i, (name, _)) in binaries.iter().enumerate() {
            println!(
                "  {name:8} catty new -- bash, warm daemon, to the first prompt byte: {:7.1} ms (median of {ROUNDS})",
                bare[i] * 1e3
            );
            println!(
                "  {name:8} the same with an upload of {FILES} files / {mb:.0} MB:  {:7.1} ms, upload {:.2} s = {:.1} MB/s",
                upload[i] * 1e3,
                upload[i] - bare[i],
                mb / (upload[i] - bare[i])
            );
        }
        if bare.len() == 2 {
            println!(
                "  this/baseline: start {:.2}, start with upload {:.2}",
                bare[0] / bare[1],
                upload[0] / upload[1]
            );
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Daemon {
    child: Child,
    exe: PathBuf,
    addr: String,
    state: PathBuf,
}

impl Daemon {
    fn start(exe: &Path, state: &Path, sandbox: bool) -> Daemon {
        let mut cmd = Command::new(exe);
        cmd.args(["api", "--provider", "local"])
            .stdin(Stdio::null());
        if !sandbox {
            cmd.arg("--no-sandbox");
        }
        cmd.env("XDG_STATE_HOME", state).env("CATTY_LOG", "warn");
        let (child, addr) = launch::start_api(cmd);
        Daemon {
            child,
            exe: exe.to_path_buf(),
            addr: addr.to_string(),
            state: state.to_path_buf(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new(&self.exe)
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
    let mut child = Command::new(&daemon.exe)
        .arg("new")
        .args(args)
        // Sessions see none of our variables: the prompt to wait for is set here.
        .args([
            "--",
            "env",
            &format!("PS1={PROMPT}"),
            "bash",
            "--norc",
            "--noprofile",
        ])
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
