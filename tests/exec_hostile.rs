//! Hostile clients against the real runtime: each case ends in a clear refusal, the runtime
//! alive, its memory within a stated ceiling, and other clients unaffected.

use crate::common::{Client, Runtime, peak_rss_bytes, sized};
use catty::protocol::{ClientMsg, ConnectParams, MAX_COLS, MAX_ROWS};

/// What one client's behaviour may add to the runtime's resident memory.
const CEILING_BYTES: u64 = 64 * 1024 * 1024;

/// A `resize` to 65535x65535, then fresh attaches that redraw the screen: the resize is
/// refused with an error naming the bounds, and the largest size taken (asked for in the
/// query and by `resize`) costs a bounded redraw.
#[tokio::test]
async fn a_huge_terminal_is_refused_and_the_largest_costs_little() {
    let rt = Runtime::start(
        &["sh", "-c", "yes catty | head -c 3000000; exec sleep 600"],
        &[],
    );
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    c.read_until("the output", |c| c.output.len() >= 3_000_000)
        .await;
    let idle = peak_rss_bytes(rt.pid());

    c.control(&ClientMsg::Resize {
        cols: u16::MAX,
        rows: u16::MAX,
    })
    .await;
    c.read_until("an error", |c| !c.errors.is_empty()).await;
    assert_eq!(
        c.errors[0],
        format!(
            "the terminal must be 1 to {MAX_COLS} columns by 1 to {MAX_ROWS} rows, got 65535x65535"
        )
    );
    let too_big = ConnectParams {
        size: None,
        ..Default::default()
    };
    let query = format!(
        "ws://{}/connect?{}&cols=10000&rows=10000",
        rt.addr,
        too_big.to_query()
    );
    assert!(
        Client::connect_url(&query).await.is_err(),
        "10000x10000 is refused"
    );

    // The largest size taken, by resize and then by a fresh attach: both redraw.
    c.control(&ClientMsg::Resize {
        cols: MAX_COLS,
        rows: MAX_ROWS,
    })
    .await;
    for _ in 0..3 {
        let mut fresh = Client::connect(rt.addr, &sized(MAX_COLS, MAX_ROWS))
            .await
            .unwrap();
        fresh.read_until("the redraw", |c| c.redraw.is_some()).await;
    }
    let used = peak_rss_bytes(rt.pid()).saturating_sub(idle);
    assert!(used < CEILING_BYTES, "the largest screen cost {used} bytes");

    // Still serving: the first client's echo.
    let mut check = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    check.read_until("the redraw", |c| c.redraw.is_some()).await;
}
