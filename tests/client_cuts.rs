//! Resume under random cuts, with the real client (issue 14): `catty connect` (stdin a pipe,
//! stdout a file: it needs no terminal) attached through a proxy that cuts the link at random
//! times, each cut a reset or a FIN and inside bytes on their way to the client, while its
//! program writes some 30 MB over the run and records each numbered line typed. Once the
//! program has ended, the client's output is exactly what the program wrote (0 bytes lost, 0
//! doubled) and every line typed was applied once, in order. Each variant prints its resume
//! times (from the cut to the next link's first byte, at the proxy). `CATTY_TEST_CUTS`
//! (default 25) sets the cuts of the first two variants, `CATTY_TEST_SLOW_CUTS` (default 4)
//! those of the 5 s one.

use std::io::Write;
use std::ops::Range;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};
use tokio::sync::watch;

use crate::common::lookup::{LABEL, Lookup};
use crate::common::{Cut, CutKind, DEADLINE, Proxy, Runtime, Schedule, random_below};

/// Writes numbered lines (100 bytes each) at argv[3] bytes a second on average, in bursts
/// of random size, until it reads the line `end`, keeping its own copy of all it wrote
/// (argv[1]). Each line typed goes to argv[2] and is echoed into the output as `got LINE`.
/// The terminal is raw: no echo, no newline translation, the bytes as written. What waits
/// is a `bytearray`, so a backlog of megabytes (the hold after a cut) costs no copying.
const PROGRAM: &str = r#"
import os, random, select, sys, time, tty
tty.setraw(0)
os.set_blocking(1, False)
copy, typed, rate = open(sys.argv[1], 'wb'), open(sys.argv[2], 'wb'), float(sys.argv[3])
pending, n, partial, ending = bytearray(b'ready\r\n'), 0, b'', False
start = time.monotonic()
while pending or not ending:
    due = 0 if ending else int(rate * (time.monotonic() - start)) // 100 - n
    if due > 0:
        pending += b''.join(b'%09d %s\r\n' % (n + i, b'.' * 88) for i in range(1, due + 1))
        n += due
    writing = [1] if pending else []
    readable, writable, _ = select.select([0], writing, [], random.uniform(0, 0.1))
    if readable:
        partial += os.read(0, 65536)
        *lines, partial = partial.split(b'\n')
        for line in lines:
            typed.write(line + b'\n')
            ending = ending or line == b'end'
            pending += b'got ' + line + b'\r\n'
    if writable:
        try:
            sent = os.write(1, pending[:65536])
        except BlockingIOError:
            sent = 0
        copy.write(pending[:sent])
        del pending[:sent]
os.set_blocking(1, True)
os.write(1, b'bye\r\n')
copy.write(b'bye\r\n')
"#;

/// What the program writes over the run, about: its rate is set from it.
const OUTPUT_BYTES: f64 = 30e6;

/// Links of random length from 0 to 2 s: the client's own reconnect delay, at once after a
/// link that worked a second or more, else its backoff (100 ms doubling to 5 s).
#[tokio::test(flavor = "multi_thread")]
async fn resume_under_cuts_with_the_clients_own_delay() {
    let cuts = count_from_env("CATTY_TEST_CUTS", 25);
    run(
        "the client's own delay",
        cuts,
        secs(0.0)..secs(2.0),
        Duration::ZERO,
    )
    .await;
}

/// Every link carries the stream past the client's 1 s for a good link, so it redials at
/// once after each cut: a 0 ms delay, the new connection racing the old one's end.
#[tokio::test(flavor = "multi_thread")]
async fn resume_under_cuts_with_no_delay() {
    let cuts = count_from_env("CATTY_TEST_CUTS", 25);
    run("0 ms delay", cuts, secs(1.2)..secs(1.7), Duration::ZERO).await;
}

/// After each cut, dials are refused for 5 s (the proxy resets them); the client backs off
/// and comes back once the way is open again.
#[tokio::test(flavor = "multi_thread")]
async fn resume_under_cuts_after_five_second_outages() {
    let cuts = count_from_env("CATTY_TEST_SLOW_CUTS", 4);
    run("5 s outage", cuts, secs(1.2)..secs(1.7), secs(5.0)).await;
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn count_from_env(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| v.parse().expect(name))
}

