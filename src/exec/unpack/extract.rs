//! Writing validated entries into the workspace: files inflated and checked against what they
//! declared (small ones handed to the writer threads, large ones streamed here in chunks), then
//! directory modes and times fixed once their contents are in place. Runs on the unpacking
//! thread; every write is let through by the gate.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::archive::Archive;
use super::cleanup::Gate;
use super::entry::{CentralEntry, Kind, permissions};
use super::error::{entry_error, io_at, read_error};
use super::new_file::{set_meta, write_chunk};
use super::validate::Planned;
use super::writers::{SmallFile, Writers, with_writers};
use super::{CHUNK_BYTES, Limits, UnpackError, Unpacked};

/// Reads, checks and inflates validated entries in order and writes them (small files through
/// the writer threads, in any order), then fixes directory modes and times. Every write goes
/// through the gate, so none lands after the workspace has been emptied.
pub(super) struct Extractor<'a> {
    archive: Archive,
    gate: &'a Gate,
    workspace: &'a Path,
    limits: &'a Limits,
    done: Unpacked,
    dirs: Vec<(PathBuf, u32, Option<SystemTime>)>,
    /// Directories known to exist, so a file's parent costs no system call after the first.
    made: HashSet<PathBuf>,
    /// One chunk of a file, inflated.
    buf: Vec<u8>,
}

impl<'a> Extractor<'a> {
    pub(super) fn new(
        archive: Archive,
        gate: &'a Gate,
        workspace: &'a Path,
        limits: &'a Limits,
    ) -> Self {
        Extractor {
            archive,
            gate,
            workspace,
            limits,
            done: Unpacked::default(),
            dirs: Vec::new(),
            made: HashSet::new(),
            buf: vec![0; CHUNK_BYTES],
        }
    }

    /// Writes every entry (the files once the writers are done with them), then finishes the
    /// directories.
    pub(super) fn run(
        mut self,
        runtime: &tokio::runtime::Handle,
        records: &[CentralEntry],
        plan: &[Planned],
    ) -> Result<Unpacked, UnpackError> {
        with_writers(self.gate, |writers| {
            runtime.block_on(self.write_entries(records, plan, writers))
        })?;
        self.finish_dirs()?;
        Ok(self.done)
    }

    async fn write_entries(
        &mut self,
        records: &[CentralEntry],
        plan: &[Planned],
        writers: &mut Writers<'_>,
    ) -> Result<(), UnpackError> {
        for (index, (r, planned)) in records.iter().zip(plan).enumerate() {
            let dest = self.workspace.join(&planned.path);
            match planned.kind {
                Kind::Dir => {
                    let create = || std::fs::create_dir_all(&dest);
                    self.gate.write(create).map_err(io_at(&dest))?;
                    self.dirs
                        .push((dest.clone(), permissions(Kind::Dir, r.mode), r.mtime));
                    self.made.insert(dest);
                }
                Kind::File => self.write_file(index, r, dest, writers).await?,
                Kind::Symlink => self.write_link(r, &dest)?,
            }
        }
        Ok(())
    }

    /// Creates `path`'s parent, unless a directory entry or an earlier file already did.
    fn make_parent(&mut self, path: &Path) -> Result<(), UnpackError> {
        let parent = path.parent().unwrap_or(self.workspace);
        if !self.made.contains(parent) {
            let create = || std::fs::create_dir_all(parent);
            self.gate.write(create).map_err(io_at(parent))?;
            self.made.insert(parent.to_owned());
        }
        Ok(())
    }

    fn write_link(&mut self, r: &CentralEntry, dest: &Path) -> Result<(), UnpackError> {
        self.make_parent(dest)?;
        let target = Path::new(OsStr::from_bytes(r.link.as_deref().unwrap_or_default()));
        let create = || std::os::unix::fs::symlink(target, dest);
        self.gate.write(create).map_err(io_at(dest))
    }

    /// Inflates one file in chunks. One that fits in a chunk goes to the writers whole; a
    /// larger one is written here, a chunk per pass through the gate.
    async fn write_file(
        &mut self,
        index: usize,
        r: &CentralEntry,
        dest: PathBuf,
        writers: &mut Writers<'_>,
    ) -> Result<(), UnpackError> {
        self.make_parent(&dest)?;
        let entry = self
            .archive
            .file(index)
            .await
            .map_err(|err| entry_error(&r.name, err))?;
        let mut data = entry.compat();
        let (perm, mtime) = (permissions(Kind::File, r.mode), r.mtime);
        let (mut out, mut written) = (None, 0u64);
        loop {
            let n = fill(&mut data, &mut self.buf)
                .await
                .map_err(|err| read_error(&r.name, err))?;
            written += n as u64;
            self.done.bytes += n as u64;
            check_inflated(r, written, self.done.bytes, self.limits)?;
            let last = n < self.buf.len();
            self.done.files += u64::from(last);
            if last && out.is_none() {
                let data = self.buf[..n].to_vec();
                return writers.write(SmallFile {
                    path: dest,
                    data,
                    perm,
                    mtime,
                });
            }
            let (chunk, finish) = (&self.buf[..n], last.then_some((perm, mtime)));
            let write = || write_chunk(out.take(), &dest, chunk, finish);
            out = Some(self.gate.write(write).map_err(io_at(&dest))?);
            if last {
                return Ok(());
            }
        }
    }

    /// Deepest first, after all contents: creating a child would bump its parent's mtime.
    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|(path, _, _)| std::cmp::Reverse(path.components().count()));
        for (path, perm, mtime) in &dirs {
            let finish = || {
                let flags = rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::NOFOLLOW;
                let dir = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(flags.bits() as i32)
                    .open(path)?;
                set_meta(&dir, *perm, *mtime)
            };
            self.gate.write(finish).map_err(io_at(path))?;
        }
        Ok(())
    }
}

/// Reads until `buf` is full or the data ends (the read of 0 bytes is where async_zip checks
/// the CRC and size); returns how much was read.
async fn fill(data: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match data.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Counts what actually inflates: a zip bomb's headers lie.
fn check_inflated(
    r: &CentralEntry,
    written: u64,
    total: u64,
    limits: &Limits,
) -> Result<(), UnpackError> {
    if written > r.size {
        return Err(UnpackError::bad(
            &r.name,
            "data inflates beyond its declared size",
        ));
    }
    if total > limits.max_total_bytes {
        let reason = format!("archive inflates beyond {} bytes", limits.max_total_bytes);
        return Err(UnpackError::bad(&r.name, reason));
    }
    Ok(())
}
