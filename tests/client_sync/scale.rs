//! Sync-back under weight and faults: a client killed half-way through a file leaves no
//! partial file and a rerun ends equal; a 1,000-file change comes back (time and the
//! client's peak memory printed); live changes arrive one after another (latency printed).

use std::time::{Duration, Instant};

use super::live::appears;
use super::{Fixture, temp_files};
use crate::common::DEADLINE;
use crate::common::repo::write_file;
use crate::common::sync_server::LABEL;

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn a_client_killed_mid_file_leaves_no_partial_file_and_a_rerun_ends_equal() {
    let f = Fixture::repo(&[("small.txt", b"a\n")]).await;
    let big: Vec<u8> = (0..4 * MIB).map(|i| (i % 251) as u8).collect();
    write_file(&f.remote(), "big.bin", &big);
    for i in 0..20 {
        write_file(&f.remote(), format!("many/{i}.txt"), format!("{i}\n"));
    }
    f.server.with(|s| s.stall = Some("big.bin".into()));
    let mut pull = f.server.catty(f.state.path(), &f.local(), &["pull", LABEL]);
    let mut child = pull.spawn().unwrap();
    // The first half is in a temp file beside the target, the rest never comes.
    let start = Instant::now();
    while !temp_files(&f.local())
        .iter()
        .any(|t| t.metadata().is_ok_and(|m| m.len() == 2 * MIB as u64))
    {
        assert!(start.elapsed() < DEADLINE, "the transfer did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().await.unwrap();
    assert!(!f.local().join("big.bin").exists(), "a partial big.bin");
    f.server.with(|s| s.stall = None);
    f.pull().await;
    f.assert_trees_equal();
    assert_eq!(temp_files(&f.local()), Vec::<std::path::PathBuf>::new());
}

#[tokio::test]
async fn a_thousand_file_change_comes_back() {
    let path = |i: usize| format!("src/m{}/f{i}.rs", i % 20);
    let f = Fixture::repo_with(|dir| {
        for i in 0..1000 {
            write_file(dir, path(i), format!("fn f{i}() {{}}\n"));
        }
    })
    .await;
    for i in 0..1000 {
        write_file(
            &f.remote(),
            path(i),
            format!("pub fn f{i}() -> usize {{ {i} }}\n"),
        );
    }
    let mut pull = f.server.catty(f.state.path(), &f.local(), &["pull", LABEL]);
    let start = Instant::now();
    let mut child = pull.spawn().unwrap();
    let pid = child.id().unwrap();
    let mut peak_kib = 0;
    let status = loop {
        peak_kib = peak_kib.max(vm_hwm_kib(pid).unwrap_or(0));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < DEADLINE, "the pull did not end");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let took = start.elapsed();
    assert!(status.success());
    f.assert_trees_equal();
    eprintln!("1,000-file pull: {took:?}, client peak RSS {peak_kib} KiB (debug build)");
}

/// The high-water mark of a process's resident memory, while it runs.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn live_changes_arrive_one_after_another() {
    let f = Fixture::repo(&[("a.txt", b"one\n")]).await;
    let say: catty::client::sync::Say = std::sync::Arc::new(|_: &str| {});
    let live = catty::client::sync::Live::start(&f.server.link(), &f.state_dir(), &f.local(), say)
        .unwrap();
    let mut took = Vec::new();
    for i in 0..20 {
        let bytes = format!("save {i}\n");
        write_file(&f.remote(), "saved.txt", &bytes);
        f.changed();
        took.push(appears(&f, "saved.txt", bytes.as_bytes()).await);
    }
    live.stop().await;
    took.sort();
    eprintln!(
        "live sync, change served → local file (loopback, test server, debug build): p50 {:?}, max {:?}",
        took[took.len() / 2],
        took[took.len() - 1]
    );
}