/// The program through a proxy cutting on `cuts`, `life` and `outage`, with the real client
/// typing lines until the last cut; then the checks and the report.
async fn run(variant: &str, cuts: usize, life: Range<Duration>, outage: Duration) {
    let started = Instant::now();
    let files = tempfile::tempdir().unwrap();
    let (copy, typed, shown) = (
        files.path().join("program.copy"),
        files.path().join("typed"),
        files.path().join("client.out"),
    );
    // Spread over the run: a link's mean life and an outage a cut.
    let cycle = (life.start + life.end) / 2 + outage;
    let rate = (OUTPUT_BYTES / (cuts as f64 * cycle.as_secs_f64())).to_string();
    let argv = ["python3", "-c", PROGRAM, path(&copy), path(&typed), &rate];
    let rt = Runtime::start(&argv, &[]);
    let proxy = Proxy::start(rt.addr).await;
    let schedule = Schedule { cuts, life, outage };
    let state = tempfile::tempdir().unwrap();
    let lookup = Lookup::start(proxy.addr, state.path()).await;
    let mut client = connect(&lookup, state.path(), &shown, files.path());
    let stdin = client.stdin.take().unwrap();
    let (cut_done, cuts_over) = watch::channel(false);
    let cutting = async {
        let made = proxy.cut_on_schedule(&schedule).await;
        cut_done.send_replace(true);
        made
    };
    let (made, sent) = tokio::join!(cutting, type_lines(stdin, &shown, cuts_over));
    let made = made.unwrap_or_else(|why| panic!("{why}; the client said: {}", said(&files)));
    let exited = tokio::time::timeout(DEADLINE, client.wait()).await;
    let status =
        exited.unwrap_or_else(|_| panic!("the client is still attached: {}", said(&files)));
    assert!(status.unwrap().success(), "{}", said(&files));
    let wrote = std::fs::read(&copy).unwrap();
    assert_same_stream(&std::fs::read(&shown).unwrap(), &wrote);
    assert!(
        std::fs::read(&typed).unwrap() == sent,
        "the lines applied differ from the lines typed"
    );
    report(
        variant,
        &made,
        wrote.len(),
        proxy.refused(),
        started.elapsed(),
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `catty connect LABEL` as a user would run it, the lookup as its daemon; stdout to `shown`,
/// stderr beside it.
fn connect(lookup: &Lookup, state: &Path, shown: &Path, dir: &Path) -> Child {
    let stderr = std::fs::File::create(dir.join("client.err")).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_catty"))
        .args(["connect", LABEL])
        .env("XDG_STATE_HOME", state)
        .env("HOME", dir)
        .env("CATTY_API_ADDR", lookup.addr.to_string())
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(shown).unwrap())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// What the client wrote on stderr.
fn said(files: &tempfile::TempDir) -> String {
    std::fs::read_to_string(files.path().join("client.err")).unwrap_or_default()
}

/// Once the program is ready (raw), types numbered lines a few tens of milliseconds apart
/// until the cuts are over, then `end`, and closes stdin; returns all it typed.
async fn type_lines(
    mut stdin: ChildStdin,
    shown: &Path,
    mut cuts_over: watch::Receiver<bool>,
) -> Vec<u8> {
    let deadline = Instant::now() + DEADLINE;
    while !std::fs::read(shown).unwrap().starts_with(b"ready\r\n") {
        assert!(Instant::now() < deadline, "the program never said ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut sent = Vec::new();
    for n in 1.. {
        let pause = Duration::from_millis(random_below(40));
        if tokio::time::timeout(pause, cuts_over.wait_for(|over| *over))
            .await
            .is_ok()
        {
            break;
        }
        let line = format!("in-{n:06}\n");
        stdin.write_all(line.as_bytes()).await.unwrap();
        sent.extend_from_slice(line.as_bytes());
    }
    stdin.write_all(b"end\n").await.unwrap();
    sent.extend_from_slice(b"end\n");
    sent
}

/// Fails unless the client showed exactly what the program wrote, naming where they part.
fn assert_same_stream(shown: &[u8], wrote: &[u8]) {
    if shown == wrote {
        return;
    }
    let at = shown.iter().zip(wrote).position(|(a, b)| a != b);
    let at = at.unwrap_or(shown.len().min(wrote.len()));
    let around = |s: &[u8]| {
        let window = &s[at.saturating_sub(100)..(at + 100).min(s.len())];
        String::from_utf8_lossy(window).into_owned()
    };
    panic!(
        "the client showed {} bytes, the program wrote {}; they part at byte {at}:\n\
         shown: {:?}\nwrote: {:?}",
        shown.len(),
        wrote.len(),
        around(shown),
        around(wrote)
    );
}

/// The resume times' distribution, on the stderr handle: shown even when the test passes.
fn report(variant: &str, cuts: &[Cut], bytes: usize, refused: u64, took: Duration) {
    let mut resumed: Vec<Duration> = cuts.iter().map(|c| c.resumed).collect();
    resumed.sort();
    if resumed.is_empty() {
        return;
    }
    let at = |q: f64| {
        let rank = (q * resumed.len() as f64).ceil() as usize;
        resumed[rank.clamp(1, resumed.len()) - 1]
    };
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    let resets = cuts.iter().filter(|c| c.kind == CutKind::Reset).count();
    let inside = cuts.iter().filter(|c| c.inside).count();
    let mean_life = cuts.iter().map(|c| c.life).sum::<Duration>() / cuts.len().max(1) as u32;
    let _ = writeln!(
        std::io::stderr(),
        "client_cuts, {variant}: {} cuts ({resets} resets, {} FINs, {inside} inside bytes on \
         their way, links {:.2} s on average), {bytes} bytes, {refused} dials refused, {:.0} s; \
         resume p50 {} p90 {} p99 {} max {}",
        cuts.len(),
        cuts.len() - resets,
        mean_life.as_secs_f64(),
        took.as_secs_f64(),
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(at(1.0)),
    );
}
