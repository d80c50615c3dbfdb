//! The output stream and input across failures: resume by offset through cut links, input
//! applied exactly once, several clients, flow control, truncation, redraw.

use std::time::{Duration, Instant};

use crate::common::{self, Client, DEADLINE, Proxy, Runtime, client_id, random_below, sized};
use catty::protocol::{ClientMsg, ConnectParams, ServerMsg};

fn seq(from: u64, to: u64) -> String {
    (from..=to).map(|i| format!("{i}\r\n")).collect()
}

/// Cuts the TCP link at random points during `seq 1 300000` and resumes with `since`: the
/// bytes received, put together, are exactly the program's output.
#[tokio::test]
async fn resume_after_cuts_loses_and_doubles_nothing() {
    let rt = Runtime::start(&["seq", "1", "300000"], &[]);
    let proxy = Proxy::start(rt.addr).await;
    let expected = seq(1, 300000);
    let mut received: Vec<u8> = Vec::new();
    let mut cuts = 0;
    loop {
        let params = ConnectParams {
            since: Some(received.len() as u64),
            ..sized(80, 24)
        };
        let mut c = Client::connect(proxy.addr, &params).await.unwrap();
        assert!(
            matches!(
                c.ready,
                ServerMsg::Ready {
                    truncated: false,
                    ..
                }
            ),
            "{:?}",
            c.ready
        );
        assert_eq!(c.first_offset, received.len() as u64);
        let cut_at = random_below(expected.len() as u64 / 4);
        let done = tokio::time::timeout(DEADLINE, async {
            while c.output.len() as u64 <= cut_at && c.exit.is_none() {
                if !c.step().await.unwrap_or(false) {
                    break;
                }
            }
        });
        done.await.expect("output flows");
        received.extend_from_slice(&c.output);
        if c.exit.is_some() {
            break;
        }
        proxy.cut();
        cuts += 1;
    }
    assert!(cuts >= 3, "only {cuts} cuts happened");
    assert_eq!(received.len(), expected.len());
    assert!(
        received == expected.as_bytes(),
        "the stream differs from seq's output"
    );
}

/// Input sent just before a cut is applied once: the client resends from `ready.input`.
#[tokio::test]
async fn input_across_cuts_is_applied_exactly_once() {
    let program = "stty raw -echo; echo raw-$((40+2)); exec cat > input.log";
    let rt = Runtime::start(&["sh", "-c", program], &[]);
    let proxy = Proxy::start(rt.addr).await;
    let id = client_id();
    let mut sent: Vec<u8> = Vec::new();
    for round in 0..20u32 {
        let params = ConnectParams {
            client: Some(id.clone()),
            ..sized(80, 24)
        };
        let mut c = Client::connect(proxy.addr, &params).await.unwrap();
        if round == 0 {
            // Input typed before `stty raw` meets a canonical terminal, which keeps at most
            // 4095 bytes of a line: a loaded machine lost bytes there.
            c.read_until_contains("raw-42").await;
        }
        let ServerMsg::Ready {
            input: Some(applied),
            ..
        } = c.ready
        else {
            panic!("{:?}", c.ready)
        };
        assert!(
            applied <= sent.len() as u64,
            "applied {applied} of {} sent",
            sent.len()
        );
        c.send(&sent[applied as usize..]).await;
        let chunk = format!("<{round}:{}>", "x".repeat(random_below(3000) as usize));
        sent.extend_from_slice(chunk.as_bytes());
        c.send(chunk.as_bytes()).await;
        proxy.cut();
    }
    let params = ConnectParams {
        client: Some(id),
        ..sized(80, 24)
    };
    let mut c = Client::connect(rt.addr, &params).await.unwrap();
    let ServerMsg::Ready {
        input: Some(applied),
        ..
    } = c.ready
    else {
        panic!()
    };
    c.send(&sent[applied as usize..]).await;
    let log = rt.workspace.path().join("input.log");
    let deadline = Instant::now() + DEADLINE;
    while std::fs::metadata(&log).map_or(0, |m| m.len()) < sent.len() as u64
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Give a doubled byte the chance to show up before comparing.
    c.control(&ClientMsg::Ping).await;
    c.read_until("ack", |c| c.acks.last() == Some(&(sent.len() as u64)))
        .await;
    assert!(
        std::fs::read(&log).unwrap() == sent,
        "the program did not get each byte once"
    );
}

