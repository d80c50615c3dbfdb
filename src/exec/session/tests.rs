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
