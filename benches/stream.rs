//! Stream benchmark: bulk output through `catty exec` over loopback next to the same output
//! read from a bare PTY, and the runtime's idle memory. Run with `cargo bench --bench stream`
//! (or `just bench`); it builds nothing itself, so the release binary comes from cargo.

// A bench has no public API: `pub` here only shares items between its own modules.
#![allow(unreachable_pub)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use catty::protocol::{ConnectParams, ServerMsg};
use fastwebsockets::OpCode;

/// The generated inputs, shared with the peers bench; this one uses the bulk file.
#[allow(dead_code)]
#[path = "peers/data.rs"]
mod data;
#[path = "../tests/common/listen.rs"]
mod listen;

use data::{BULK_BYTES, write_bulk_file};

const FILE_MIB: usize = BULK_BYTES / (1024 * 1024);
const ROUNDS: usize = 3;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bulk.txt");
    write_bulk_file(&file);
    let bytes = (FILE_MIB * 1024 * 1024) as f64;

    let mut bare = Vec::new();
    let mut catty = Vec::new();
    for _ in 0..ROUNDS {
        bare.push(bytes / bare_pty_cat(&file).as_secs_f64() / 1e6);
        catty.push(bytes / catty_cat(&file).as_secs_f64() / 1e6);
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let idle = idle_rss_kib();
    println!("machine: {} cores, kernel {}", cores(), kernel());
    println!("bulk output, cat of a {FILE_MIB} MiB file, best of {ROUNDS}:");
    println!("  bare PTY      {:8.1} MB/s", best(&bare));
    println!(
        "  catty stream  {:8.1} MB/s  ({:.2} of bare PTY)",
        best(&catty),
        best(&catty) / best(&bare)
    );
    println!(
        "runtime RSS, idle with one attached shell: {:.1} MiB",
        idle as f64 / 1024.0
    );
}

/// `cat FILE` with its stdout on a PTY, the master read until EOF.
fn bare_pty_cat(file: &std::path::Path) -> Duration {
    let pty = nix::pty::openpty(None, None).unwrap();
    let start = Instant::now();
    let mut child = Command::new("cat")
        .arg(file)
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave))
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    let mut buf = vec![0u8; 64 * 1024];
    // EIO once the slave is closed: the end of the output.
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
    child.wait().unwrap();
    start.elapsed()
}

struct Runtime(std::process::Child, String);

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_runtime(argv: &[&str], workspace: &std::path::Path) -> Runtime {
    let mut child = Command::new(env!("CARGO_BIN_EXE_catty"))
        .args([
            "exec",
            "--insecure-no-token",
            "--addr",
            "127.0.0.1:0",
            "--workspace",
        ])
        .arg(workspace)
        .arg("--")
        .args(argv)
        .env("CATTY_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listen::listening_addr(&mut child).to_string();
    Runtime(child, addr)
}

/// `cat FILE` in a catty session, received by a WebSocket client until `exit`.
fn catty_cat(file: &std::path::Path) -> Duration {
    let ws_dir = tempfile::tempdir().unwrap();
    let rt = start_runtime(&["cat", file.to_str().unwrap()], ws_dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let params = ConnectParams {
            size: Some((80, 24)),
            ..Default::default()
        };
        let start = Instant::now();
        let url = format!("ws://{}/connect?{}", rt.1, params.to_query());
        let mut ws = catty::net::dial(&url, &[]).await.unwrap();
        let mut received = 0usize;
        loop {
            let frame = ws.read_frame().await.unwrap();
            match frame.opcode {
                OpCode::Binary => received += frame.payload.len(),
                OpCode::Text => {
                    if let Ok(ServerMsg::Exit(_)) =
                        ServerMsg::parse(std::str::from_utf8(&frame.payload).unwrap())
                    {
                        break;
                    }
                }
                _ => {}
            }
        }
        // ONLCR turns each \n into \r\n on the way through the PTY.
        assert!(
            received >= FILE_MIB * 1024 * 1024,
            "received only {received} bytes"
        );
        start.elapsed()
    })
}

/// The runtime's resident memory with a shell attached and idle.
fn idle_rss_kib() -> u64 {
    let ws_dir = tempfile::tempdir().unwrap();
    let rt = start_runtime(&["bash", "--norc", "--noprofile", "-i"], ws_dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let params = ConnectParams {
            size: Some((80, 24)),
            ..Default::default()
        };
        let url = format!("ws://{}/connect?{}", rt.1, params.to_query());
        let mut ws = catty::net::dial(&url, &[]).await.unwrap();
        // The prompt arrived: the shell is up and the session idle.
        while ws.read_frame().await.unwrap().opcode != OpCode::Binary {}
        tokio::time::sleep(Duration::from_secs(1)).await;
        let status = std::fs::read_to_string(format!("/proc/{}/status", rt.0.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    })
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}