/// Two interactive clients and one watcher see the same stream; the watcher's input and
/// resizes are ignored, and the size follows the interactive client that typed last.
#[tokio::test]
async fn interactive_and_watch_clients_share_one_stream() {
    let rt = Runtime::start(&["bash", "--norc", "--noprofile", "-i"], &[]);
    let from_start = |size, watch| ConnectParams {
        since: Some(0),
        size,
        watch,
        ..Default::default()
    };
    let mut a = Client::connect(rt.addr, &from_start(Some((90, 30)), false))
        .await
        .unwrap();
    let mut b = Client::connect(rt.addr, &from_start(Some((100, 40)), false))
        .await
        .unwrap();
    let mut w = Client::connect(rt.addr, &from_start(Some((200, 60)), true))
        .await
        .unwrap();
    w.send(b"echo watcher-typed\r").await;
    w.control(&ClientMsg::Resize {
        cols: 201,
        rows: 61,
    })
    .await;
    a.send(b"stty size; echo a-$((6*7))\r").await;
    a.read_until_contains("a-42").await;
    b.send(b"stty size; echo b-$((6*8))\r").await;
    for c in [&mut a, &mut b, &mut w] {
        c.read_until_contains("b-48").await;
    }
    let text = a.text();
    assert!(
        text.contains("30 90\r\n"),
        "a's size while a typed: {text:?}"
    );
    assert!(
        text.contains("40 100\r\n"),
        "b's size once b typed: {text:?}"
    );
    assert!(
        !text.contains("watcher-typed") && !text.contains("61 201") && !text.contains("60 200")
    );
    let upto = |c: &Client| c.output[..c.text().find("b-48").unwrap()].to_vec();
    assert_eq!(upto(&a), upto(&b));
    assert_eq!(upto(&a), upto(&w));
}

/// A client that stops reading while the program floods: the runtime holds the program back
/// (memory stays bounded) and the client later gets every byte from where it stopped.
#[tokio::test]
async fn stalled_client_slows_the_program_and_loses_nothing() {
    let rt = Runtime::start(&["seq", "1", "100000000"], &[]);
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    c.read_until("some output", |c| c.output.len() > 100_000)
        .await;
    // Stop reading for a while; seq writes tens of MB/s when nothing holds it back.
    let mut peak_kib = 0;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        peak_kib = peak_kib.max(vm_rss_kib(rt.pid()));
    }
    assert!(
        peak_kib < 48 * 1024,
        "runtime RSS reached {peak_kib} KiB during the stall"
    );
    // Read past the stall: more than the 8 MiB buffer would have held without flow control.
    c.read_until("10 MB more", |c| c.output.len() > 10_000_000)
        .await;
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let text = c.text();
    let complete = &text[..text.rfind('\n').unwrap() + 1];
    let lines = complete.lines().count() as u64;
    assert!(
        complete == seq(1, lines),
        "the stream has a gap or a repeat"
    );
}

fn vm_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// With no client attached (the last one detached) the program runs freely into the buffer;
/// without a transcript, a client that comes back with an offset that fell out gets
/// `truncated` and the exact tail.
#[tokio::test]
async fn detached_program_runs_on_and_old_offsets_are_truncated() {
    let rt = Runtime::start(&["seq", "1", "3000000"], &[("CATTY_TRANSCRIPT_BYTES", "0")]);
    let expected = seq(1, 3000000);
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    c.read_until("first output", |c| !c.output.is_empty()).await;
    // A detach, so the client holds nothing (a vanished one would hold the program).
    c.control(&ClientMsg::Detach).await;
    c.read_to_close().await;
    drop(c);
    // The program finishes (23 MB of output) with nobody attached.
    common::wait_for_no_children(rt.pid());
    let mut w = Client::connect(
        rt.addr,
        &ConnectParams {
            since: Some(0),
            ..sized(80, 24)
        },
    )
    .await
    .unwrap();
    let ServerMsg::Ready {
        offset, truncated, ..
    } = w.ready
    else {
        panic!()
    };
    assert!(truncated, "offset 0 should have fallen out of the buffer");
    assert!(offset > 0);
    w.read_until("exit", |c| c.exit.is_some()).await;
    assert_eq!(offset + w.output.len() as u64, expected.len() as u64);
    assert!(
        w.output == expected.as_bytes()[offset as usize..],
        "the tail differs"
    );
    assert!(w.output.len() >= 8 * 1024 * 1024, "at least 8 MiB are kept");
}

