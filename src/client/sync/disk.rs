//! The project directory as sync reads and writes it: every path is opened one component at
//! a time from the root with `O_NOFOLLOW`, so no symlink is ever followed, and every write is
//! a temp file beside its target (`O_EXCL`), fsynced and renamed over it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::decision::Local;
use crate::protocol::sync::EntryKind;

/// Names of the temp files sync writes: recognizable, so a killed client's are cleaned up.
pub(super) const TEMP_PREFIX: &str = ".catty-sync-";

/// A directory tree that sync writes into, opened once.
pub(super) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// The directory that holds a path, or why there is none.
enum Parent<'a> {
    Open(OwnedFd, &'a str),
    Missing,
    /// An ancestor is not a real directory (a symlink, a file), said in a few words.
    Blocked(String),
}

impl Root {
    /// Opens `path`, which must be a directory (reached by whatever way the user chose).
    pub(super) fn open(path: &Path) -> io::Result<Root> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::empty())?;
        Ok(Root {
            fd,
            path: path.to_owned(),
        })
    }

    /// Where `rel` is on disk, for messages.
    pub(super) fn display(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// The directory holding `rel` (a checked path); with `create`, missing directories are
    /// made (0755) one at a time.
    fn parent<'a>(&self, rel: &'a str, create: bool) -> io::Result<Parent<'a>> {
        let (dirs, name) = match rel.rsplit_once('/') {
            Some((dirs, name)) => (Some(dirs), name),
            None => (None, rel),
        };
        let mut dir = rustix::io::dup(&self.fd)?;
        let mut walked = String::new();
        for part in dirs.into_iter().flat_map(|d| d.split('/')) {
            if !walked.is_empty() {
                walked.push('/');
            }
            walked.push_str(part);
            dir = match open_dir(&dir, part) {
                Ok(next) => next,
                Err(Errno::NOENT) if create => match rustix::fs::mkdirat(&dir, part, dir_mode()) {
                    Ok(()) | Err(Errno::EXIST) => open_dir(&dir, part)?,
                    Err(e) => return Err(e.into()),
                },
                Err(Errno::NOENT) => return Ok(Parent::Missing),
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    let stat = rustix::fs::statat(&dir, part, AtFlags::SYMLINK_NOFOLLOW)?;
                    let what = match FileType::from_raw_mode(stat.st_mode) {
                        FileType::Symlink => "is a symlink",
                        _ => "is not a directory",
                    };
                    return Ok(Parent::Blocked(format!("{walked} {what}")));
                }
                Err(e) => return Err(e.into()),
            };
        }
        Ok(Parent::Open(dir, name))
    }

    /// What is at `rel`, with a file's SHA-256; nothing is followed or opened but a regular
    /// file.
    pub(super) fn local(&self, rel: &str) -> io::Result<Local> {
        let (dir, name) = match self.parent(rel, false)? {
            Parent::Open(dir, name) => (dir, name),
            Parent::Missing => return Ok(Local::Absent),
            Parent::Blocked(why) => return Ok(Local::Other(why)),
        };
        let stat = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::NOENT) => return Ok(Local::Absent),
            Err(e) => return Err(e.into()),
        };
        let what = match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => {
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
                let file = rustix::fs::openat(&dir, name, flags, Mode::empty())?;
                let (size, sha256) = hash(File::from(file))?;
                let executable = stat.st_mode & 0o111 != 0;
                return Ok(Local::Entry(EntryKind::File {
                    executable,
                    size,
                    sha256,
                }));
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(&dir, name, Vec::new())?;
                return Ok(match target.into_string() {
                    Ok(target) => Local::Entry(EntryKind::Symlink { target }),
                    Err(_) => Local::Other("a symlink with a non-UTF-8 target".into()),
                });
            }
            FileType::Directory => "a directory",
            _ => "a special file",
        };
        Ok(Local::Other(what.into()))
    }

    /// Opens the regular file `rel` for reading, following nothing.
    pub(super) fn open_file(&self, rel: &str) -> io::Result<File> {
        let Parent::Open(dir, name) = self.parent(rel, false)? else {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        };
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        Ok(File::from(rustix::fs::openat(
            &dir,
            name,
            flags,
            Mode::empty(),
        )?))
    }

    /// A new temp file beside `rel`, its directories made on the way; `Err` names what is in
    /// the way when a directory cannot be made.
    pub(super) fn temp_file(&self, rel: &str) -> io::Result<TempFile> {
        let (dir, name) = self.open_parent(rel)?;
        let temp = temp_name();
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let fd = rustix::fs::openat(&dir, &temp, flags | OFlags::CLOEXEC, file_mode(false))?;
        Ok(TempFile {
            file: File::from(fd),
            dir,
            temp,
            name: name.to_string(),
            done: false,
        })
    }

    /// Makes `rel` the symlink to `target`, replacing what is there, atomically.
    pub(super) fn symlink(&self, rel: &str, target: &str) -> io::Result<()> {
        let (dir, name) = self.open_parent(rel)?;
        let temp = temp_name();
        rustix::fs::symlinkat(target, &dir, &temp)?;
        rustix::fs::renameat(&dir, &temp, &dir, name).inspect_err(|_| {
            let _ = rustix::fs::unlinkat(&dir, &temp, AtFlags::empty());
        })?;
        Ok(())
    }

    fn open_parent<'a>(&self, rel: &'a str) -> io::Result<(OwnedFd, &'a str)> {
        match self.parent(rel, true)? {
            Parent::Open(dir, name) => Ok((dir, name)),
            Parent::Missing => Err(io::Error::other("a directory vanished while made")),
            Parent::Blocked(why) => Err(io::Error::other(why)),
        }
    }

    /// Deletes the file or symlink `rel`, then the directories above it that are left empty,
    /// except those for which `keep` says the session still has something inside.
    pub(super) fn remove(&self, rel: &str, keep: impl Fn(&str) -> bool) -> io::Result<()> {
        if let Parent::Open(dir, name) = self.parent(rel, false)? {
            match rustix::fs::unlinkat(&dir, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        for dir in super::check::ancestors(rel) {
            if keep(dir) {
                break;
            }
            let Ok(Parent::Open(parent, name)) = self.parent(dir, false) else {
                break;
            };
            if rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR).is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Removes the temp files a killed client left in the directories `dirs` (relative; `""`
    /// is the root). Returns how many.
    pub(super) fn clean_temps<'a>(&self, dirs: impl Iterator<Item = &'a str>) -> usize {
        let mut removed = 0;
        for rel in dirs {
            let dir = match rel {
                "" => rustix::io::dup(&self.fd).ok(),
                _ => match self.parent(&format!("{rel}/x"), false) {
                    Ok(Parent::Open(dir, _)) => Some(dir),
                    _ => None,
                },
            };
            let Some(dir) = dir else { continue };
            let Ok(entries) = rustix::fs::Dir::read_from(&dir) else {
                continue;
            };
            let temps: Vec<_> = entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_bytes().starts_with(TEMP_PREFIX.as_bytes()))
                .map(|e| e.file_name().to_owned())
                .collect();
            for name in temps {
                // A directory of that name is not ours: unlinkat without REMOVEDIR refuses it.
                removed += usize::from(rustix::fs::unlinkat(&dir, &name, AtFlags::empty()).is_ok());
            }
        }
        removed
    }
}

/// A file being written beside its target; dropped before [`TempFile::commit`], it is removed.
pub(super) struct TempFile {
    file: File,
    dir: OwnedFd,
    temp: String,
    name: String,
    done: bool,
}

impl TempFile {
    pub(super) fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    /// Gives the file its mode (0755 or 0644, nothing else), makes it durable and renames it
    /// over the target.
    pub(super) fn commit(mut self, executable: bool) -> io::Result<()> {
        rustix::fs::fchmod(&self.file, file_mode(executable))?;
        self.file.sync_all()?;
        rustix::fs::renameat(&self.dir, &self.temp, &self.dir, &self.name)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = rustix::fs::unlinkat(&self.dir, &self.temp, AtFlags::empty());
        }
    }
}

