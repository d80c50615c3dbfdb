//! The output ring: the most recent bytes of the numbered output stream, addressed by their
//! absolute offset. Pure arithmetic, no I/O.

/// Keeps the last `capacity` bytes of a stream whose bytes are numbered from 0.
pub(super) struct OutputBuffer {
    data: Box<[u8]>,
    /// Offset one past the newest byte: the total ever pushed.
    end: u64,
}

/// Where a reader's offset falls.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Position {
    /// The bytes at the offset are kept; the reader can copy from there.
    Kept,
    /// The offset fell out of the buffer; the oldest byte kept is at `start`.
    Evicted { start: u64 },
    /// The offset is at (or, for a confused client, past) the end: nothing to read yet.
    End,
}

impl OutputBuffer {
    /// The allocation is zeroed lazily by the OS, so an idle session costs no memory.
    pub(super) fn new(capacity: usize) -> Self {
        assert!(capacity > 0);
        OutputBuffer {
            data: vec![0; capacity].into_boxed_slice(),
            end: 0,
        }
    }

    pub(super) fn end(&self) -> u64 {
        self.end
    }

    /// Offset of the oldest byte kept.
    pub(super) fn start(&self) -> u64 {
        self.end.saturating_sub(self.data.len() as u64)
    }

    pub(super) fn position(&self, offset: u64) -> Position {
        if offset >= self.end {
            Position::End
        } else if offset < self.start() {
            Position::Evicted {
                start: self.start(),
            }
        } else {
            Position::Kept
        }
    }

    pub(super) fn push(&mut self, mut bytes: &[u8]) {
        let cap = self.data.len();
        if bytes.len() > cap {
            self.end += (bytes.len() - cap) as u64;
            bytes = &bytes[bytes.len() - cap..];
        }
        let at = (self.end % cap as u64) as usize;
        let first = bytes.len().min(cap - at);
        self.data[at..at + first].copy_from_slice(&bytes[..first]);
        self.data[..bytes.len() - first].copy_from_slice(&bytes[first..]);
        self.end += bytes.len() as u64;
    }

    /// Appends to `out` up to `max` bytes from `offset`, which must be [`Position::Kept`]
    /// or the end. Returns how many bytes were copied.
    pub(super) fn copy_from(&self, offset: u64, max: usize, out: &mut Vec<u8>) -> usize {
        debug_assert!(offset >= self.start() && offset <= self.end);
        let cap = self.data.len();
        let len = ((self.end - offset) as usize).min(max);
        let at = (offset % cap as u64) as usize;
        let first = len.min(cap - at);
        out.extend_from_slice(&self.data[at..at + first]);
        out.extend_from_slice(&self.data[..len - first]);
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(buf: &OutputBuffer, from: u64) -> Vec<u8> {
        let mut out = Vec::new();
        buf.copy_from(from, usize::MAX, &mut out);
        out
    }

    #[test]
    fn keeps_offsets_across_wraps() {
        let mut buf = OutputBuffer::new(8);
        let stream: Vec<u8> = (0..100u8).collect();
        let mut pushed = 0;
        for chunk in stream.chunks(3) {
            buf.push(chunk);
            pushed += chunk.len();
            assert_eq!(buf.end(), pushed as u64);
            let start = buf.start() as usize;
            assert_eq!(start, pushed.saturating_sub(8));
            assert_eq!(read_all(&buf, start as u64), &stream[start..pushed]);
            // Any offset inside reads exactly the bytes of the stream from there.
            for from in start..pushed {
                assert_eq!(read_all(&buf, from as u64), &stream[from..pushed]);
            }
        }
    }

    #[test]
    fn push_larger_than_capacity_keeps_the_tail() {
        let mut buf = OutputBuffer::new(4);
        buf.push(b"ab");
        buf.push(b"0123456789");
        assert_eq!(buf.end(), 12);
        assert_eq!(buf.start(), 8);
        assert_eq!(read_all(&buf, 8), b"6789");
    }

    #[test]
    fn positions() {
        let mut buf = OutputBuffer::new(4);
        assert_eq!(buf.position(0), Position::End);
        buf.push(b"abcdef");
        assert_eq!(buf.position(1), Position::Evicted { start: 2 });
        assert_eq!(buf.position(2), Position::Kept);
        assert_eq!(buf.position(5), Position::Kept);
        assert_eq!(buf.position(6), Position::End);
        assert_eq!(buf.position(60), Position::End);
    }

    #[test]
    fn copy_respects_max() {
        let mut buf = OutputBuffer::new(16);
        buf.push(b"hello world");
        let mut out = Vec::new();
        assert_eq!(buf.copy_from(6, 3, &mut out), 3);
        assert_eq!(out, b"wor");
    }
}
