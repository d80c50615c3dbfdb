//! The workspace as a zip stream: deflate, Unix modes, mtimes, directories as `name/`, and
//! symlinks as `S_IFLNK` entries holding their target.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{SystemTime, UNIX_EPOCH};

use async_zip::tokio::write::ZipFileWriter;
use async_zip::{
    Compression, DeflateOption, StringEncoding, ZipDateTime, ZipDateTimeBuilder, ZipEntryBuilder,
    ZipString,
};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::task::JoinHandle;
use tokio_util::compat::FuturesAsyncWriteCompatExt;

use super::archive_error::ArchiveError;
use super::pack::{DEFLATE_LEVEL, Packed, SMALL_FILE_BYTES, open_regular, spawn_pack};
use super::walk::{Entry, Kind, Workspace};

/// Small entries read and deflated together in one blocking task.
const BATCH_BYTES: u64 = 1024 * 1024;
/// Batches in the works ahead of the writer: enough to keep a few cores deflating, few
/// enough that memory stays at a few megabytes.
const BATCHES_AHEAD: usize = 4;
/// Bytes read from a large file per blocking call.
const CHUNK_BYTES: usize = 256 * 1024;
/// async_zip writes headers in pieces of a few bytes: batch them before the socket.
const OUT_BUFFER_BYTES: usize = 64 * 1024;
/// DOS time spans 1980-01-01 to 2107-12-31 (Unix seconds); mtimes outside are clamped.
const DOS_FIRST_SEC: u64 = 315_532_800;
const DOS_LAST_SEC: u64 = 4_354_819_198;

const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// Zips `ws` (paths relative to `root`) into `out` as a stream: memory stays at a few
/// megabytes of batches plus async_zip's list of central directory records.
/// `on_progress` gets each count of raw bytes written. Returns the archive's size.
pub async fn write_zip<W: AsyncWrite + Unpin>(
    ws: &Workspace,
    root: &Path,
    out: W,
    mut on_progress: impl FnMut(u64),
) -> Result<u64, ArchiveError> {
    let counted = Counted::new(out, u64::MAX);
    let mut zip = ZipFileWriter::with_tokio(BufWriter::with_capacity(OUT_BUFFER_BYTES, counted));
    let (mut rest, mut ahead) = (ws.entries.as_slice(), VecDeque::new());
    loop {
        while ahead.len() < BATCHES_AHEAD && !rest.is_empty() {
            let (batch, tail) = rest.split_at(batch_len(rest));
            ahead.push_back(Batch::start(batch, root));
            rest = tail;
        }
        let Some(batch) = ahead.pop_front() else {
            break;
        };
        batch.write(&mut zip, root, &mut on_progress).await?;
    }
    // Pitfall 19: close() hands back our BufWriter still holding the central directory.
    let mut out = zip.close().await?.into_inner();
    out.shutdown().await.map_err(ArchiveError::Write)?;
    Ok(out.get_ref().count)
}

fn is_small(entry: &Entry) -> bool {
    entry.kind != Kind::File || entry.size <= SMALL_FILE_BYTES
}

/// How many entries from the start go together: one large file, or a run of small entries.
fn batch_len(entries: &[Entry]) -> usize {
    let mut bytes = 0;
    let run = entries.iter().take_while(|e| {
        bytes += e.size;
        is_small(e) && bytes <= BATCH_BYTES
    });
    run.count().max(1)
}

fn header(entry: &Entry) -> ZipEntryBuilder {
    let mut name = entry.path.as_os_str().as_bytes().to_vec();
    let (compression, file_type) = match entry.kind {
        Kind::File => (Compression::Deflate, S_IFREG),
        Kind::Dir => {
            name.push(b'/');
            (Compression::Stored, S_IFDIR)
        }
        Kind::Symlink => (Compression::Stored, S_IFLNK),
    };
    // Utf8 falls back to raw bytes for a non-UTF-8 name; the runtime takes names as bytes.
    ZipEntryBuilder::new(ZipString::new(name, StringEncoding::Utf8), compression)
        .deflate_option(DeflateOption::Other(DEFLATE_LEVEL as i32))
        .unix_permissions((file_type | (entry.mode & 0o7777)) as u16)
        .last_modification_date(dos_time(entry.mtime))
}

/// Entries that go into the archive together: one large file, streamed when its turn comes,
/// or a run of small entries whose files are being read and deflated meanwhile.
struct Batch<'a> {
    entries: &'a [Entry],
    packing: Option<JoinHandle<Result<Vec<Option<Packed>>, ArchiveError>>>,
}

impl<'a> Batch<'a> {
    fn start(entries: &'a [Entry], root: &Path) -> Self {
        let packing = match entries {
            [large] if !is_small(large) => None,
            small => {
                let files = small.iter().filter(|e| e.kind == Kind::File);
                Some(spawn_pack(files.map(|e| root.join(&e.path)).collect()))
            }
        };
        Batch { entries, packing }
    }