/// The size and SHA-256 (lowercase hex) of what `reader` holds.
pub(super) fn hash(mut reader: impl Read) -> io::Result<(u64, String)> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                context.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((size, crate::hex::encode(context.finish().as_ref())))
}

fn open_dir(dir: &OwnedFd, name: &str) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(dir, name, flags, Mode::empty())
}

fn temp_name() -> String {
    format!("{TEMP_PREFIX}{}", crate::random::hex(8))
}

fn file_mode(executable: bool) -> Mode {
    Mode::from_raw_mode(if executable { 0o755 } else { 0o644 })
}

fn dir_mode() -> Mode {
    Mode::from_raw_mode(0o755)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_sha256() {
        let (size, sha) = hash(&b"abc"[..]).unwrap();
        assert_eq!(size, 3);
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn nothing_is_written_through_a_symlink() {
        let outside = tempfile::tempdir().unwrap();
        let root_dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root_dir.path().join("out")).unwrap();
        let root = Root::open(root_dir.path()).unwrap();
        assert!(root.temp_file("out/passwd").is_err());
        assert!(root.symlink("out/l", "x").is_err());
        assert_eq!(
            root.local("out/passwd").unwrap(),
            Local::Other("out is a symlink".into())
        );
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_temp_file_is_renamed_in_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let mut temp = root.temp_file("a/b/f").unwrap();
        temp.write(b"hi").unwrap();
        temp.commit(true).unwrap();
        let meta = std::fs::metadata(dir.path().join("a/b/f")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o755
        );
        drop(root.temp_file("a/g").unwrap());
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a")).unwrap().collect();
        assert_eq!(names.len(), 1, "only b/ is left");
        root.remove("a/b/f", |_| false).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
