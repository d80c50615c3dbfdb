//! Local sessions in the bubblewrap sandbox: nothing outside the workspace, the private home
//! and /tmp is writable (not even as root, not even by remounting), and `ps` sees only the
//! session's own processes. Skipped, loudly, where bwrap is not installed.

use std::path::Path;
use std::process::Command;

use crate::common::api::Daemon;
use crate::common::api::proc::{alive, wait_until};
use crate::common::{Client, which};
use catty::protocol::api::SessionState;

const ESCAPE: &str = "/etc/catty-sandbox-escape";

/// The checks the session's program runs; each prints `name=<exit status>`.
const SCRIPT: &str = r#"
touch /etc/catty-sandbox-escape 2>/dev/null; echo "etc=$?"
mount -o remount,rw,bind / 2>/dev/null; touch /etc/catty-sandbox-escape 2>/dev/null; echo "remount=$?"
touch "$HOME/../catty-sandbox-escape" 2>/dev/null; echo "above-home=$?"
touch "$HOME/in-home"; echo "home=$?"
touch /tmp/in-tmp; echo "tmp=$?"
touch ./in-workspace; echo "workspace=$?"
echo "procs=$(ps -e --no-headers | wc -l)"
ps -e -o pid=,comm=
echo "checks-done"
exec sleep 600
"#;

fn bwrap_installed() -> Result<(), String> {
    match Command::new("bwrap").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "bwrap --version failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("bwrap cannot run: {e}")),
    }
}

/// The number on the line `name=<number>` of `text`.
fn value(text: &str, name: &str) -> i64 {
    let prefix = format!("{name}=");
    let line = text
        .lines()
        .find_map(|line| line.trim().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no line {prefix}… in {text:?}"));
    line.parse()
        .unwrap_or_else(|_| panic!("{prefix} without a number in {text:?}"))
}

#[tokio::test]
async fn sandboxed_session_is_confined() {
    if let Err(why) = bwrap_installed() {
        eprintln!("SKIPPED sandboxed_session_is_confined: {why} (install bubblewrap to run it)");
        return;
    }
    let d = Daemon::start(true);
    assert!(
        d.log()
            .contains("local sessions run in a bubblewrap sandbox"),
        "bwrap is installed but the daemon did not use it:\n{}",
        d.log()
    );
    let created = d
        .create(serde_json::json!({"agent": "shell", "cmd": ["sh", "-c", SCRIPT]}))
        .await;
    let mut c = Client::attach(&created.connect_url, &created.connect_token).await;
    c.read_until_contains("checks-done").await;
    let out = c.text();
    let escaped = Path::new(ESCAPE).exists();
    let _ = std::fs::remove_file(ESCAPE);
    assert!(!escaped, "the session wrote {ESCAPE}; output:\n{out}");
    assert_ne!(value(&out, "etc"), 0, "{out}");
    assert_ne!(
        value(&out, "remount"),
        0,
        "remounting / writable worked:\n{out}"
    );
    assert_ne!(value(&out, "above-home"), 0, "{out}");
    assert_eq!(
        value(&out, "home"),
        0,
        "the private home is writable:\n{out}"
    );
    assert_eq!(value(&out, "tmp"), 0, "/tmp is writable:\n{out}");
    assert_eq!(
        value(&out, "workspace"),
        0,
        "the workspace is writable:\n{out}"
    );
    assert!(
        d.workspace(&created.session_id)
            .join("in-workspace")
            .exists()
    );
    assert!(
        !Path::new("/tmp/in-tmp").exists(),
        "/tmp is the session's own"
    );

    // Only the session's processes: bwrap, the runtime, sh, ps and wc (and a subshell).
    let procs = value(&out, "procs");
    let host_procs = std::fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .parse::<u32>()
                .is_ok()
        })
        .count();
    assert!(procs <= 7, "ps sees {procs} processes:\n{out}");
    assert!(
        host_procs > 10,
        "this host runs too few processes ({host_procs}) for the check"
    );

    // Stopping ends the runtime (the process the daemon signals is inside bwrap) and the
    // whole sandbox with it.
    drop(c);
    let pid = d
        .runtime_pid(&created.session_id)
        .expect("the runtime runs");
    assert_eq!(d.stop(&created.label).await.state, SessionState::Stopped);
    assert!(!alive(pid), "the runtime outlived stop");
    let workspace = d.workspace(&created.session_id).display().to_string();
    wait_until("every process of the sandbox to end", || {
        !sandbox_processes(&workspace)
    });
}

