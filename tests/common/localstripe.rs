//! localstripe (PyPI `localstripe==1.15.10`, in a venv under `target/localstripe-venv`, or
//! where `CATTY_TEST_LOCALSTRIPE_VENV` says; `.ci/run` installs it, else the first test that
//! needs it, so a plain `cargo test` works on a fresh machine with `python3-venv`): one per test
//! process, on `127.0.0.1` and a port the kernel picks (a small Python launcher binds it and
//! prints it; localstripe's own `--port` cannot take 0), started through
//! `setpriv --pdeathsig` from a thread that lives as long as the process, so it dies with it.
//! Its store is never written to `/tmp/localstripe.pickle` (other test processes run theirs).
//!
//! What it has (checked in its source): customers, products, plans (no prices), payment
//! methods, subscriptions with the pre-basil shape, and signed webhooks for each change
//! (`POST /_config/webhooks/{id}`). No Checkout Sessions and no idempotency keys: those are
//! `common::stripe`'s.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const LAUNCHER: &str = r#"
import logging, socket, sys
from aiohttp import web
from localstripe.resources import store
from localstripe.server import app
store.dump_to_disk = lambda: None
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print("listening on 127.0.0.1:%d" % sock.getsockname()[1], flush=True)
web.run_app(app, sock=sock, print=None)
"#;

static LOCALSTRIPE: OnceLock<SocketAddr> = OnceLock::new();

/// localstripe's URL, started on first use.
pub fn url() -> String {
    format!("http://{}", LOCALSTRIPE.get_or_init(start))
}

fn venv() -> PathBuf {
    match std::env::var_os("CATTY_TEST_LOCALSTRIPE_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/localstripe-venv"),
    }
}

/// Installs localstripe into [`venv`] unless it is there (once per test process: `start`
/// runs once).
fn install() {
    let dir = venv();
    if dir.join("bin/python").is_file() {
        return;
    }
    let run = |cmd: &mut Command| {
        let out = cmd.output().expect("python3 runs");
        assert!(
            out.status.success(),
            "installing localstripe into {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&dir));
    run(Command::new(dir.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "localstripe==1.15.10",
    ]));
}

fn start() -> SocketAddr {
    install();
    let python = venv().join("bin/python");
    assert!(
        python.is_file(),
        "localstripe is not installed in {}: python3 -m venv {0} && {0}/bin/pip install \
         localstripe==1.15.10 (.ci/run does this)",
        venv().display()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    // The thread that starts localstripe outlives every test: it waits for it.
    std::thread::spawn(move || {
        let mut child = Command::new("setpriv")
            .args(["--pdeathsig=KILL", "--"])
            .arg(&python)
            .args(["-c", LAUNCHER])
            .stdout(Stdio::piped())
            .stderr(super::runtime_log())
            .spawn()
            .expect("start localstripe");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        tx.send(line).unwrap();
        // Read on (its access log is on stderr) and wait, keeping the death signal armed.
        let _ = std::io::copy(&mut out, &mut std::io::sink());
        let _ = child.wait();
    });
    let line = rx
        .recv_timeout(super::DEADLINE)
        .expect("localstripe starts");
    (line.trim().strip_prefix("listening on "))
        .unwrap_or_else(|| panic!("localstripe said {line:?}"))
        .parse()
        .unwrap()
}
