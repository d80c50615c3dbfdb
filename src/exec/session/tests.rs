//! Flow control's holds: an interactive client that vanishes keeps the pump waiting for
//! `HOLD`; `detach`, or the same client id attaching again, releases it. Time is paused, so
//! the 15 s pass at once.

use std::sync::Arc;
use std::time::Duration;

use super::Session;
use crate::protocol::{ConnectParams, FLOW_WINDOW_BYTES, HOLD};

const ID: &str = "0123456789abcdef0123";

fn interactive() -> ConnectParams {
    ConnectParams {
        size: Some((80, 24)),
        client: Some(ID.into()),
        ..Default::default()
    }
}

/// A session whose one interactive client is more than a window behind, then goes (after
/// saying `detach` when `leaving`).
fn behind_then_gone(leaving: bool) -> Arc<Session> {
    let session = Session::new(
        8 * 1024 * 1024,
        crate::exec::transcript::Transcript::disabled(),
    );
    let conn = session.attach(&interactive()).conn;
    session.push_output(&vec![b'x'; FLOW_WINDOW_BYTES as usize + 1]);
    if leaving {
        session.leaving(conn);
    }
    session.detach(conn);
    session
}

async fn window_opens_within(session: &Session, within: Duration) -> bool {
    tokio::time::timeout(within, session.wait_for_window())
        .await
        .is_ok()
}

#[tokio::test(start_paused = true)]
async fn a_vanished_client_holds_the_pump_until_the_hold_runs_out() {
    let session = behind_then_gone(false);
    assert!(!window_opens_within(&session, HOLD - Duration::from_millis(1)).await);
    assert!(window_opens_within(&session, Duration::from_millis(2)).await);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_detached_holds_nothing() {
    let session = behind_then_gone(true);
    assert!(window_opens_within(&session, Duration::from_millis(1)).await);
}

#[tokio::test(start_paused = true)]
async fn the_same_client_attaching_again_takes_its_place_over() {
    let session = behind_then_gone(false);
    let at_the_end = ConnectParams {
        since: Some(u64::MAX),
        ..interactive()
    };
    session.attach(&at_the_end);
    assert!(window_opens_within(&session, Duration::from_millis(1)).await);
}

/// A session with one interactive client that was sent everything of `n` output bytes.
fn sent_everything(n: usize) -> (Arc<Session>, super::ConnId) {
    let session = Session::new(
        8 * 1024 * 1024,
        crate::exec::transcript::Transcript::disabled(),
    );
    let conn = session.attach(&interactive()).conn;
    session.push_output(&vec![b'x'; n]);
    session.advance(conn, n);
    (session, conn)
}

#[tokio::test(start_paused = true)]
async fn a_reporting_client_is_paced_by_what_its_terminal_took() {
    let (session, conn) = sent_everything(100_000);
    // Sent all, shown 60,000 with a window of 64 KiB: 100,000 − 60,000 in flight, room 25,536.
    session.shown(conn, 60_000, 64 * 1024);
    assert!(window_opens_within(&session, Duration::from_millis(1)).await);
    assert_eq!(session.wait_for_window().await, 64 * 1024 - 40_000);
    // Less room than a quarter of the window: the pump waits for more.
    session.push_output(&[b'w'; 10_000]);
    session.advance(conn, 10_000);
    assert!(!window_opens_within(&session, Duration::from_millis(100)).await);
    // Shown a window behind: the pump waits, whatever was sent.
    session.shown(conn, 60_000, 16 * 1024);
    assert!(!window_opens_within(&session, Duration::from_millis(100)).await);
}

#[tokio::test(start_paused = true)]
async fn reports_are_kept_within_bounds() {
    let (session, conn) = sent_everything(1000);
    // Past what was sent: taken as all of it. A window below the least: the least.
    session.shown(conn, 5_000_000, 1);
    session.push_output(&vec![b'y'; crate::protocol::FLOW_WINDOW_MIN_BYTES as usize]);
    assert!(!window_opens_within(&session, Duration::from_millis(100)).await);
    // A window past the largest: the largest.
    session.shown(conn, 1000, u64::MAX);
    assert_eq!(
        session.wait_for_window().await,
        FLOW_WINDOW_BYTES - crate::protocol::FLOW_WINDOW_MIN_BYTES
    );
}

#[tokio::test(start_paused = true)]
async fn a_stuck_reader_that_still_pings_stops_holding_the_program() {
    let (session, conn) = sent_everything(FLOW_WINDOW_BYTES as usize);
    session.shown(conn, 0, FLOW_WINDOW_BYTES);
    let pinging = {
        let session = session.clone();
        tokio::spawn(async move {
            loop {
                session.pinged(conn);
                tokio::time::sleep(crate::protocol::PING_INTERVAL).await;
            }
        })
    };
    let stuck = crate::protocol::STUCK_READER;
    assert!(!window_opens_within(&session, stuck - Duration::from_millis(10)).await);
    assert!(window_opens_within(&session, Duration::from_millis(20)).await);
    // It stays out of the count while behind, then holds again once within its window.
    session.push_output(&vec![b'y'; FLOW_WINDOW_BYTES as usize]);
    assert!(window_opens_within(&session, Duration::from_millis(1)).await);
    let end = 2 * FLOW_WINDOW_BYTES;
    session.advance(conn, FLOW_WINDOW_BYTES as usize);
    session.shown(conn, end - 10, FLOW_WINDOW_BYTES);
    session.push_output(&vec![b'z'; FLOW_WINDOW_BYTES as usize]);
    assert!(!window_opens_within(&session, Duration::from_millis(100)).await);
    pinging.abort();
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_not_a_stuck_reader() {
    let (session, conn) = sent_everything(FLOW_WINDOW_BYTES as usize);
    session.shown(conn, 0, FLOW_WINDOW_BYTES);
    // No ping: a link that may be dead, which the dead-link timer ends (then the hold).
    assert!(!window_opens_within(&session, 3 * crate::protocol::STUCK_READER).await);
}
