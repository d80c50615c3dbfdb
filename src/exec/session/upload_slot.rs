//! The session's upload slot: open until an upload takes it, busy while it runs (the program
//! does not start meanwhile), done once the workspace is in place; then the same for the git
//! history (`/git`), which may only follow a finished upload and spends what the zip left of
//! the upload budget.

use super::Session;
use super::phase::Phase;
use crate::protocol::UPLOAD_LIMIT_BYTES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Upload {
    Open,
    Busy,
    /// The workspace is in place; its zip took `archive_bytes` of the budget.
    Done {
        archive_bytes: u64,
    },
    /// `/git` is making the workspace a repository.
    HistoryBusy {
        archive_bytes: u64,
    },
    HistoryDone,
}

impl Upload {
    /// Whether the program must wait before it starts.
    pub(super) fn holds_start(self) -> bool {
        matches!(self, Upload::Busy | Upload::HistoryBusy { .. })
    }
}

/// Holds the session's upload slot; dropped without [`UploadSlot::done`], it frees the slot
/// again (a refused or interrupted upload leaves an empty workspace to upload into).
pub(crate) struct UploadSlot<'a> {
    session: &'a Session,
    archive_bytes: Option<u64>,
}

impl UploadSlot<'_> {
    /// The workspace is in place; its zip was `archive_bytes` long.
    pub(crate) fn done(mut self, archive_bytes: u64) {
        self.archive_bytes = Some(archive_bytes);
    }
}

impl Drop for UploadSlot<'_> {
    fn drop(&mut self) {
        self.session.lock().upload = match self.archive_bytes {
            Some(archive_bytes) => Upload::Done { archive_bytes },
            None => Upload::Open,
        };
        self.session.notify_changed();
    }
}

/// Holds the slot while `/git` runs; dropped without [`HistorySlot::done`], the upload is
/// done again and `/git` may be retried.
pub(crate) struct HistorySlot<'a> {
    session: &'a Session,
    archive_bytes: u64,
    done: bool,
}

impl HistorySlot<'_> {
    /// What the history may weigh: the upload budget minus the zip.
    pub(crate) fn budget(&self) -> u64 {
        UPLOAD_LIMIT_BYTES.saturating_sub(self.archive_bytes)
    }

    pub(crate) fn done(mut self) {
        self.done = true;
    }
}

impl Drop for HistorySlot<'_> {
    fn drop(&mut self) {
        self.session.lock().upload = match self.done {
            true => Upload::HistoryDone,
            false => Upload::Done {
                archive_bytes: self.archive_bytes,
            },
        };
        self.session.notify_changed();
    }
}

impl Session {
    /// Takes the one upload slot, or says why an upload is refused now (409).
    pub(crate) fn begin_upload(&self) -> Result<UploadSlot<'_>, &'static str> {
        let mut st = self.lock();
        if !matches!(st.phase, Phase::NotStarted(None)) {
            return Err("the session has already started; upload before the first attach");
        }
        match st.upload {
            Upload::Busy => Err("another upload is in progress"),
            Upload::Open => {
                st.upload = Upload::Busy;
                Ok(UploadSlot {
                    session: self,
                    archive_bytes: None,
                })
            }
            _ => Err("the workspace was already uploaded"),
        }
    }

    /// Takes the slot for `/git` after a finished upload, or says why it is refused (409).
    pub(crate) fn begin_history(&self) -> Result<HistorySlot<'_>, &'static str> {
        let mut st = self.lock();
        if !matches!(st.phase, Phase::NotStarted(None)) {
            return Err(
                "the session has already started; send the history before the first attach",
            );
        }
        match st.upload {
            Upload::Open | Upload::Busy => Err("upload the workspace first"),
            Upload::HistoryBusy { .. } => Err("another history upload is in progress"),
            Upload::HistoryDone => Err("the history was already uploaded"),
            Upload::Done { archive_bytes } => {
                st.upload = Upload::HistoryBusy { archive_bytes };
                Ok(HistorySlot {
                    session: self,
                    archive_bytes,
                    done: false,
                })
            }
        }
    }
}
