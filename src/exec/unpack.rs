//! Safe extraction of an uploaded workspace zip (SPEC section 4, upload rules).
//! Every central-directory entry is checked before anything is written; from the first write
//! on, any outcome but success (an error, or the future being dropped) empties the workspace.

mod archive;
mod cleanup;
mod error;
mod extract;
mod positioned;
mod record;
mod validate;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use std::io;
use std::path::Path;

pub use error::UnpackError;

use cleanup::Guard;
use error::io_at;
use extract::Extractor;
use record::{Record, record};
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
/// (a client hanging up): the caller may await this directly.
pub async fn unpack(
    zip: &Path,
    workspace: &Path,
    limits: &Limits,
) -> Result<Unpacked, UnpackError> {
    ensure_empty(workspace).await?;
    let mut archive = archive::open(zip).await?;
    let mut records: Vec<Record> = archive.cdrs().iter().map(record).collect();
    // Validation stops at the first entry past the limit; the rest need not be read.
    records.truncate(
        usize::try_from(limits.max_entries)
            .unwrap_or(usize::MAX)
            .saturating_add(1),
    );
    archive::read_links(&mut archive, &mut records).await?;
    let plan = validate(&records, limits)?;
    // Created only now: a workspace found not empty above must be left alone.
    let guard = Guard::new(workspace);
    let done = Extractor::new(archive, &guard, limits)
        .run(&records, &plan)
        .await?;
    guard.keep();
    Ok(done)
}

async fn ensure_empty(workspace: &Path) -> Result<(), UnpackError> {
    let mut dir = tokio::fs::read_dir(workspace)
        .await
        .map_err(io_at(workspace))?;
    if dir.next_entry().await.map_err(io_at(workspace))?.is_some() {
        let msg = format!("workspace {} is not empty", workspace.display());
        return Err(UnpackError::Io(io::Error::new(
            io::ErrorKind::DirectoryNotEmpty,
            msg,
        )));
    }
    Ok(())
}
