//! Small files read and deflated ahead of the zip writer, a batch per blocking task and a few
//! batches at once: entries are independent, so every core compresses while the writer puts
//! the results into the archive in order.

use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::DeflateEncoder;
use tokio::task::JoinHandle;

use super::archive_error::ArchiveError;

/// Level 2 of 9 (zlib-rs): on real source code (the cargo registry's crates) 22.9% of the raw
/// size at 215 MB/s a core, against 21.6% at 181 MB/s for level 3 and 29.2% at 416 MB/s for
/// level 1, whose fast strategy gives up most of the ratio (`measure_deflate_levels` in
/// tests/client_upload.rs). Every core deflates (below).
pub const DEFLATE_LEVEL: u32 = 2;

/// Files up to this size are read whole, many per blocking call: one thread hop per file
/// cost more than the reading itself (30 µs each, over a second for 40,000 files).
pub(super) const SMALL_FILE_BYTES: u64 = 64 * 1024;

/// One file's data as it goes into the archive: raw deflate, with what the headers declare.
pub(super) struct Packed {
    pub(super) deflated: Vec<u8>,
    pub(super) crc: u32,
    pub(super) size: u64,
}

/// Reads and deflates `paths` on a blocking thread; `None` for a file that grew past
/// [`SMALL_FILE_BYTES`] since the scan (the writer streams it instead).
pub(super) fn spawn_pack(
    paths: Vec<PathBuf>,
) -> JoinHandle<Result<Vec<Option<Packed>>, ArchiveError>> {
    tokio::task::spawn_blocking(move || {
        // One encoder for the batch: setting one up costs more than deflating a small file.
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::new(DEFLATE_LEVEL));
        let mut pack_one = |path: PathBuf| {
            let data = read_small(&path).map_err(|err| ArchiveError::Read { path, err })?;
            data.map(|data| pack(&mut encoder, &data))
                .transpose()
                .map_err(ArchiveError::Write)
        };
        paths.into_iter().map(&mut pack_one).collect()
    })
}

/// Deflates `data` as one raw deflate stream and leaves the encoder ready for the next file.
fn pack(encoder: &mut DeflateEncoder<Vec<u8>>, data: &[u8]) -> io::Result<Packed> {
    encoder.write_all(data)?;
    let deflated = encoder.reset(Vec::new())?;
    let mut crc = flate2::Crc::new();
    crc.update(data);
    Ok(Packed {
        deflated,
        crc: crc.sum(),
        size: data.len() as u64,
    })
}

fn read_small(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    open_regular(path)?
        .take(SMALL_FILE_BYTES + 1)
        .read_to_end(&mut data)?;
    Ok((data.len() as u64 <= SMALL_FILE_BYTES).then_some(data))
}

/// Opens a file the scan found regular; refuses what replaced it since (a link, a FIFO that
/// would block the read forever).
pub(super) fn open_regular(path: &Path) -> io::Result<std::fs::File> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("no longer a regular file"));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::DeflateDecoder;

    #[test]
    fn each_file_is_a_stream_of_its_own() {
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::new(DEFLATE_LEVEL));
        let texts = [
            (b"fn main() {}\n".repeat(100), None),
            (Vec::new(), Some(0)),
            (b"123456789".to_vec(), Some(0xcbf4_3926)), // CRC-32's check value
        ];
        for (text, crc) in &texts {
            let packed = pack(&mut encoder, text).unwrap();
            let mut back = Vec::new();
            DeflateDecoder::new(packed.deflated.as_slice())
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(&back, text);
            assert_eq!(packed.size, text.len() as u64);
            if let Some(crc) = crc {
                assert_eq!(packed.crc, *crc);
            }
        }
    }
}
