//! Safe extraction of an uploaded workspace zip (SPEC section 4, upload rules).
//! Every central-directory entry is checked before anything is written; from the first write
//! on, any outcome but success (an error, or the future being dropped) empties the workspace.

mod archive;
mod cleanup;
mod entry;
mod error;
mod extract;
mod new_file;
mod positioned;
mod validate;
mod writers;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use std::io;
use std::path::Path;

pub use error::UnpackError;

use cleanup::{Gate, Guard};
use entry::{CentralEntry, record};
use error::io_at;
use extract::Extractor;
use validate::validate;

/// Copy buffer while inflating: big enough for throughput, small enough per upload.
const CHUNK_BYTES: usize = 64 * 1024;

/// Caps on what one upload may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: u64,
    pub max_total_bytes: u64,
}

impl Limits {
    /// SPEC section 4: 200,000 entries and 1 GiB uncompressed.
    pub const DEFAULT: Limits = Limits {
        max_entries: 200_000,
        max_total_bytes: 1 << 30,
    };
}

/// What was extracted: regular files and the bytes written to them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unpacked {
    pub files: u64,
    pub bytes: u64,
}

/// Extracts `zip` into `workspace`, which must exist and be empty.
///
/// On error the workspace is emptied again, and so it is if the future is dropped mid-way
/// (a client hanging up): the caller may await this directly. The work happens off the async
/// threads: one blocking thread reads, checks and inflates, writer threads create the files.
pub async fn unpack(
    zip: &Path,
    workspace: &Path,
    limits: &Limits,
) -> Result<Unpacked, UnpackError> {
    let guard = Guard::new(workspace);
    let gate = guard.gate();
    let (zip, workspace, limits) = (zip.to_owned(), workspace.to_owned(), *limits);
    let job = tokio::task::spawn_blocking(move || {
        let unpacked = unpack_here(&zip, &workspace, &limits, &gate);
        // A failure is cleaned up here, off the async threads; the guard finds nothing left.
        // Success is kept only by the caller: dropped before that, it is removed too.
        if unpacked.is_err() {
            gate.close(false);
        }
        unpacked
    });
    let done = job
        .await
        .map_err(|err| UnpackError::Io(io::Error::other(err)))??;
    guard.keep();
    Ok(done)
}

/// The whole unpack, on a blocking thread: check, validate, and write through `gate`.
/// async_zip is async only; its reads here never wait (see Positioned), so each of its
/// futures is driven to the end in one go on this thread.
fn unpack_here(
    zip: &Path,
    workspace: &Path,
    limits: &Limits,
    gate: &Gate,
) -> Result<Unpacked, UnpackError> {
    let runtime = tokio::runtime::Handle::current();
    ensure_empty(workspace)?;
    let (archive, records) = runtime.block_on(read_directory(zip, limits))?;
    let plan = validate(&records, limits)?;
    Extractor::new(archive, gate, workspace, limits).run(&runtime, &records, &plan)
}

/// Opens the archive and reads its central directory, with each symlink's target.
async fn read_directory(
    zip: &Path,
    limits: &Limits,
) -> Result<(archive::Archive, Vec<CentralEntry>), UnpackError> {
    let mut archive = archive::open(zip, limits).await?;
    let mut records: Vec<CentralEntry> = archive.cdrs().iter().map(record).collect();
    // Validation stops at the first entry past the limit; the rest need not be read.
    records.truncate(
        usize::try_from(limits.max_entries)
            .unwrap_or(usize::MAX)
            .saturating_add(1),
    );
    archive::read_links(&mut archive, &mut records).await?;
    Ok((archive, records))
}

fn ensure_empty(workspace: &Path) -> Result<(), UnpackError> {
    let mut dir = std::fs::read_dir(workspace).map_err(io_at(workspace))?;
    if dir.next().transpose().map_err(io_at(workspace))?.is_some() {
        let msg = format!("workspace {} is not empty", workspace.display());
        return Err(UnpackError::Io(io::Error::new(
            io::ErrorKind::DirectoryNotEmpty,
            msg,
        )));
    }
    Ok(())
}
