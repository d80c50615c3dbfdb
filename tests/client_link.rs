//! The link as a user sees it in a real terminal: `catty connect` in tmux, attached through a
//! proxy that stalls (a silent drop) to a real runtime; a daemon stand-in points it there.

use std::time::{Duration, Instant};

use crate::client_e2e::assert_consecutive;
use crate::common::lookup::{LABEL, Lookup};
use crate::common::tmux::Tmux;
use crate::common::{Proxy, Runtime};
use crate::exec_hold::{end_of_output, wait_for_growth};
use catty::protocol::HOLD;

/// Counts to N, a line every 20 ms, then says `counted-42`.
const COUNTER: &str = "import sys,time\nfor i in range(1, int(sys.argv[1]) + 1):\n    print(i, flush=True)\n    time.sleep(0.02)\nprint('counted-%d' % 42, flush=True)\ntime.sleep(30)";

/// Slack for the checks on when the status line shows: tmux's polling, a loaded machine.
const SLACK: Duration = Duration::from_millis(1500);

/// A counter in a runtime, a proxy in front of it, and a terminal attached through it.
struct Linked {
    runtime: Runtime,
    proxy: Proxy,
    _lookup: Lookup,
    tmux: Tmux,
    // Last: the proxy and the lookup run on it.
    tokio: tokio::runtime::Runtime,
}

fn attached(lines: u64, connect: &str) -> Linked {
    let count = lines.to_string();
    let l = attached_to(&["python3", "-c", COUNTER, &count], connect);
    l.tmux.wait_for("counting past 20", |s| {
        s.lines()
            .any(|l| l.trim().parse::<u64>().is_ok_and(|n| n > 20))
    });
    l
}

/// `argv` in a runtime, and a terminal running `CONNECT LABEL` through a proxy to it.
fn attached_to(argv: &[&str], connect: &str) -> Linked {
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let runtime = Runtime::start(argv, &[]);
    let proxy = tokio.block_on(Proxy::start(runtime.addr));
    let state = tempfile::tempdir().unwrap();
    let lookup = tokio.block_on(Lookup::start(proxy.addr, state.path()));
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux::start_with(dir.path(), 80, 24, state, lookup.addr);
    tmux.run(&format!("{connect} {LABEL}"));
    Linked {
        runtime,
        proxy,
        _lookup: lookup,
        tmux,
        tokio,
    }
}

/// Stalls the link until the client says it is reconnecting; returns when the status line
/// first showed and when it said reconnecting, counted from the stall.
fn stall_until_reconnecting(l: &Linked) -> (Duration, Duration) {
    l.proxy.stall();
    let stalled = Instant::now();
    l.tmux
        .wait_for("the status line", |s| s.contains("catty: no contact for"));
    let shown = stalled.elapsed();
    l.tmux
        .wait_for("reconnecting", |s| s.contains("reconnecting…"));
    let reconnecting = stalled.elapsed();
    l.proxy.resume();
    (shown, reconnecting)
}

#[test]
fn silent_drop_shows_status_then_replays_every_line_once() {
    let l = attached(900, "catty connect");
    let (shown, reconnecting) = stall_until_reconnecting(&l);
    assert!(
        shown < Duration::from_secs(2) + SLACK,
        "status after {shown:?}"
    );
    assert!(
        reconnecting < Duration::from_secs(10) + SLACK,
        "reconnecting after {reconnecting:?}"
    );
    l.tmux.wait_for_text("counted-42");
    let history = l.tmux.history();
    assert_consecutive(&history, 900);
    let first = history.lines().find_map(|l| l.trim().parse::<u64>().ok());
    assert_eq!(first, Some(1), "{history}");
    assert!(
        !history.contains("catty:"),
        "the status left a trace:\n{history}"
    );
}

#[test]
fn gap_past_the_threshold_repaints_with_one_notice() {
    let l = attached(900, "CATTY_REPLAY_MAX_BYTES=1000 catty connect");
    stall_until_reconnecting(&l);
    l.tmux.wait_for_text("counted-42");
    let history = l.tmux.history();
    let notice = format!("of output while away; catty logs {LABEL} has all of it");
    assert_eq!(history.matches(&notice).count(), 1, "{history}");
    assert!(history.contains("catty: skipped "), "{history}");
}

#[test]
fn a_quiet_program_on_a_healthy_link_shows_no_status() {
    let l = attached_to(
        &["sh", "-c", "echo quiet-$((40+2)); exec sleep 60"],
        "catty connect",
    );
    l.tmux.wait_for_text("quiet-42");
    // Longer than the status delay and the dead link together: pongs keep the link alive.
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        let screen = l.tmux.screen();
        assert!(
            !screen.contains("catty:"),
            "a status on a quiet link:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn enter_tilde_dot_releases_a_flooding_program_at_once() {
    let l = attached_to(&["seq", "1", "1000000000"], "catty connect");
    l.tmux.wait_for("output", |s| {
        s.lines().any(|l| l.trim().parse::<u64>().is_ok())
    });
    l.tmux.keys(&["Enter"]);
    l.tmux.type_text("~.");
    l.tmux.wait_for_text("detached from");
    // Held, the program could write at most a window (1 MiB) past where the client was;
    // sixteen are plenty to tell, and little enough for a loaded machine.
    let end = l.tokio.block_on(end_of_output(&l.runtime));
    let grew = l.tokio.block_on(wait_for_growth(
        &l.runtime,
        end + 16 * 1024 * 1024,
        HOLD / 2,
    ));
    assert!(grew.is_some(), "the program stayed paused after Enter ~ .");
}
