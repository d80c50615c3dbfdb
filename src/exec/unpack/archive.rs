//! Reading the spooled zip: opening it with bounds that follow from its size, and reading each
//! symlink's target (its data) so validation can judge where the link points. Only on the
//! unpacking thread: the reads block.

use std::path::Path;

use async_zip::base::read1::ZipOptions;
use async_zip::base::read1::seek::ZipArchiveReader;
use async_zip::error::ZipError;
use tokio::io::AsyncReadExt;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

use super::entry::{CentralEntry, Kind, kind_of};
use super::error::{entry_error, io_at, is_system_error, one_line, read_error};
use super::positioned::Positioned;
use super::{Limits, UnpackError};

pub(super) type Archive = ZipArchiveReader<Compat<Positioned>>;

/// Linux cannot create a symlink whose target reaches PATH_MAX (4096, counting the NUL).
const MAX_LINK_TARGET_BYTES: u64 = 4095;
/// The smallest central directory record: an archive declaring more entries than fit is lying.
const MIN_CDR_BYTES: u64 = 46;

pub(super) async fn open(zip: &Path, limits: &Limits) -> Result<Archive, UnpackError> {
    let file = std::fs::File::open(zip).map_err(io_at(zip))?;
    let len = file.metadata().map_err(io_at(zip))?.len();
    // untrusted() caps would reject before our limits, with a message naming no entry. These
    // bounds follow from the file's size, so they only refuse archives whose headers lie;
    // and an archive declaring more entries than allowed is refused before any is read.
    let max_entries = (len / MIN_CDR_BYTES + 1).min(limits.max_entries);
    let opts = ZipOptions {
        max_cd_num_files: max_entries,
        max_cd_num_files_load: max_entries,
        max_cd_size_in_bytes: len,
        max_compressed_size_per_file: len,
        max_uncompressed_size_per_file: u64::MAX,
        ..ZipOptions::untrusted()
    };
    ZipArchiveReader::open_with_options(Positioned::new(file).compat(), opts)
        .await
        .map_err(|err| match err {
            ZipError::UpstreamReadError(err) if is_system_error(&err) => io_at(zip)(err),
            ZipError::NumFilesAboveMax(_) if max_entries == limits.max_entries => {
                UnpackError::TooManyEntries {
                    max: limits.max_entries,
                }
            }
            err => UnpackError::Archive(one_line(&err.to_string())),
        })
}

/// Reads each symlink's target, which is the entry's data. Bad data becomes the record's
/// problem, so validation still reports the first bad entry in order.
pub(super) async fn read_links(
    archive: &mut Archive,
    records: &mut [CentralEntry],
) -> Result<(), UnpackError> {
    for (index, r) in records.iter_mut().enumerate() {
        if r.problem.is_some() || kind_of(&r.name, r.mode) != Ok(Kind::Symlink) {
            continue;
        }
        if r.size > MAX_LINK_TARGET_BYTES {
            r.problem = Some("symlink target too long".into());
            continue;
        }
        match read_link(archive, index, r).await {
            Ok(target) => r.link = Some(target),
            Err(UnpackError::BadEntry { reason, .. }) => r.problem = Some(reason),
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

async fn read_link(
    archive: &mut Archive,
    index: usize,
    r: &CentralEntry,
) -> Result<Vec<u8>, UnpackError> {
    let entry = archive
        .file(index)
        .await
        .map_err(|err| entry_error(&r.name, err))?;
    let mut target = Vec::new();
    let mut data = entry.compat().take(r.size + 1);
    data.read_to_end(&mut target)
        .await
        .map_err(|err| read_error(&r.name, err))?;
    if target.len() as u64 > r.size {
        return Err(UnpackError::bad(
            &r.name,
            "data inflates beyond its declared size",
        ));
    }
    Ok(target)
}
