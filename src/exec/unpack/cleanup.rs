//! Cleanup on every path: from the first write on, anything but success empties the workspace
//! again, including the `unpack` future being dropped when the client hangs up while the
//! extraction thread is still writing.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::locks;

/// The extraction threads' side: every filesystem write passes through [`Gate::write`].
#[derive(Clone)]
pub(super) struct Gate {
    workspace: Arc<Path>,
    /// True until kept or cleared. Each write holds a read lock while it runs, so writes run
    /// side by side, and closing (the write lock) waits for those in progress and turns away
    /// the rest: no file can land after the workspace was emptied.
    open: Arc<RwLock<bool>>,
    /// Whether a write was let through, so there is something to remove.
    wrote: Arc<AtomicBool>,
}

impl Gate {
    /// Runs one filesystem write on this thread, unless the workspace was already closed.
    pub(super) fn write<T>(&self, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let open = locks::read(&self.open);
        if !*open {
            return Err(io::Error::other("extraction was abandoned"));
        }
        self.wrote.store(true, Ordering::Relaxed);
        f()
    }

    /// Turns away every later write and, unless `keep`, removes what was written. Waits for the
    /// writes in progress; closing twice does nothing more.
    pub(super) fn close(&self, keep: bool) {
        let mut open = locks::write(&self.open);
        // Every write that set `wrote` has ended: its read lock was released before ours.
        let wrote = *open && self.wrote.load(Ordering::Relaxed);
        *open = false;
        if wrote
            && !keep
            && let Err(err) = clear(&self.workspace)
        {
            tracing::warn!("cannot empty {}: {err}", self.workspace.display());
        }
    }
}

/// The waiting side's handle: dropping it unkept closes the gate and empties the workspace.
pub(super) struct Guard {
    gate: Gate,
}

impl Guard {
    /// `workspace` must be empty once the first write passes: everything in it is removed on drop.
    pub(super) fn new(workspace: &Path) -> Self {
        Guard {
            gate: Gate {
                workspace: workspace.into(),
                open: Arc::new(RwLock::new(true)),
                wrote: Arc::new(AtomicBool::new(false)),
            },
        }
    }

    pub(super) fn gate(&self) -> Gate {
        self.gate.clone()
    }

    /// Extraction succeeded: leave what was written.
    pub(super) fn keep(self) {
        self.gate.close(true);
    }
}

impl Drop for Guard {
    /// Synchronous on purpose: a dropped future gets no later chance to clean up.
    fn drop(&mut self) {
        self.gate.close(false);
    }
}

/// Removes everything in the workspace, which was empty when extraction began.
fn clear(workspace: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(workspace)? {
        let entry = entry?;
        // DirEntry::file_type does not follow symlinks, so a link is unlinked, not entered.
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_gate_turns_writes_away_and_clears_only_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let guard = Guard::new(dir.path());
        let gate = guard.gate();
        let file = dir.path().join("a");
        gate.write(|| std::fs::write(&file, b"x")).unwrap();
        drop(guard);
        assert!(!file.exists(), "cleared on drop");
        let late = gate.write(|| std::fs::write(&file, b"late"));
        assert_eq!(late.unwrap_err().to_string(), "extraction was abandoned");
        assert!(!file.exists(), "no write after the drop");

        // Nothing written through the gate: what is there is not ours to remove.
        std::fs::write(&file, b"someone else's").unwrap();
        drop(Guard::new(dir.path()));
        assert!(file.exists());

        let guard = Guard::new(dir.path());
        let gate = guard.gate();
        gate.write(|| std::fs::write(dir.path().join("b"), b"y"))
            .unwrap();
        guard.keep();
        gate.close(false);
        assert!(dir.path().join("b").exists(), "kept stays kept");
    }
}
