//! A seekable reader over the spooled zip that keeps its own position, so async_zip's many
//! "where am I" seeks cost nothing and short forward seeks stay inside the buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncSeek, BufReader, ReadBuf};

use super::CHUNK_BYTES;

/// tokio's BufReader drops its buffer and asks the file on every seek, and async_zip asks for
/// its position (a seek to `Current(0)`) after every central-directory record: 200,000 entries
/// took 12 s. This answers that question from a counter.
pub(super) struct Positioned {
    inner: BufReader<tokio::fs::File>,
    pos: u64,
    seeking: bool,
}

impl Positioned {
    pub(super) fn new(file: tokio::fs::File) -> Self {
        Positioned {
            inner: BufReader::with_capacity(CHUNK_BYTES, file),
            pos: 0,
            seeking: false,
        }
    }
}

impl AsyncRead for Positioned {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        self.pos += (buf.filled().len() - before) as u64;
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for Positioned {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        Pin::new(&mut self.get_mut().inner).poll_fill_buf(cx)
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        self.pos += amt as u64;
        Pin::new(&mut self.inner).consume(amt);
    }
}

impl AsyncSeek for Positioned {
    /// Seeks that land inside the buffer (the next local header, usually) skip forward in it.
    fn start_seek(mut self: Pin<&mut Self>, to: io::SeekFrom) -> io::Result<()> {
        let target = match to {
            io::SeekFrom::Start(n) => n.checked_sub(self.pos),
            io::SeekFrom::Current(n) => u64::try_from(n).ok(),
            io::SeekFrom::End(_) => None,
        };
        let skip = target
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= self.inner.buffer().len());
        self.seeking = skip.is_none();
        match skip {
            Some(n) => self.as_mut().consume(n),
            None => Pin::new(&mut self.inner).start_seek(to)?,
        }
        Ok(())
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        if self.seeking {
            self.pos = ready!(Pin::new(&mut self.inner).poll_complete(cx))?;
            self.seeking = false;
        }
        Poll::Ready(Ok(self.pos))
    }
}
