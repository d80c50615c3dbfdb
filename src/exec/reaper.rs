//! The runtime is its session's reaper: every process the program leaves behind, even one
//! that made a session of its own (Codex's background app-server), becomes the runtime's
//! child when its parent exits (`PR_SET_CHILD_SUBREAPER`), and when the session is over all
//! of them are killed. In the local sandbox the pid namespace does the same; on a machine or
//! unsandboxed, this is what does it.

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::process_tree::descendants;

/// Makes this process the reaper of its descendants' orphans.
pub(super) fn adopt_orphans() {
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        tracing::warn!(
            "cannot become the session's reaper ({e}): a daemon the program starts may outlive it"
        );
    }
}

/// Kills every process descended from this one: first stops them all (so none forks past the
/// walk), then kills them.
pub(super) fn kill_descendants() {
    let me = std::process::id() as i32;
    for sig in [Signal::SIGSTOP, Signal::SIGKILL] {
        let all = descendants(me);
        if sig == Signal::SIGSTOP && !all.is_empty() {
            tracing::info!(count = all.len(), "killing what the program left behind");
        }
        for pid in all {
            let _ = signal::kill(Pid::from_raw(pid), sig);
        }
    }
}
