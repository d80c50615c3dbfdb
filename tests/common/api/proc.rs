//! What `/proc` says about session runtimes, for the daemon's tests: find them, tell
//! whether they still run, signal them, and wait on conditions with a deadline.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::super::DEADLINE;

/// Every `catty exec … --workspace <state_dir>/sessions/<id>/workspace` process: (pid, id).
pub fn runtimes(state_dir: &Path) -> Vec<(i32, String)> {
    let sessions = state_dir.join("sessions");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let argv: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if argv.get(1).map(String::as_str) != Some("exec") || !alive(pid) {
            continue;
        }
        let Some(at) = argv.iter().position(|a| a == "--workspace") else {
            continue;
        };
        let Some(Ok(rest)) = argv
            .get(at + 1)
            .map(|w| Path::new(w).strip_prefix(&sessions))
        else {
            continue;
        };
        if let Some(id) = rest.iter().next() {
            found.push((pid, id.to_string_lossy().into_owned()));
        }
    }
    found
}

/// Whether `pid` exists and has not exited (a zombie counts as exited).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        !state.is_some_and(|s| s.starts_with('Z') || s.starts_with('X'))
    })
}

/// `kill -SIG pid`.
pub fn signal(pid: i32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Polls `done` until it holds, failing the test at the deadline.
pub fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
