//! Writing validated entries into the workspace: files streamed in chunks and checked against
//! what they declared, then directory modes and times fixed once their contents are in place.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::io::AsyncReadExt;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::archive::Archive;
use super::cleanup::Guard;
use super::error::{entry_error, io_at, read_error};
use super::record::{Kind, Record, permissions};
use super::validate::Planned;
use super::{CHUNK_BYTES, Limits, UnpackError, Unpacked};

/// Writes validated entries in order, then fixes directory modes and times. Every write goes
/// through the guard, so none lands after the workspace has been emptied.
pub(super) struct Extractor<'a> {
    archive: Archive,
    guard: &'a Guard,
    workspace: &'a Path,
    limits: &'a Limits,
    done: Unpacked,
    dirs: Vec<(PathBuf, u32, Option<SystemTime>)>,
}

impl<'a> Extractor<'a> {
    pub(super) fn new(archive: Archive, guard: &'a Guard, limits: &'a Limits) -> Self {
        let (done, dirs) = (Unpacked::default(), Vec::new());
        Extractor {
            archive,
            guard,
            workspace: guard.workspace(),
            limits,
            done,
            dirs,
        }
    }

    pub(super) async fn run(
        mut self,
        records: &[Record],
        plan: &[Planned],
    ) -> Result<Unpacked, UnpackError> {
        for (index, (r, planned)) in records.iter().zip(plan).enumerate() {
            let dest = self.workspace.join(&planned.path);
            match planned.kind {
                Kind::Dir => {
                    let path = dest.clone();
                    self.guard
                        .write(move || std::fs::create_dir_all(path))
                        .await
                        .map_err(io_at(&dest))?;
                    self.dirs
                        .push((dest, permissions(Kind::Dir, r.mode), r.mtime));
                }
                Kind::File => self.write_file(index, r, &dest).await?,
                Kind::Symlink => self.write_link(r, &dest).await?,
            }
        }
        self.finish_dirs().await?;
        Ok(self.done)
    }

    async fn write_link(&self, r: &Record, dest: &Path) -> Result<(), UnpackError> {
        let parent = dest.parent().unwrap_or(self.workspace);
        let (dir, link) = (parent.to_owned(), dest.to_owned());
        let target = PathBuf::from(OsStr::from_bytes(r.link.as_deref().unwrap_or_default()));
        self.guard
            .write(move || std::fs::create_dir_all(dir))
            .await
            .map_err(io_at(parent))?;
        self.guard
            .write(move || std::os::unix::fs::symlink(target, link))
            .await
            .map_err(io_at(dest))
    }

    /// Streams one file in chunks, each written (and the last one finished) in a single
    /// blocking call: for the many small files of a workspace that is one call per file.
    async fn write_file(
        &mut self,
        index: usize,
        r: &Record,
        dest: &Path,
    ) -> Result<(), UnpackError> {
        let entry = self
            .archive
            .file(index)
            .await
            .map_err(|err| entry_error(&r.name, err))?;
        let mut data = entry.compat();
        let meta = (permissions(Kind::File, r.mode), r.mtime);
        let (mut out, mut written) = (None, 0u64);
        loop {
            let mut chunk = Vec::new();
            let mut limited = (&mut data).take(CHUNK_BYTES as u64);
            limited
                .read_to_end(&mut chunk)
                .await
                .map_err(|err| read_error(&r.name, err))?;
            written += chunk.len() as u64;
            self.done.bytes += chunk.len() as u64;
            check_inflated(r, written, self.done.bytes, self.limits)?;
            let last = chunk.len() < CHUNK_BYTES;
            let path = dest.to_owned();
            let finish = last.then_some(meta);
            let file = self
                .guard
                .write(move || write_chunk(out, &path, &chunk, finish));
            out = Some(file.await.map_err(io_at(dest))?);
            if last {
                self.done.files += 1;
                return Ok(());
            }
        }
    }

    /// Deepest first, after all contents: creating a child would bump its parent's mtime.
    async fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|(path, _, _)| std::cmp::Reverse(path.components().count()));
        self.guard
            .write(move || {
                for (path, perm, mtime) in &dirs {
                    let dir = std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(
                            (rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::NOFOLLOW).bits()
                                as i32,
                        )
                        .open(path);
                    let with_path = |err: io::Error| {
                        io::Error::new(err.kind(), format!("{}: {err}", path.display()))
                    };
                    set_meta(&dir.map_err(with_path)?, *perm, *mtime).map_err(with_path)?;
                }
                Ok(())
            })
            .await
            .map_err(UnpackError::Io)
    }
}

/// Counts what actually inflates: a zip bomb's headers lie.
fn check_inflated(
    r: &Record,
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

fn write_chunk(
    out: Option<std::fs::File>,
    path: &Path,
    chunk: &[u8],
    finish: Option<(u32, Option<SystemTime>)>,
) -> io::Result<std::fs::File> {
    let mut out = match out {
        Some(out) => out,
        None => create_file(path)?,
    };
    out.write_all(chunk)?;
    if let Some((perm, mtime)) = finish {
        set_meta(&out, perm, mtime)?;
    }
    Ok(out)
}

fn create_file(path: &Path) -> io::Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // create_new refuses anything already there; O_NOFOLLOW is belt and braces.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

fn set_meta(file: &std::fs::File, perm: u32, mtime: Option<SystemTime>) -> io::Result<()> {
    file.set_permissions(std::fs::Permissions::from_mode(perm))?;
    match mtime {
        Some(mtime) => file.set_modified(mtime),
        None => Ok(()),
    }
}
