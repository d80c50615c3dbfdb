//! The session's transcript on disk: every output byte, so a client can resume (or `catty
//! logs` read) from far older offsets than the memory ring keeps. A thread of its own writes
//! it, fed through a queue bounded in bytes, so the PTY pump never waits on the disk; when
//! the queue is full or the disk fails, the transcript drops what it held and starts afresh
//! at the next byte (a warning says so), so what it holds is always one contiguous range.
//! The pump wakes the writer only for a bulk of output or after the writer fell asleep; small
//! output (keystroke echoes) waits for the writer's next round, at most [`ROUND`] later, so a
//! keystroke costs the runtime thread no syscall for the transcript.
//!
//! On disk it is at most two segment files, each named by the offset of its first byte
//! (`<dir>/<offset>.out`) and at most half the bound long: when the newer one is full, the
//! older one is deleted and a new one started. So the files never hold more than the bound,
//! and at least half of it (the most recent bytes) is kept once that much was written.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use crate::locks;

/// Output waiting for the writer thread, at most. Well under the memory ring, so bytes not
/// yet on disk are still in memory (readers go from the transcript on to the ring).
pub(super) const QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// Queued output that wakes the writer at once: a bulk of it goes to disk without delay.
const WAKE_BYTES: usize = 256 * 1024;

/// The longest small output waits in the queue; a round that finds nothing puts the writer
/// to sleep until the next output.
const ROUND: Duration = Duration::from_secs(1);

/// The transcript of one session; disabled, it keeps nothing.
pub(super) struct Transcript {
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<Chunk>>,
    writer: Option<JoinHandle<()>>,
    /// The writer thread, to wake it.
    thread: Option<Thread>,
}

struct Shared {
    /// Where the segment files are (removed with them when the runtime ends).
    dir: Option<PathBuf>,
    segments: Mutex<Segments>,
    /// Bytes sent to the writer and not yet written.
    queued: AtomicUsize,
    /// Set while bytes are being dropped for a full queue: one warning per gap.
    dropping: AtomicBool,
    /// The writer sleeps until woken (it found nothing in a whole round).
    asleep: AtomicBool,
}

struct Chunk {
    offset: u64,
    data: Vec<u8>,
}

/// The kept range as segments: pure bookkeeping, the files are opened by the writer.
struct Segments {
    /// The longest a segment grows: half the bound.
    segment_bytes: u64,
    list: VecDeque<Segment>,
}

struct Segment {
    start: u64,
    len: u64,
    path: PathBuf,
    file: Arc<File>,
}

impl Transcript {
    /// A transcript kept in `dir` within `bound_bytes`. Segment files left there by an
    /// earlier runtime are removed; nothing else in `dir` is touched.
    pub(super) fn open(dir: &Path, bound_bytes: u64) -> anyhow::Result<Transcript> {
        crate::private_dir::create(dir)?;
        let cannot = |e| anyhow::anyhow!("cannot clear the transcript in {}: {e}", dir.display());
        for entry in std::fs::read_dir(dir).map_err(cannot)? {
            let path = entry.map_err(cannot)?.path();
            if segment_offset(&path).is_some() {
                std::fs::remove_file(&path).map_err(cannot)?;
            }
        }
        let shared = Arc::new(Shared {
            dir: Some(dir.to_path_buf()),
            segments: Mutex::new(Segments {
                segment_bytes: (bound_bytes / 2).max(1),
                list: VecDeque::new(),
            }),
            queued: AtomicUsize::new(0),
            dropping: AtomicBool::new(false),
            asleep: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel::<Chunk>();
        let writer = {
            let (shared, dir) = (shared.clone(), dir.to_path_buf());
            std::thread::Builder::new()
                .name("transcript".into())
                .spawn(move || write_loop(&shared, &dir, rx))?
        };
        Ok(Transcript {
            shared,
            tx: Some(tx),
            thread: Some(writer.thread().clone()),
            writer: Some(writer),
        })
    }

    pub(super) fn disabled() -> Transcript {
        Transcript {
            shared: Arc::new(Shared {
                dir: None,
                segments: Mutex::new(Segments {
                    segment_bytes: 1,
                    list: VecDeque::new(),
                }),
                queued: AtomicUsize::new(0),
                dropping: AtomicBool::new(false),
                asleep: AtomicBool::new(false),
            }),
            tx: None,
            writer: None,
            thread: None,
        }
    }

    /// Queues output that starts at `offset` for the disk; never waits. Past
    /// [`QUEUE_BYTES`] in the queue the bytes are dropped and the transcript restarts later.
    pub(super) fn push(&self, offset: u64, data: &[u8]) {
        let Some(tx) = &self.tx else { return };
        let queued = self.shared.queued.load(Ordering::SeqCst);
        if queued + data.len() > QUEUE_BYTES {
            if !self.shared.dropping.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    offset,
                    "the transcript's disk falls behind; dropping output"
                );
            }
            return;
        }
        self.shared.dropping.store(false, Ordering::Relaxed);
        // Counted before it is sent, so the count never runs below what is in the queue.
        // SeqCst with the writer's store of `asleep` and load of `queued`: one of the two
        // sides sees the other, so output never waits on a writer asleep for good.
        let queued = self.shared.queued.fetch_add(data.len(), Ordering::SeqCst) + data.len();
        let chunk = Chunk {
            offset,
            data: data.to_vec(),
        };
        // The writer parks rather than blocks in `recv`, so this send wakes nobody.
        let _ = tx.send(chunk);
        if queued >= WAKE_BYTES || self.shared.asleep.swap(false, Ordering::SeqCst) {
            self.wake();
        }
    }

