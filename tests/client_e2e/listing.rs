//! `catty list` across a session's life (running, exited with its code, ended, pruned),
//! its columns, `catty rm`, and a closed pipe.

use std::process::Stdio;

use super::{only_session, sessions};
use crate::common::DEADLINE;
use crate::common::tmux::Tmux;

/// `catty list`'s row for `label`, if it lists it.
fn row(t: &Tmux, args: &[&str], label: &str) -> Option<String> {
    let out = t.catty(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    table
        .lines()
        .find(|l| l.starts_with(label))
        .map(str::to_string)
}

/// Polls `done` until it holds, within [`DEADLINE`].
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A `-- CMD` session says its command and provider while it runs; once its program exits
/// (the runtime stays for its grace) it says `exited (code 3)`, then, stopped, it leaves the
/// default list, stays under `--all` as `exited (code 3)`, and is pruned after the retention.
#[test]
fn list_follows_a_session_from_running_to_exited_to_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start_with_daemon_env(dir.path(), 120, 30, &[("CATTY_KEEP_ENDED", "1s")]);
    let label = t.start_session("catty new --no-upload -- bash --norc --noprofile");
    let running = row(&t, &["list"], &label).expect("listed while it runs");
    assert!(running.contains(" running "), "{running}");
    assert!(running.contains("bash --norc --nopro…"), "{running}");
    assert!(running.contains(" local "), "{running}");

    t.run("exit 3");
    t.wait_for_text("ended with exit code 3");
    let exited = row(&t, &["list"], &label).expect("listed during the grace");
    assert!(exited.contains("exited (code 3)"), "{exited}");
    let json = only_session(&t);
    assert_eq!(
        (&json["state"], &json["exit_code"]),
        (&"exited".into(), &3.into())
    );

    let stopped = t.catty(&["stop", "--discard", &label]);
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert_eq!(
        row(&t, &["list"], &label),
        None,
        "an ended session in the default list"
    );
    // Kept for a second (`CATTY_KEEP_ENDED=1s`), then forgotten by the sweep.
    wait_until("the ended session to be pruned", || sessions(&t).is_empty());
}

#[test]
fn list_all_shows_an_ended_session_that_rm_forgets() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 120, 30);
    let label = t.start_session("catty new --no-upload -- bash --norc --noprofile");
    let live_rm = t.catty(&["rm", &label]);
    assert_eq!(
        live_rm.status.code(),
        Some(1),
        "rm of a live session is refused"
    );
    assert!(String::from_utf8_lossy(&live_rm.stderr).contains("catty stop"));

    t.keys(&["Enter"]);
    t.type_text("~.");
    t.wait_for_text("detached");
    assert!(t.catty(&["stop", "--discard", &label]).status.success());
    let ended = row(&t, &["list", "--all"], &label).expect("listed with --all");
    assert!(ended.contains(" stopped "), "{ended}");
    assert_eq!(only_session(&t)["state"], "stopped");
    let again = t.catty(&["stop", &label]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("had already ended (stopped)"),
        "{again:?}"
    );

    let rm = t.catty(&["rm", &label]);
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    assert!(sessions(&t).is_empty());
}

/// `catty list | head -1` where `head` is gone before catty writes: no panic, no message,
/// and success or the death by SIGPIPE a shell expects of `ls`.
#[test]
fn list_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["list", "--all"],
        &["version"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = t
            .catty_command(args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "catty {args:?}: {stderr}");
        use std::os::unix::process::ExitStatusExt;
        let quiet = out.status.success() || out.status.signal() == Some(13);
        assert!(quiet, "catty {args:?}: {:?}", out.status);
    }
}

/// The same through a real shell pipeline in a terminal: the first line, then the prompt.
#[test]
fn list_piped_into_head_prints_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    t.run("catty list | head -1; echo \"rc=${PIPESTATUS[0]}\"");
    let screen = t.wait_for("the exit status", |s| {
        s.lines().any(|l| l.starts_with("rc="))
    });
    assert!(screen.contains("no sessions"), "{screen}");
    assert!(!screen.contains("panicked"), "{screen}");
    assert!(
        screen.contains("rc=0") || screen.contains("rc=141"),
        "{screen}"
    );
}
