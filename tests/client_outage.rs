//! A long outage with the real client (issue 14): `catty connect` in a terminal is stopped
//! (SIGSTOP) for longer than the runtime holds its place, while its program writes 100 MB.
//! Continued, it repaints with one notice line and goes on, and `catty logs` has every byte
//! the program wrote. `CATTY_TEST_OUTAGE_SEC` sets the outage (default 30 s; at least until
//! the program has written it all).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use catty::protocol::{DEAD_LINK, HOLD};

use crate::common::lookup::{LABEL, Lookup};
use crate::common::tmux::Tmux;
use crate::common::{DEADLINE, HEAVY, Proxy, Runtime, succeeded};

/// Says it waits, then once argv[2] exists writes 1,000,000 numbered lines of 100 bytes,
/// creates argv[3], asks for a line and answers `got LINE`. It keeps its own copy of all it
/// wrote (argv[1]); its terminal is raw, so the output is the bytes as written.
const PROGRAM: &str = r#"
import os, sys, time, tty
tty.setraw(0)
copy = open(sys.argv[1], 'wb')
def say(b):
    copy.write(b)
    while b:
        b = b[os.write(1, b):]
say(b'waiting for go\r\n')
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
for start in range(0, 1000000, 1000):
    say(b''.join(b'%09d %s\r\n' % (i, b'.' * 88) for i in range(start + 1, start + 1001)))
open(sys.argv[3], 'w').close()
say(b'wrote 100 MB; type a line\r\n')
line = b''
while not line.endswith(b'\r'):
    line += os.read(0, 1)
say(b'got ' + line[:-1] + b'\r\n')
copy.close()
"#;

#[test]
fn a_stopped_client_repaints_with_one_notice_and_logs_keep_every_byte() {
    // 100 MB three times over (the program's copy, the transcript, what logs print).
    let _turn = HEAVY.blocking_lock();
    let outage = Duration::from_secs(
        std::env::var("CATTY_TEST_OUTAGE_SEC")
            .map_or(30, |v| v.parse().expect("CATTY_TEST_OUTAGE_SEC")),
    );
    let files = tempfile::tempdir().unwrap();
    let [copy, go, written] = ["program.copy", "go", "written"].map(|f| files.path().join(f));
    let argv = [
        "python3",
        "-c",
        PROGRAM,
        path(&copy),
        path(&go),
        path(&written),
    ];
    // The runtime stays after the program's end for `catty logs`.
    let rt = Runtime::start(&argv, &[("CATTY_GRACE_SEC", "300")]);
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let proxy = tokio.block_on(Proxy::start(rt.addr));
    let state = tempfile::tempdir().unwrap();
    let lookup = tokio.block_on(Lookup::start(proxy.addr, state.path()));
    let tmux = Tmux::start_with(files.path(), 80, 24, state, lookup.addr);
    // Not the shell's job: bash would take the terminal back from a stopped job.
    tmux.run(&format!(
        "sh -c 'catty connect {LABEL}; echo client-exit=$?'"
    ));
    tmux.wait_for_text("waiting for go");
    let client = only_child(tmux.foreground_pid());

    signal(client, "STOP");
    let stopped = Instant::now();
    std::fs::write(&go, "").unwrap();
    // Held for the client for a dead link and the hold, then free to write it all.
    let by = stopped + outage.max(DEAD_LINK + HOLD) + 4 * DEADLINE;
    wait_until("the program wrote 100 MB", by, || written.exists());
    let wrote_after = stopped.elapsed();
    std::thread::sleep((stopped + outage).saturating_duration_since(Instant::now()));
    signal(client, "CONT");
    let away = stopped.elapsed();

    tmux.wait_for_text("wrote 100 MB; type a line");
    tmux.run("still-here");
    tmux.wait_for_text("client-exit=0");
    let history = tmux.history();
    let notice = format!("of output while away; catty logs {LABEL} has all of it");
    assert_eq!(history.matches(&notice).count(), 1, "{}", tail(&history));
    assert!(history.contains("got still-here"), "{}", tail(&history));

    let logs = succeeded(tmux.catty(&["logs", LABEL, "--raw"]));
    let wrote = std::fs::read(&copy).unwrap();
    assert!(
        wrote.len() > 100_000_000,
        "the program wrote {}",
        wrote.len()
    );
    assert!(
        logs.stdout == wrote,
        "catty logs has {} bytes, the program wrote {}",
        logs.stdout.len(),
        wrote.len()
    );
    let _ = writeln!(
        std::io::stderr(),
        "client_outage: stopped {:.0} s (100 MB written after {:.0} s); repainted with one \
         notice; catty logs has all {} bytes",
        away.as_secs_f64(),
        wrote_after.as_secs_f64(),
        wrote.len()
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The one child of process `pid`.
fn only_child(pid: i32) -> i32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let children: Vec<i32> = children
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    assert_eq!(children.len(), 1, "process {pid} has children {children:?}");
    children[0]
}

fn signal(pid: i32, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status();
    assert!(sent.unwrap().success(), "kill -{name} {pid}");
}

fn wait_until(what: &str, deadline: Instant, done: impl Fn() -> bool) {
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The end of a long history, for a failure message.
fn tail(history: &str) -> String {
    let lines: Vec<&str> = history.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