    /// A futex wake only when the writer is parked; otherwise it finds the token.
    fn wake(&self) {
        if let Some(thread) = &self.thread {
            thread.unpark();
        }
    }

    /// The range on disk: the oldest byte kept and one past the newest written.
    pub(super) fn range(&self) -> Option<(u64, u64)> {
        locks::lock(&self.shared.segments).range()
    }

    /// Up to `max` bytes from `offset`, read from disk; `None` when the offset is not (or no
    /// longer) on disk. Blocking: call it off the async thread.
    pub(super) fn read(&self, offset: u64, max: usize) -> io::Result<Option<Vec<u8>>> {
        let found = locks::lock(&self.shared.segments).locate(offset);
        let Some((file, at, len)) = found else {
            return Ok(None);
        };
        let mut buf = vec![0; len.min(max as u64) as usize];
        // A deleted segment stays readable through its open file.
        file.read_exact_at(&mut buf, at)?;
        Ok(Some(buf))
    }

    /// Bytes on disk now, in the segment files (for tests and logs).
    #[cfg(test)]
    fn disk_bytes(&self) -> u64 {
        let segments = locks::lock(&self.shared.segments);
        segments.list.iter().map(|s| s.len).sum()
    }

    /// Waits until everything queued is written (tests only).
    #[cfg(test)]
    fn flush(&self) {
        while self.shared.queued.load(Ordering::SeqCst) > 0 {
            self.wake();
            std::thread::yield_now();
        }
    }
}

