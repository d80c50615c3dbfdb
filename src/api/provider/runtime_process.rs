//! Ending a local runtime process: SIGTERM (the runtime hangs up its program and exits),
//! SIGKILL after a grace period, and then the program's process group, which a runtime
//! killed hard cannot hang up. The pid is only ever signalled while its start time matches.

use std::time::{Duration, Instant};

use anyhow::bail;
use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use super::procfs;
use crate::process_tree;

/// How long a runtime gets after SIGTERM to hang up its program (which gets 5 s) and exit.
const STOP_GRACE: Duration = Duration::from_secs(7);
/// Between two looks at a stopping process.
const POLL: Duration = Duration::from_millis(20);

/// One process, for good: a pid and its start time.
#[derive(Debug, Clone, Copy)]
struct Pinned {
    pid: i32,
    start_time: u64,
}

/// SIGTERM (and SIGCONT, in case it was stopped), then SIGKILL after [`STOP_GRACE`].
pub(super) async fn stop(pid: i32, start_time: u64) -> anyhow::Result<()> {
    let p = Pinned { pid, start_time };
    if !procfs::is_alive(p.pid, p.start_time)? {
        return Ok(());
    }
    let pid = Pid::from_raw(p.pid);
    if !send(pid, Signal::SIGTERM)? {
        return Ok(());
    }
    let _ = signal::kill(pid, Signal::SIGCONT);
    if gone_within(p, STOP_GRACE).await? {
        return Ok(());
    }
    tracing::warn!(pid = p.pid, "runtime ignored SIGTERM; killing it");
    // A runtime killed hard cannot hang up its program (in a session of its own): do it here.
    let programs: Vec<_> = process_tree::children(p.pid)
        .into_iter()
        .filter_map(|c| Some((c, procfs::stat(c).ok()?.start_time)))
        .collect();
    send(pid, Signal::SIGKILL)?;
    for (child, start_time) in programs {
        if procfs::is_alive(child, start_time)? {
            let _ = signal::killpg(Pid::from_raw(child), Signal::SIGKILL);
        }
    }
    if !gone_within(p, Duration::from_secs(2)).await? {
        bail!("process {} survived SIGKILL", p.pid);
    }
    Ok(())
}

/// Signals `pid`; false when it has already exited.
fn send(pid: Pid, sig: Signal) -> anyhow::Result<bool> {
    match signal::kill(pid, sig) {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(e) => Err(anyhow::anyhow!("cannot send {sig} to {pid}: {e}")),
    }
}

async fn gone_within(p: Pinned, within: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + within;
    while procfs::is_alive(p.pid, p.start_time)? {
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(true)
}