/// Whether any live process (bwrap included) still mentions `workspace` on its command line.
fn sandbox_processes(workspace: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            return false;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        alive(pid) && String::from_utf8_lossy(&cmdline).contains(workspace)
    })
}

/// The pids of live processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            alive(pid)
                && String::from_utf8_lossy(&cmdline)
                    .replace('\0', " ")
                    .contains(needle)
        })
        .collect()
}

/// A program that leaves processes behind, one of them in a session of its own (as a
/// daemon does), is stopped: none of them survives.
async fn nothing_survives_stop(sandbox: bool) {
    let d = Daemon::start(sandbox);
    // Unusual durations name this test's processes on the whole host.
    let mut n = [0u8; 2];
    getrandom::fill(&mut n).unwrap();
    let base = 4_000_000 + u32::from(u16::from_le_bytes(n)) * 10;
    let (daemonized, background, program) = (base + 1, base + 2, base + 3);
    let script = format!(
        "setsid sleep {daemonized} & sleep {background} & echo started; exec sleep {program}"
    );
    let created = d
        .create(serde_json::json!({"agent": "shell", "cmd": ["sh", "-c", script]}))
        .await;
    let mut c = Client::attach(&created.connect_url, &created.connect_token).await;
    c.read_until_contains("started").await;
    for n in [daemonized, background, program] {
        let needle = format!("sleep {n}");
        wait_until(&format!("{needle} to run"), || {
            !processes_with(&needle).is_empty()
        });
    }
    drop(c);
    d.stop(&created.label).await;
    for n in [daemonized, background, program] {
        let needle = format!("sleep {n}");
        wait_until(&format!("{needle} to end with the session"), || {
            processes_with(&needle).is_empty()
        });
    }
}

#[tokio::test]
async fn no_process_of_a_sandboxed_session_survives_stop() {
    if let Err(why) = bwrap_installed() {
        eprintln!("SKIPPED no_process_of_a_sandboxed_session_survives_stop: {why}");
        return;
    }
    nothing_survives_stop(true).await;
}

#[tokio::test]
async fn no_process_of_an_unsandboxed_session_survives_stop() {
    nothing_survives_stop(false).await;
}

/// Without slirp4netns the daemon says once what to install, and sandboxes share this
/// computer's network (as before there was a network of their own): a loopback listener here
/// is reached from inside.
#[tokio::test]
async fn without_slirp4netns_the_daemon_says_so_and_shares_the_network() {
    if let Err(why) = bwrap_installed() {
        eprintln!("SKIPPED without_slirp4netns…: {why} (install bubblewrap to run it)");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let bwrap = which("bwrap");
    std::os::unix::fs::symlink(bwrap, bin.join("bwrap")).unwrap();
    let path = bin.display().to_string();
    let d = Daemon::start_in(root, true, &[("PATH", &path)]);
    let log = d.log();
    assert_eq!(log.matches("install slirp4netns").count(), 1, "{log}");
    assert!(
        log.contains("local sessions run in a bubblewrap sandbox"),
        "{log}"
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 5)'; \
         echo \"loopback=$?\"; echo checks-done; exec sleep 600"
    );
    let created = d
        .create(serde_json::json!({
            "agent": "shell", "cmd": ["sh", "-c", script], "path": "/usr/bin:/bin"
        }))
        .await;
    let mut c = Client::attach(&created.connect_url, &created.connect_token).await;
    c.read_until_contains("checks-done").await;
    assert_eq!(value(&c.text(), "loopback"), 0, "{}", c.text());
}