    /// Writes the batch's entries in order, each as a whole entry but a large file.
    async fn write<W: AsyncWrite + Unpin>(
        self,
        zip: &mut ZipFileWriter<W>,
        root: &Path,
        on_progress: &mut impl FnMut(u64),
    ) -> Result<(), ArchiveError> {
        let Some(packing) = self.packing else {
            return stream_file(zip, &self.entries[0], root, on_progress).await;
        };
        let joined = packing.await;
        let packed = joined.map_err(|err| ArchiveError::Write(io::Error::other(err)))??;
        let mut packed = packed.into_iter();
        for entry in self.entries {
            if entry.kind != Kind::File {
                let target = entry.target.as_deref().map(|t| t.as_os_str().as_bytes());
                let target = target.unwrap_or_default();
                zip.write_entry_whole(header(entry), target).await?;
                on_progress(target.len() as u64);
                continue;
            }
            match packed.next().flatten() {
                Some(p) => {
                    let header = header(entry).crc32(p.crc).uncompressed_size(p.size);
                    zip.write_entry_whole_precompressed(header, &p.deflated)
                        .await?;
                    on_progress(p.size);
                }
                // It grew since the scan: stream it after all.
                None => stream_file(zip, entry, root, on_progress).await?,
            }
        }
        Ok(())
    }
}

/// Streams one file into a data-descriptor entry, a chunk per blocking call.
async fn stream_file<W: AsyncWrite + Unpin>(
    zip: &mut ZipFileWriter<W>,
    entry: &Entry,
    root: &Path,
    on_progress: &mut impl FnMut(u64),
) -> Result<(), ArchiveError> {
    let path = root.join(&entry.path);
    let mut out = zip.write_entry_stream(header(entry)).await?.compat_write();
    let (mut file, mut buf) = (None, Vec::with_capacity(CHUNK_BYTES));
    loop {
        let read = read_chunk(file, path.clone(), buf).await;
        let (opened, chunk) = read.map_err(|err| ArchiveError::Read {
            path: path.clone(),
            err,
        })?;
        out.write_all(&chunk).await.map_err(ArchiveError::Write)?;
        on_progress(chunk.len() as u64);
        // A short read of a regular file is its end.
        if chunk.len() < CHUNK_BYTES {
            break;
        }
        (file, buf) = (Some(opened), chunk);
    }
    out.into_inner().close().await?;
    Ok(())
}

/// Reads the next chunk of `path` on a blocking thread, opening it first if needed.
async fn read_chunk(
    file: Option<std::fs::File>,
    path: PathBuf,
    mut buf: Vec<u8>,
) -> io::Result<(std::fs::File, Vec<u8>)> {
    tokio::task::spawn_blocking(move || {
        let mut file = match file {
            Some(file) => file,
            None => open_regular(&path)?,
        };
        buf.clear();
        (&mut file).take(CHUNK_BYTES as u64).read_to_end(&mut buf)?;
        Ok((file, buf))
    })
    .await
    .map_err(io::Error::other)?
}

/// An mtime as DOS date and time in UTC, which is how the runtime reads it back.
fn dos_time(mtime: SystemTime) -> ZipDateTime {
    let secs = mtime.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let secs = secs.clamp(DOS_FIRST_SEC, DOS_LAST_SEC);
    let (year, month, day) = civil_from_days(secs / 86_400);
    let time = secs % 86_400;
    ZipDateTimeBuilder::new()
        .year(year)
        .month(month)
        .day(day)
        .hour((time / 3600) as u32)
        .minute((time % 3600 / 60) as u32)
        .second((time % 60) as u32)
        .build()
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's civil_from_days, for days ≥ 0).
fn civil_from_days(days: u64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400) as i32 + i32::from(month <= 2);
    (year, month, day)
}

/// Counts what passes through and fails once the count passes `limit`.
pub(super) struct Counted<W> {
    inner: W,
    pub(super) count: u64,
    limit: u64,
}

impl<W> Counted<W> {
    pub(super) fn new(inner: W, limit: u64) -> Self {
        Counted {
            inner,
            count: 0,
            limit,
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Counted<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.count += n as u64;
        if self.count > self.limit {
            let err = io::Error::new(
                io::ErrorKind::FileTooLarge,
                "the archive passed the size limit",
            );
            return Poll::Ready(Err(err));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(1_709_210_096 / 86_400), (2024, 2, 29));
        assert_eq!(civil_from_days(DOS_LAST_SEC / 86_400), (2107, 12, 31));
        // 2024-02-29 12:34:56 UTC; DOS keeps even seconds.
        let t = dos_time(UNIX_EPOCH + std::time::Duration::from_secs(1_709_210_096));
        let expected = ZipDateTimeBuilder::new().year(2024).month(2).day(29);
        assert_eq!(t, expected.hour(12).minute(34).second(56).build());
        assert_eq!(
            dos_time(UNIX_EPOCH),
            dos_time(UNIX_EPOCH + std::time::Duration::from_secs(DOS_FIRST_SEC))
        );
    }

    #[test]
    fn batches() {
        let entry = |kind, size| Entry {
            path: PathBuf::from("x"),
            kind,
            size,
            mode: 0o644,
            mtime: UNIX_EPOCH,
            target: None,
        };
        let small = entry(Kind::File, SMALL_FILE_BYTES);
        let large = entry(Kind::File, SMALL_FILE_BYTES + 1);
        let dir = entry(Kind::Dir, 0);
        assert_eq!(batch_len(&[large.clone(), small.clone()]), 1);
        assert_eq!(batch_len(&[dir.clone(), small.clone(), dir, large]), 3);
        let many = vec![small; 40];
        assert_eq!(batch_len(&many) as u64, BATCH_BYTES / SMALL_FILE_BYTES);
    }
}