/// A fresh attach (no `since`) gets a redraw of the screen, then the live stream.
#[tokio::test]
async fn fresh_attach_gets_a_redraw() {
    let rt = Runtime::start(&["bash", "--norc", "--noprofile", "-i"], &[]);
    let mut first = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    first.send(b"clear; echo painted-$((40+2))\r").await;
    first.read_until_contains("painted-42").await;
    drop(first);
    let mut second = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    assert!(matches!(
        second.ready,
        ServerMsg::Ready { redraw: true, .. }
    ));
    second.read_until("redraw", |c| c.redraw.is_some()).await;
    let redraw = String::from_utf8_lossy(second.redraw.as_ref().unwrap()).into_owned();
    assert!(redraw.contains("painted-42"), "{redraw:?}");
    second.send(b"echo live\r").await;
    second.read_until_contains("live\r\n").await;
}

/// After the program exits, a client that reconnects within the grace period still gets the
/// rest of the output and the exit status; then the runtime exits 0.
#[tokio::test]
async fn exit_status_is_kept_for_the_grace_period() {
    let mut rt = Runtime::start(
        &["sh", "-c", "echo bye; exit 3"],
        &[("CATTY_GRACE_SEC", "2")],
    );
    let c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    drop(c);
    let mut again = Client::connect(
        rt.addr,
        &ConnectParams {
            since: Some(0),
            ..sized(80, 24)
        },
    )
    .await
    .unwrap();
    again.read_until("exit", |c| c.exit.is_some()).await;
    assert_eq!(again.text(), "bye\r\n");
    assert_eq!(again.exit.as_ref().unwrap().code, 3);
    again.read_to_close().await;
    assert_eq!(rt.wait_exit(Duration::from_secs(10)), Some(0));
}

#[tokio::test]
async fn ttl_ends_the_session_with_an_expiry_error() {
    let mut rt = Runtime::start(&["sleep", "100"], &[("CATTY_TTL_SEC", "2")]);
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    c.read_to_close().await;
    assert!(
        c.errors.iter().any(|e| e.contains("expired")),
        "{:?}",
        c.errors
    );
    assert_eq!(rt.wait_exit(Duration::from_secs(10)), Some(0));
}

/// SIGTERM ends the program (even one that ignores SIGHUP) and the runtime within 6 s.
#[tokio::test]
async fn sigterm_ends_child_and_runtime() {
    let script = "echo pid=$$; trap '' HUP; while :; do sleep 1; done";
    let mut rt = Runtime::start(&["sh", "-c", script], &[]);
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    c.read_until_contains("\r\n").await;
    let text = c.text();
    let pid: i32 = text.trim().strip_prefix("pid=").unwrap().parse().unwrap();
    let start = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(rt.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(
        rt.wait_exit(Duration::from_secs(6)),
        Some(0),
        "runtime still running after 6 s"
    );
    assert!(start.elapsed() < Duration::from_secs(6));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the program survived"
    );
}

/// Ctrl-C is not queued behind output: with a client that stopped reading during a flood (so
/// the program is held back), both a typed ^C and a `signal` message end the program at once;
/// the client then still reads every byte before the exit status.
#[tokio::test]
async fn interrupt_is_not_queued_behind_output() {
    for interrupt in ["byte", "message"] {
        let rt = Runtime::start(&["yes"], &[]);
        let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
        c.read_until("flood", |c| c.output.len() > 100_000).await;
        match interrupt {
            "byte" => c.send(b"\x03").await,
            _ => {
                c.control(&ClientMsg::Signal {
                    name: catty::protocol::Signal::Int,
                })
                .await
            }
        }
        // The program dies while this client still has output waiting for it.
        common::wait_for_no_children(rt.pid());
        c.read_until("exit", |c| c.exit.is_some()).await;
        assert_eq!(c.exit.as_ref().unwrap().code, 130, "{interrupt}");
        let text = c.text();
        let whole = &text[..text.rfind('\n').unwrap() + 1];
        assert!(
            whole
                .split("\r\n")
                .filter(|l| !l.is_empty())
                .all(|l| l == "y"),
            "{interrupt}: stream damaged"
        );
    }
}
