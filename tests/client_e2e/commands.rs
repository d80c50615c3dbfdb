//! The commands besides a session's terminal: `version`, `list`, `stop`, the refusals, and
//! the daemon the client starts when none answers (`daemon.rs`: when it cannot start).

use std::process::Command;

use super::{new_session, only_session, sessions};
use crate::common::HEAVY;
use crate::common::launch::healthz;
use crate::common::tmux::Tmux;

#[test]
fn version_prints_the_package_version() {
    let version = Command::new(env!("CARGO_BIN_EXE_catty"))
        .arg("version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("catty {}", env!("CARGO_PKG_VERSION"))
    );
}

/// A session started, then detached from with `Enter ~ .`: its label.
fn detached_session(t: &Tmux) -> String {
    let label = new_session(t, "--no-upload -- bash --norc --noprofile");
    t.keys(&["Enter"]);
    t.type_text("~.");
    t.wait_for_text("detached");
    label
}

/// `--watch` says, before the session's screen, that it is read-only and how to leave; the
/// escape it names leaves.
#[test]
fn watch_says_it_is_read_only_and_how_to_leave() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    let label = detached_session(&t);
    t.run(&format!("clear; catty connect --watch {label}"));
    t.wait_for_text(&format!(
        "catty: watching {label} read-only; Enter ~ . leaves"
    ));
    t.keys(&["Enter"]);
    t.type_text("~.");
    t.wait_for_text(&format!("detached from {label}"));
}

#[test]
fn list_shows_a_detached_session_running() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    let label = detached_session(&t);
    let table = String::from_utf8(t.catty(&["list"]).stdout).unwrap();
    let row = table
        .lines()
        .find(|l| l.starts_with(&label))
        .unwrap_or_else(|| panic!("{table}"));
    // The agent column says the command of a `-- CMD` session.
    assert!(
        row.contains("running") && row.contains("bash --norc"),
        "{row}"
    );
}

#[test]
fn stop_all_without_yes_i_mean_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    detached_session(&t);
    let refused = t.catty(&["stop-all-sessions-dangerously"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes-i-mean-it"));
    assert_eq!(only_session(&t)["state"], "running");
}

#[test]
fn stop_ends_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    let label = detached_session(&t);
    let stopped = t.catty(&["stop", &label]);
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert_eq!(only_session(&t)["state"], "stopped");
}

#[test]
fn connect_to_an_unknown_session_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    let unknown = t.catty(&["connect", "no-such-session-0000"]);
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8(unknown.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no-such-session-0000"));
}

#[test]
fn oversized_workspace_is_refused_before_any_session() {
    let _turn = HEAVY.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let mut noise = vec![0u8; 40 * 1024 * 1024];
    for (i, name) in ["data/a.bin", "data/b.bin", "c.bin"].iter().enumerate() {
        getrandom::fill(&mut noise).unwrap();
        noise[0] = i as u8;
        std::fs::create_dir_all(dir.path().join(name).parent().unwrap()).unwrap();
        std::fs::write(dir.path().join(name), &noise).unwrap();
    }
    let t = Tmux::start(dir.path(), 100, 30);
    t.run("catty new -- bash; echo rc=$?");
    let screen = t.wait_for("the exit status", |s| {
        s.lines().any(|l| l.starts_with("rc="))
    });
    assert!(screen.contains("rc=1"), "{screen}");
    assert!(
        screen.contains("data/") && screen.contains("--no-upload"),
        "{screen}"
    );
    assert!(sessions(&t).is_empty(), "a session was left behind");
}

/// With nothing answering on its address, the client starts the daemon itself, and the
/// command goes on with it.
#[test]
fn the_client_starts_the_daemon_when_none_answers() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start_without_daemon(dir.path(), 100, 30);
    assert!(sessions(&t).is_empty());
    assert!(
        healthz(t.dirs.api_addr),
        "the daemon the client started runs on"
    );
    assert!(t.state_dir().join("api.log").is_file());
}
