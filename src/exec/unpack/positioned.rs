//! The spooled zip as async_zip wants it (async, buffered, seekable), read with plain blocking
//! calls: the whole unpack runs on one blocking thread, where each read is a `read(2)` and not
//! a hop to tokio's blocking pool.

use std::io::{self, BufRead, Read, Seek};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncSeek, ReadBuf};

use super::CHUNK_BYTES;

/// Always ready: every poll does its I/O at once, so it must only be polled off the async
/// threads (see `unpack`). It keeps its own position because async_zip asks for it (a seek
/// to `Current(0)`) after every central-directory record, and short forward seeks (to the
/// next local header, usually) stay inside the buffer.
pub(super) struct Positioned {
    inner: io::BufReader<std::fs::File>,
    pos: u64,
}

impl Positioned {
    pub(super) fn new(file: std::fs::File) -> Self {
        Positioned {
            inner: io::BufReader::with_capacity(CHUNK_BYTES, file),
            pos: 0,
        }
    }
}

impl AsyncRead for Positioned {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.inner.read(buf.initialize_unfilled())?;
        buf.advance(n);
        self.pos += n as u64;
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for Positioned {
    fn poll_fill_buf(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        Poll::Ready(self.get_mut().inner.fill_buf())
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        self.pos += amt as u64;
        self.inner.consume(amt);
    }
}

impl AsyncSeek for Positioned {
    /// Seeks that land inside the buffer move in it; only the others reach the file.
    fn start_seek(mut self: Pin<&mut Self>, to: io::SeekFrom) -> io::Result<()> {
        let target = match to {
            io::SeekFrom::Start(n) => Some(n),
            io::SeekFrom::Current(n) => self.pos.checked_add_signed(n),
            io::SeekFrom::End(_) => None,
        };
        let offset = target.and_then(|t| i64::try_from(i128::from(t) - i128::from(self.pos)).ok());
        self.pos = match (target, offset) {
            (Some(target), Some(offset)) => {
                self.inner.seek_relative(offset)?;
                target
            }
            _ => self.inner.seek(to)?,
        };
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt};

    #[tokio::test]
    async fn reads_and_seeks_keep_the_position() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..CHUNK_BYTES * 3).map(|i| i as u8).collect();
        io::Write::write_all(&mut file, &data).unwrap();
        file.rewind().unwrap();
        let mut p = Positioned::new(file);
        let mut four = [0; 4];
        p.read_exact(&mut four).await.unwrap();
        assert_eq!(four, [0, 1, 2, 3]);
        assert_eq!(p.stream_position().await.unwrap(), 4);
        let at = |n: usize| [n as u8, (n + 1) as u8, (n + 2) as u8, (n + 3) as u8];
        for to in [10, 5, CHUNK_BYTES * 2 + 7, 100] {
            assert_eq!(
                p.seek(io::SeekFrom::Start(to as u64)).await.unwrap(),
                to as u64
            );
            p.read_exact(&mut four).await.unwrap();
            assert_eq!(four, at(to), "after a seek to {to}");
        }
        assert_eq!(p.seek(io::SeekFrom::Current(-8)).await.unwrap(), 96);
        assert_eq!(p.fill_buf().await.unwrap()[0], 96);
        let end = p.seek(io::SeekFrom::End(-1)).await.unwrap();
        assert_eq!(end, data.len() as u64 - 1);
        assert!(p.seek(io::SeekFrom::Start(u64::MAX)).await.is_err());
    }
}
