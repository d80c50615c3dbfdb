//! Cleanup on every path: from the first write on, anything but success empties the workspace
//! again, including the `unpack` future being dropped when the client hangs up.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Owns the workspace's contents while they are being written; dropping it unkept removes them.
pub(super) struct Guard {
    workspace: PathBuf,
    /// False once the workspace is cleared. Each write holds the lock while it runs: a dropped
    /// future leaves its blocking write running, so clearing must wait for it and turn away any
    /// still queued, or a file could land after the workspace was emptied.
    open: Arc<Mutex<bool>>,
    kept: bool,
}

impl Guard {
    /// `workspace` must have been empty: everything in it is removed on drop.
    pub(super) fn new(workspace: &Path) -> Self {
        Guard {
            workspace: workspace.to_owned(),
            open: Arc::new(Mutex::new(true)),
            kept: false,
        }
    }

    pub(super) fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// Runs one filesystem write on the blocking pool, unless the workspace was already cleared.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let open = Arc::clone(&self.open);
        let run = move || {
            let open = open.lock().unwrap_or_else(PoisonError::into_inner);
            if !*open {
                return Err(io::Error::other("extraction was abandoned"));
            }
            f()
        };
        tokio::task::spawn_blocking(run)
            .await
            .map_err(io::Error::other)?
    }

    /// Extraction succeeded: leave what was written.
    pub(super) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Guard {
    /// Synchronous on purpose: a dropped future gets no later chance to clean up.
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        *open = false;
        if self.kept {
            return;
        }
        if let Err(err) = clear(&self.workspace) {
            tracing::warn!("cannot empty {}: {err}", self.workspace.display());
        }
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
