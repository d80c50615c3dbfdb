//! The session's one upload slot: open until an upload takes it, busy while it runs (the
//! program does not start meanwhile), done once the workspace is in place.

use super::Session;
use super::phase::Phase;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Upload {
    Open,
    Busy,
    Done,
}

/// Holds the session's upload slot; dropped without [`UploadSlot::done`], it frees the slot
/// again (a refused or interrupted upload leaves an empty workspace to upload into).
pub(crate) struct UploadSlot<'a> {
    session: &'a Session,
    done: bool,
}

impl UploadSlot<'_> {
    pub(crate) fn done(mut self) {
        self.done = true;
    }
}

impl Drop for UploadSlot<'_> {
    fn drop(&mut self) {
        self.session.lock().upload = if self.done {
            Upload::Done
        } else {
            Upload::Open
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
            Upload::Done => Err("the workspace was already uploaded"),
            Upload::Open => {
                st.upload = Upload::Busy;
                Ok(UploadSlot {
                    session: self,
                    done: false,
                })
            }
        }
    }
}
