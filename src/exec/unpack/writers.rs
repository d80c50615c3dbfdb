//! Threads that create the small files the extractor has inflated and checked: creating a
//! file (open, write, mode, time, close) is most of an extraction's time, and spread over the
//! cores it no longer waits for one.

use std::io;
use std::num::NonZero;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use super::UnpackError;
use super::cleanup::Gate;
use super::error::io_at;
use super::new_file::write_chunk;
use crate::locks::lock;

/// At most this many writer threads, whatever the number of cores.
const MAX_WRITERS: usize = 4;
/// Files go to the writers in batches: one hand-over per file cost as much as writing it.
const BATCH_FILES: usize = 64;
/// A batch is sent early once its data reaches this size.
const BATCH_BYTES: usize = 256 * 1024;
/// Batches inflated ahead of the writers: bounds memory to a few megabytes.
const QUEUE_BATCHES: usize = 8;

/// One small file, whole: where it goes, its data, its permission bits and time.
pub(super) struct SmallFile {
    pub(super) path: PathBuf,
    pub(super) data: Vec<u8>,
    pub(super) perm: u32,
    pub(super) mtime: Option<SystemTime>,
}

/// The extractor's handle on the writers.
pub(super) struct Writers<'a> {
    queue: SyncSender<Vec<SmallFile>>,
    failed: &'a Mutex<Option<UnpackError>>,
    batch: Vec<SmallFile>,
    batch_bytes: usize,
}

impl Writers<'_> {
    /// Queues `file` for a writer; fails with a writer's error once one has failed.
    pub(super) fn write(&mut self, file: SmallFile) -> Result<(), UnpackError> {
        self.batch_bytes += file.data.len();
        self.batch.push(file);
        if self.batch.len() < BATCH_FILES && self.batch_bytes < BATCH_BYTES {
            return Ok(());
        }
        self.send()
    }

    fn send(&mut self) -> Result<(), UnpackError> {
        if let Some(err) = lock(self.failed).take() {
            return Err(err);
        }
        self.batch_bytes = 0;
        let batch = std::mem::take(&mut self.batch);
        // Only fails once every writer has stopped, the failing one after recording its error.
        self.queue.send(batch).map_err(|_| {
            lock(self.failed)
                .take()
                .unwrap_or_else(|| UnpackError::Io(io::Error::other("the file writers stopped")))
        })
    }
}

/// Runs `extract` with writer threads at its service, each write let through by `gate`, and
/// returns once every queued file is written. `extract`'s own error comes first (it names an
/// entry in archive order); a writer's error is returned otherwise.
pub(super) fn with_writers<T>(
    gate: &Gate,
    extract: impl FnOnce(&mut Writers<'_>) -> Result<T, UnpackError>,
) -> Result<T, UnpackError> {
    let (queue, batches) = sync_channel(QUEUE_BATCHES);
    let (batches, failed) = (Mutex::new(Some(batches)), Mutex::new(None));
    let threads = std::thread::available_parallelism().map_or(1, NonZero::get);
    let extracted = std::thread::scope(|scope| {
        for _ in 0..threads.min(MAX_WRITERS) {
            scope.spawn(|| write_all(&batches, gate, &failed));
        }
        let mut writers = Writers {
            queue,
            failed: &failed,
            batch: Vec::new(),
            batch_bytes: 0,
        };
        let done = extract(&mut writers)?;
        writers.send()?;
        // Dropping the handle closes the queue: the writers finish it and stop.
        Ok(done)
    });
    let failed = failed.into_inner().unwrap_or_else(PoisonError::into_inner);
    match (extracted, failed) {
        (Err(err), _) | (Ok(_), Some(err)) => Err(err),
        (Ok(done), None) => Ok(done),
    }
}

/// One writer: takes batches until the queue closes or a write fails.
fn write_all(
    batches: &Mutex<Option<Receiver<Vec<SmallFile>>>>,
    gate: &Gate,
    failed: &Mutex<Option<UnpackError>>,
) {
    let _closing = Closing(batches);
    loop {
        // Its own statement, so the lock is not held while writing.
        let received = lock(batches).as_ref().map(Receiver::recv);
        let Some(Ok(batch)) = received else {
            return;
        };
        for file in batch {
            if let Err(err) = gate.write(|| file.write()) {
                lock(failed).get_or_insert(io_at(&file.path)(err));
                return;
            }
        }
    }
}

/// Closes the queue when its writer stops, however it stops (a panic too): the other writers
/// stop as well, and the extractor's next send fails instead of waiting for room forever.
struct Closing<'a>(&'a Mutex<Option<Receiver<Vec<SmallFile>>>>);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        lock(self.0).take();
    }
}

impl SmallFile {
    fn write(&self) -> io::Result<()> {
        let finish = Some((self.perm, self.mtime));
        write_chunk(None, &self.path, &self.data, finish).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::unpack::cleanup::Guard;

    fn file(dir: &std::path::Path, i: usize) -> SmallFile {
        SmallFile {
            path: dir.join(format!("f{i}")),
            data: b"x".to_vec(),
            perm: 0o644,
            mtime: None,
        }
    }

    #[test]
    fn every_queued_file_is_written_before_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let guard = Guard::new(dir.path());
        let count = QUEUE_BATCHES * BATCH_FILES * 3 + 1;
        let queued = with_writers(&guard.gate(), |writers| {
            (0..count).try_for_each(|i| writers.write(file(dir.path(), i)))
        });
        queued.unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), count);
        guard.keep();
    }

    #[test]
    fn a_failing_writer_stops_the_extractor_instead_of_leaving_it_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let guard = Guard::new(dir.path());
        let gate = guard.gate();
        // Closed: every write fails, while the extractor has more than the queue holds to send.
        drop(guard);
        let count = QUEUE_BATCHES * BATCH_FILES * 3;
        let queued = with_writers(&gate, |writers| {
            (0..count).try_for_each(|i| writers.write(file(dir.path(), i)))
        });
        let err = queued.unwrap_err().to_string();
        assert!(err.ends_with("extraction was abandoned"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
