//! Output older than the ring: the transcript on disk behind it, and reads of the whole kept
//! range by offset (for connections that resume far back and for `GET /transcript`).

use super::{Position, Session};
use crate::protocol::ExitStatus;

/// The output kept now, for a reader starting at some offset.
pub(crate) struct Span {
    /// Where the reader starts: its offset, or the oldest byte kept when that is later.
    pub start: u64,
    /// One past the newest byte.
    pub end: u64,
    /// The program's status once it has exited (its output is then complete).
    pub exited: Option<ExitStatus>,
    /// The session is being ended from outside: no more output will come.
    pub ended: bool,
}

/// What a read at an offset found.
pub(crate) enum Found {
    /// Bytes from the ring were appended to the caller's buffer.
    Copied,
    /// The bytes are on disk only: `read_transcript`.
    OnDisk,
    /// Nothing at the offset: it is the end.
    End,
    /// The offset is no longer kept.
    Gone,
}

impl Session {
    /// The oldest byte kept, the ring's oldest being `ring_start`: the transcript's when it
    /// reaches the ring (it always does unless its disk failed or fell behind).
    pub(super) fn oldest_kept(&self, ring_start: u64) -> u64 {
        match self.transcript.range() {
            Some((start, written)) if written >= ring_start => start.min(ring_start),
            _ => ring_start,
        }
    }

    /// Where a reader from `since` stands now.
    pub(crate) fn span(&self, since: u64) -> Span {
        let st = self.lock();
        let end = st.buffer.end();
        let oldest = self.oldest_kept(st.buffer.start());
        Span {
            start: since.clamp(oldest, end),
            end,
            exited: match &st.phase {
                super::Phase::Exited(status) => Some(status.clone()),
                _ => None,
            },
            ended: st.ended.is_some(),
        }
    }

    /// Copies up to `max` bytes from `offset` if the ring holds them.
    pub(crate) fn read_output(&self, offset: u64, max: usize, out: &mut Vec<u8>) -> Found {
        let st = self.lock();
        match st.buffer.position(offset) {
            Position::Kept => {
                st.buffer.copy_from(offset, max, out);
                Found::Copied
            }
            Position::End => Found::End,
            Position::Evicted { start } if self.oldest_kept(start) <= offset => Found::OnDisk,
            Position::Evicted { .. } => Found::Gone,
        }
    }

    /// Up to `max` bytes from `offset` off the disk, on a blocking thread; `None` when they
    /// are no longer there (the transcript moved on) or cannot be read.
    pub(crate) async fn read_transcript(&self, offset: u64, max: usize) -> Option<Vec<u8>> {
        let transcript = self.transcript.clone();
        let read = tokio::task::spawn_blocking(move || transcript.read(offset, max)).await;
        match read {
            Ok(Ok(bytes)) => bytes.filter(|b| !b.is_empty()),
            Ok(Err(e)) => {
                tracing::warn!(offset, "reading the transcript failed: {e}");
                None
            }
            Err(_) => None,
        }
    }
}
