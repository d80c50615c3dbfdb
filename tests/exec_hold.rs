//! A dropped interactive client holds its place: the runtime keeps the program paused for it
//! (flow control) for `HOLD`, unless it said `detach`. Probed from outside: a watch client
//! that asks for a `since` past the end learns where the output ends.

use std::time::{Duration, Instant};

use catty::protocol::{ClientMsg, ConnectParams, FLOW_WINDOW_BYTES, HOLD, ServerMsg};

use crate::common::{Client, DEADLINE, Runtime, client_id, sized};

/// Where the program's output ends now.
pub async fn end_of_output(rt: &Runtime) -> u64 {
    let probe = ConnectParams {
        since: Some(u64::MAX),
        watch: true,
        ..Default::default()
    };
    let c = Client::connect(rt.addr, &probe).await.unwrap();
    let ServerMsg::Ready { offset, .. } = c.ready else {
        panic!("{:?}", c.ready)
    };
    offset
}

/// An interactive client of the flooding `seq` that read some output, then vanishes, after
/// `detach` when `say_detach`; returns the offset it had read up to.
async fn flood_then_vanish(rt: &Runtime, say_detach: bool) -> u64 {
    let params = ConnectParams {
        client: Some(client_id()),
        ..sized(80, 24)
    };
    let mut c = Client::connect(rt.addr, &params).await.unwrap();
    c.read_until("some output", |c| c.output.len() > 100_000)
        .await;
    if say_detach {
        // The runtime ends the connection once it has read `detach`.
        c.control(&ClientMsg::Detach).await;
        c.read_to_close().await;
    }
    c.first_offset + c.output.len() as u64
}

/// Waits (at most `within`) for the output to end past `end`; returns when it did.
pub async fn wait_for_growth(rt: &Runtime, end: u64, within: Duration) -> Option<Instant> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if end_of_output(rt).await > end {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test]
async fn dropped_client_pauses_the_program_until_the_hold_runs_out() {
    let rt = Runtime::start(&["seq", "1", "1000000000"], &[]);
    let read = flood_then_vanish(&rt, false).await;
    let dropped = Instant::now();
    // The pump may finish the read it was in; after that the end stands still.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = end_of_output(&rt).await;
    assert!(
        held < read + FLOW_WINDOW_BYTES + 16 * 1024 * 1024,
        "ran ahead: read {read}, output ends at {held}"
    );
    while dropped.elapsed() < HOLD - Duration::from_secs(3) {
        assert_eq!(
            end_of_output(&rt).await,
            held,
            "the program ran during the hold"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let grew = wait_for_growth(&rt, held, DEADLINE).await;
    let after = grew.expect("the program runs again after the hold") - dropped;
    assert!(
        after >= HOLD - Duration::from_secs(3),
        "resumed after {after:?}"
    );
}

#[tokio::test]
async fn detach_releases_the_program_at_once() {
    let rt = Runtime::start(&["seq", "1", "1000000000"], &[]);
    let read = flood_then_vanish(&rt, true).await;
    // Held, it could write at most a window (1 MiB) more; sixteen tell, even when loaded.
    let grew = wait_for_growth(&rt, read + 16 * 1024 * 1024, HOLD / 2).await;
    assert!(grew.is_some(), "the program stayed paused after detach");
}