impl Drop for Transcript {
    fn drop(&mut self) {
        // The writer ends once the queue is drained; a local disk makes that quick. The
        // transcript is read through the runtime only, so it ends with it.
        drop(self.tx.take());
        self.wake();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        remove(locks::lock(&self.shared.segments).clear());
        if let Some(dir) = &self.shared.dir {
            // Only when empty: the directory may hold files of someone else's.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Segments {
    fn range(&self) -> Option<(u64, u64)> {
        let first = self.list.front()?;
        let last = self.list.back()?;
        Some((first.start, last.start + last.len))
    }

    fn end(&self) -> Option<u64> {
        self.range().map(|(_, end)| end)
    }

    /// The file holding `offset`, the position in it and how many bytes follow there.
    fn locate(&self, offset: u64) -> Option<(Arc<File>, u64, u64)> {
        let s = self
            .list
            .iter()
            .find(|s| offset >= s.start && offset < s.start + s.len)?;
        Some((s.file.clone(), offset - s.start, s.start + s.len - offset))
    }

    /// Room left in the newest segment, zero when a new one must start.
    fn room(&self) -> u64 {
        self.list
            .back()
            .map_or(0, |s| self.segment_bytes.saturating_sub(s.len))
    }

    /// Makes `segment` the newest; returns the paths of segments that fall out (the oldest
    /// beyond two).
    fn start(&mut self, segment: Segment) -> Vec<PathBuf> {
        self.list.push_back(segment);
        let mut gone = Vec::new();
        while self.list.len() > 2 {
            gone.extend(self.list.pop_front().map(|s| s.path));
        }
        gone
    }

    /// Forgets everything; returns the paths to delete.
    fn clear(&mut self) -> Vec<PathBuf> {
        self.list.drain(..).map(|s| s.path).collect()
    }
}

fn write_loop(shared: &Shared, dir: &Path, rx: mpsc::Receiver<Chunk>) {
    let mut failing = false;
    let mut idle_rounds = 0;
    loop {
        let chunk = match rx.try_recv() {
            Ok(chunk) => chunk,
            Err(mpsc::TryRecvError::Disconnected) => return,
            Err(mpsc::TryRecvError::Empty) => {
                idle_rounds += 1;
                if idle_rounds == 1 {
                    std::thread::park_timeout(ROUND);
                } else {
                    // Asleep first, then the queue checked once more: output pushed in
                    // between either is seen here or wakes the park below (its token).
                    shared.asleep.store(true, Ordering::SeqCst);
                    if shared.queued.load(Ordering::SeqCst) == 0 {
                        std::thread::park();
                    }
                    shared.asleep.store(false, Ordering::SeqCst);
                    idle_rounds = 0;
                }
                continue;
            }
        };
        idle_rounds = 0;
        let result = append(shared, dir, chunk.offset, &chunk.data);
        shared.queued.fetch_sub(chunk.data.len(), Ordering::SeqCst);
        match result {
            Ok(()) => failing = false,
            Err(e) => {
                // What is on disk may be short now: start afresh with the next chunk.
                remove(locks::lock(&shared.segments).clear());
                if !failing {
                    tracing::warn!("writing the transcript failed: {e}; it restarts later");
                }
                failing = true;
            }
        }
    }
}

/// Appends output starting at `offset`, starting segments as needed.
fn append(shared: &Shared, dir: &Path, mut offset: u64, mut data: &[u8]) -> io::Result<()> {
    let end = locks::lock(&shared.segments).end();
    if end.is_some_and(|end| end != offset) {
        tracing::warn!(
            offset,
            "the transcript has a gap; it keeps output from here on"
        );
        remove(locks::lock(&shared.segments).clear());
    }
    while !data.is_empty() {
        let room = locks::lock(&shared.segments).room();
        if room == 0 {
            let path = dir.join(format!("{offset:020}.out"));
            let file = Arc::new(File::create_new(&path)?);
            let segment = Segment {
                start: offset,
                len: 0,
                path,
                file,
            };
            remove(locks::lock(&shared.segments).start(segment));
            continue;
        }
        let n = data.len().min(room as usize);
        let file = locks::lock(&shared.segments)
            .list
            .back()
            .map(|s| s.file.clone());
        let file = file.ok_or_else(|| io::Error::other("no segment"))?;
        (&*file).write_all(&data[..n])?;
        if let Some(s) = locks::lock(&shared.segments).list.back_mut() {
            s.len += n as u64;
        }
        offset += n as u64;
        data = &data[n..];
    }
    Ok(())
}

fn remove(paths: Vec<PathBuf>) {
    for path in paths {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

/// The offset a segment file's name gives, or `None` for any other file.
fn segment_offset(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?.strip_suffix(".out")?;
    (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn read_all(t: &Transcript, mut from: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(bytes) = t.read(from, 7).unwrap() {
            from += bytes.len() as u64;
            out.extend(bytes);
        }
        out
    }

    fn files(dir: &Path) -> Vec<(String, u64)> {
        let mut list: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                (name, e.metadata().unwrap().len())
            })
            .collect();
        list.sort();
        list
    }

    #[test]
    fn keeps_every_byte_while_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transcript::open(dir.path(), 100).unwrap();
        let data = stream(90);
        for (i, chunk) in data.chunks(13).enumerate() {
            t.push((i * 13) as u64, chunk);
        }
        t.flush();
        assert_eq!(t.range(), Some((0, 90)));
        assert_eq!(read_all(&t, 0), data);
        assert_eq!(read_all(&t, 61), &data[61..]);
    }

    #[test]
    fn never_holds_more_than_the_bound_and_keeps_the_newest_half() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transcript::open(dir.path(), 100).unwrap();
        let data = stream(1000);
        for (i, chunk) in data.chunks(33).enumerate() {
            t.push((i * 33) as u64, chunk);
            t.flush();
            let on_disk: u64 = files(dir.path()).iter().map(|(_, len)| len).sum();
            assert!(on_disk <= 100, "{on_disk} bytes on disk");
            assert_eq!(on_disk, t.disk_bytes());
        }
        // 1000 bytes in segments of 50: [900, 950) and [950, 1000).
        assert_eq!(t.range(), Some((900, 1000)));
        assert_eq!(read_all(&t, 900), &data[900..]);
        assert_eq!(t.read(899, 10).unwrap(), None);
        let names: Vec<_> = files(dir.path()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["00000000000000000900.out", "00000000000000000950.out"]
        );
    }

    #[test]
    fn a_gap_restarts_the_transcript() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transcript::open(dir.path(), 100).unwrap();
        t.push(0, b"hello");
        t.push(10, b"world");
        t.flush();
        assert_eq!(t.range(), Some((10, 15)));
        assert_eq!(read_all(&t, 10), b"world");
        assert_eq!(files(dir.path()).len(), 1);
    }

    #[test]
    fn leftover_segments_are_removed_and_other_files_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("00000000000000000007.out"), b"old").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        let t = Transcript::open(dir.path(), 100).unwrap();
        assert_eq!(t.range(), None);
        assert_eq!(files(dir.path()), [("notes.txt".to_string(), 4)]);
    }

    /// Waits for `done` up to ten seconds (the writer's rounds are one).
    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what} in time");
            std::thread::yield_now();
        }
    }

    #[test]
    fn small_output_reaches_the_disk_and_wakes_a_sleeping_writer() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transcript::open(dir.path(), 100).unwrap();
        t.push(0, b"a");
        wait_for("a written", || t.range() == Some((0, 1)));
        wait_for("the writer asleep", || {
            t.shared.asleep.load(Ordering::SeqCst)
        });
        t.push(1, b"b");
        wait_for("b written", || t.range() == Some((0, 2)));
        assert_eq!(read_all(&t, 0), b"ab");
    }

    #[test]
    fn disabled_keeps_nothing() {
        let t = Transcript::disabled();
        t.push(0, b"abc");
        assert_eq!(t.range(), None);
        assert_eq!(t.read(0, 10).unwrap(), None);
    }
}
