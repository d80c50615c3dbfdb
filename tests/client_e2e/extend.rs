//! `catty extend` and the TTL's warning in a real terminal: the warning lands on a line of its
//! own (below the prompt, which stays), the extended session outlives its first TTL in `catty
//! list`, and its end, at the new deadline, is said on a line of its own too.

use super::{only_session, sessions};
use crate::common::DEADLINE;
use crate::common::tmux::{Tmux, at_prompt};
use catty::clock::{parse_rfc3339, unix_now};

/// The line of `screen` holding `needle`, and the line above it.
fn line_with<'s>(screen: &'s str, needle: &str) -> (&'s str, &'s str) {
    let lines: Vec<&str> = screen.lines().collect();
    let at = (lines.iter().rposition(|l| l.contains(needle)))
        .unwrap_or_else(|| panic!("no {needle:?} on the screen:\n{screen}"));
    (lines[at], at.checked_sub(1).map_or("", |i| lines[i]))
}

fn expires_at(t: &Tmux) -> u64 {
    parse_rfc3339(only_session(t)["expires_at"].as_str().unwrap()).unwrap()
}

fn extend(t: &Tmux, label: &str, duration: &str) -> String {
    let out = t.catty(&["extend", label, duration]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_ttl_warning_and_a_moved_deadline_show_on_lines_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 120, 30);
    t.run("clear; catty new --agent shell --no-upload --ttl 90s -- bash --norc -i");
    // Less than five minutes left at attach: warned at once.
    let screen = t.wait_for_text("catty: this session ends in");
    let label = screen.split("catty: session ").nth(1).unwrap();
    let label = label.split_whitespace().next().unwrap().to_string();
    let (warning, _) = line_with(&screen, "this session ends in");
    assert!(
        warning.starts_with("catty: this session ends in")
            && warning.ends_with(&format!("give it more time with: catty extend {label} 1h")),
        "{warning:?}"
    );
    t.run("echo ready-$((6*7))");
    t.wait_for("the prompt after the echo", |s| {
        s.contains("ready-42") && at_prompt(s)
    });
    // The cursor waits after the prompt: the next note goes below it and leaves it whole.
    extend(&t, &label, "10m");
    let screen = t.wait_for_text("catty: this session now ends at");
    let (moved, above) = line_with(&screen, "this session now ends at");
    assert!(
        moved.starts_with("catty: this session now ends at"),
        "{moved:?}"
    );
    // 90 s and 10 min, less the seconds since the start.
    assert!(
        moved.ends_with("(in 11 min)") || moved.ends_with("(in 12 min)"),
        "{moved:?}"
    );
    assert!(at_prompt(above), "the prompt's line is gone:\n{screen}");
    t.catty(&["stop", "--discard", &label]);
}

#[test]
fn an_extended_session_outlives_its_ttl_and_ends_at_the_new_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 120, 30);
    let label = super::new_session(&t, "--agent shell --no-upload --ttl 12s -- bash --norc -i");
    let first = expires_at(&t);
    let said = extend(&t, &label, "20s");
    assert!(
        said.starts_with(&format!("catty: {label} now ends at ")),
        "{said:?}"
    );
    let moved = expires_at(&t);
    assert_eq!(moved, first + 20);
    // Past the first TTL and the daemon's backstop after it (5 s): still running.
    while unix_now() < first + 6 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let state = only_session(&t)["state"].as_str().unwrap().to_string();
    assert_eq!(state, "running", "{:?}", sessions(&t));
    t.run("echo alive-$((6*7))");
    t.wait_for_text("alive-42");
    // It ends at the new deadline, and says so on a line of its own.
    let started = std::time::Instant::now();
    let screen = t.wait_for("the expiry", |s| s.contains("session expired"));
    assert!(started.elapsed() < DEADLINE);
    assert!(unix_now() + 1 >= moved, "ended before the new deadline");
    let (ended, _) = line_with(&screen, "session expired");
    assert!(
        ended.starts_with(&format!(
            "catty: session {label} is not reachable: session expired"
        )),
        "{ended:?}"
    );
}
