//! Sync-back benchmark, end to end with the real binary on both sides: `catty new` in a private
//! tmux terminal against a daemon with the local provider. It measures
//!
//! - the latency from a file saved in the session's workspace (written on disk, where the
//!   local provider keeps it) to the same bytes in the local directory, sample by sample;
//! - a codemod: 1,000 files rewritten in the session, until every one is local, with the
//!   client's and the runtime's peak RSS while syncing (`VmHWM`, reset before through
//!   `/proc/PID/clear_refs`);
//! - the upload of this repository with its git history and without it (the zip alone).
//!
//! `cargo bench --bench sync`.

// A bench has no public API: `pub` here only shares items between its own modules.
#![allow(unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/common/launch.rs"]
mod launch;
#[path = "../tests/common/listen.rs"]
mod listen;
#[allow(dead_code)]
#[path = "../tests/common/tmux.rs"]
mod tmux;

use catty::client::upload::{self, History, HistoryOutcome};
use tmux::Tmux;

/// What `tmux.rs` waits at most for a screen.
pub const DEADLINE: Duration = Duration::from_secs(60);

const LATENCY_SAMPLES: usize = 200;
const CODEMOD_FILES: usize = 1_000;
const UPLOAD_ROUNDS: usize = 3;
const TOKEN: &str = "bench-token-0123456789abcdef";

/// A name tmux can use for its socket.
pub fn client_id() -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn codemod_path(i: usize) -> String {
    format!("src/m{}/file{i:04}.rs", i % 20)
}

/// A repository with one commit: 1,000 small source files in 20 directories.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["config", "user.name", "Bench"]);
    git(root, &["config", "user.email", "bench@example.com"]);
    for i in 0..CODEMOD_FILES {
        let path = root.join(codemod_path(i));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("pub fn old_name_{i}() -> u32 {{ {i} }}\n")).unwrap();
    }
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "first"]);
    dir
}

fn main() {
    let repo = project();
    let t = Tmux::start(repo.path(), 200, 40);
    t.run("clear; catty new -- bash --norc --noprofile");
    t.wait_for("the session's prompt", |s| {
        s.contains("catty connect") && s.trim_end().ends_with('$')
    });
    let list = t.catty(&["list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let id = list[0]["session_id"].as_str().unwrap().to_string();
    let sessions = t.state_dir().join("sessions");
    let remote = sessions.join(&id).join("workspace");
    let client = t.foreground_pid();
    let runtime = runtime_pid(&sessions, &id);
    println!("sync-back, loopback, local provider (client pid {client}, runtime pid {runtime})");

    latency(repo.path(), &remote);
    codemod(repo.path(), &remote, client, runtime);
    t.run("exit");
    drop(t);
    uploads();
}

/// Saves a file in the session, then polls the local directory for its exact bytes.
fn latency(local: &Path, remote: &Path) {
    std::fs::create_dir_all(remote.join("lat")).unwrap();
    // The first change starts the runtime's watcher; wait for it once, untimed.
    save_and_wait(local, remote, "lat/warm.txt", b"warm\n");
    let mut samples: Vec<Duration> = (0..LATENCY_SAMPLES)
        .map(|i| {
            // Apart by 50-250 ms, so saves do not fall in step with the runtime's pacing.
            std::thread::sleep(Duration::from_millis(50 + random_below(200)));
            let bytes = format!("sample {i}\n");
            save_and_wait(local, remote, &format!("lat/{i}.txt"), bytes.as_bytes())
        })
        .collect();
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).min(samples.len()) - 1];
    println!(
        "  remote save -> local file, {} samples: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, min {:.1} ms",
        samples.len(),
        ms(at(0.50)),
        ms(at(0.99)),
        ms(*samples.last().unwrap()),
        ms(samples[0]),
    );
}

/// Writes `bytes` to `rel` in the session's workspace (a temp file renamed in, as editors
/// save); returns how long until the local file holds them.
fn save_and_wait(local: &Path, remote: &Path, rel: &str, bytes: &[u8]) -> Duration {
    let tmp = remote.join(format!("{rel}.tmp~"));
    std::fs::write(&tmp, bytes).unwrap();
    let start = Instant::now();
    std::fs::rename(&tmp, remote.join(rel)).unwrap();
    let target = local.join(rel);
    while std::fs::read(&target).ok().as_deref() != Some(bytes) {
        assert!(start.elapsed() < DEADLINE, "{rel} did not arrive");
        std::thread::sleep(Duration::from_micros(500));
    }
    start.elapsed()
}

/// Rewrites every file of the project in the session; waits until all are local.
fn codemod(local: &Path, remote: &Path, client: i32, runtime: i32) {
    for pid in [client, runtime] {
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    }
    let before = (peak_rss_kib(client), peak_rss_kib(runtime));
    let expected: BTreeMap<String, String> = (0..CODEMOD_FILES)
        .map(|i| {
            let text = format!("pub fn new_name_{i}() -> u32 {{ {i} }}\n");
            (codemod_path(i), text)
        })
        .collect();
    let start = Instant::now();
    for (rel, text) in &expected {
        std::fs::write(remote.join(rel), text).unwrap();
    }
    let written = start.elapsed();
    let mut pending: BTreeSet<&String> = expected.keys().collect();
    while !pending.is_empty() {
        assert!(
            start.elapsed() < DEADLINE,
            "{} files missing",
            pending.len()
        );
        pending.retain(|rel| {
            std::fs::read_to_string(local.join(rel)).ok().as_ref() != Some(&expected[*rel])
        });
        std::thread::sleep(Duration::from_millis(2));
    }
    let all = start.elapsed();
    println!(
        "  codemod of {CODEMOD_FILES} files: written in {:.0} ms, all local after {:.0} ms",
        written.as_secs_f64() * 1e3,
        all.as_secs_f64() * 1e3
    );
    println!(
        "  peak RSS while syncing: client {:.1} MiB (at the reset {:.1}), runtime {:.1} MiB (at the reset {:.1})",
        peak_rss_kib(client) as f64 / 1024.0,
        before.0 as f64 / 1024.0,
        peak_rss_kib(runtime) as f64 / 1024.0,
        before.1 as f64 / 1024.0,
    );
}

/// The `catty exec` process serving session `id` (found by its `--workspace` argument).
fn runtime_pid(sessions: &Path, id: &str) -> i32 {
    let workspace = sessions.join(id).join("workspace");
    let workspace = workspace.to_str().unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let argv: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
        let is_exec = argv.get(1) == Some(&&b"exec"[..]);
        if is_exec && argv.contains(&workspace.as_bytes()) {
            return pid;
        }
    }
    panic!("no runtime for session {id}");
}

fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

fn random_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes) % n
}

/// This repository uploaded to fresh runtimes, with its history and without.
fn uploads() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // `History::start` spawns its bundling on the current runtime.
    let _entered = tokio.enter();
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let (mut zip_bytes, mut bundle) = (0, 0);
    for _ in 0..UPLOAD_ROUNDS {
        let rt = Exec::start();
        let ws = upload::scan(&root).unwrap();
        let start = Instant::now();
        let history = History::start(&root);
        let sent = tokio.block_on(upload::upload_with_history(
            &ws,
            history,
            &root,
            &rt.url(),
            TOKEN,
            &BTreeMap::new(),
            false,
        ));
        with.push(start.elapsed());
        let sent = sent.unwrap();
        zip_bytes = sent.archive_bytes;
        match sent.history {
            HistoryOutcome::Sent { bundle_bytes, .. } => bundle = bundle_bytes,
            other => panic!("no history sent: {other:?}"),
        }
        let rt = Exec::start();
        let ws = upload::scan(&root).unwrap();
        let start = Instant::now();
        let sent = tokio.block_on(upload::upload(
            &ws,
            &root,
            &rt.url(),
            TOKEN,
            &BTreeMap::new(),
            false,
        ));
        sent.unwrap();
        without.push(start.elapsed());
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "upload of {} ({} files): with history {:.2} MiB (zip {:.2} + bundle {:.2}) in {:.2} s; without {:.2} MiB in {:.2} s (median of {UPLOAD_ROUNDS})",
        root.display(),
        upload::scan(&root).unwrap().entries.len(),
        mib(zip_bytes + bundle),
        mib(zip_bytes),
        mib(bundle),
        median(with),
        mib(zip_bytes),
        median(without),
    );
}

/// A `catty exec` runtime on a loopback port, killed on drop.
struct Exec {
    child: Child,
    addr: std::net::SocketAddr,
    _workspace: tempfile::TempDir,
}

impl Exec {
    fn start() -> Exec {
        let workspace = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_catty"))
            .arg("exec")
            .args(["--addr", "127.0.0.1:0", "--workspace"])
            .arg(workspace.path())
            .args(["--", "true"])
            .env("CONNECT_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = listen::listening_addr(&mut child);
        Exec {
            child,
            addr,
            _workspace: workspace,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Exec {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
