//! The manifest's hashes: SHA-256 of each file's content, kept from one manifest to the next
//! while the file's stamp (size, mtime, ctime, inode, device) is unchanged, so a manifest after
//! a small change reads only what changed. SHA-256 is ring's, already built in for rustls.

use std::collections::{HashMap, HashSet};
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ring::digest::{Context, SHA256};

use super::file::open_beneath;
use super::listing::{Found, What};
use crate::protocol::sync::{EntryKind, ManifestEntry};

/// How old a file's last change must be, when it is hashed, for its stamp to vouch for the
/// hash later. File times come from a clock that lags by up to a tick (1 to 10 ms): a write
/// just after the hash could leave the stamp as it was (git's "racily clean" files).
const RACY_MARGIN: Duration = Duration::from_secs(1);

/// The reads of a hash: large enough for few system calls, small enough to stay in cache.
pub(super) const READ_CHUNK_BYTES: usize = 64 * 1024;

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    pub(super) size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
    dev: u64,
}

impl Stamp {
    pub(super) fn of(meta: &Metadata) -> Stamp {
        Stamp {
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }

    /// Whether the file changed too shortly before `when` for the stamp to vouch for it.
    fn recent(&self, when: SystemTime) -> bool {
        let newest = self.mtime.max(self.ctime);
        let Ok(secs) = u64::try_from(newest.0) else {
            return false;
        };
        let changed =
            SystemTime::UNIX_EPOCH + Duration::new(secs, newest.1.clamp(0, 999_999_999) as u32);
        changed + RACY_MARGIN > when
    }
}

/// A file's hash and what it was taken of.
#[derive(Debug, Clone)]
pub(super) struct Known {
    pub(super) stamp: Stamp,
    pub(super) executable: bool,
    /// Lowercase hex.
    pub(super) sha256: String,
    /// Whether the stamp was old enough when hashed to vouch for the hash ([`RACY_MARGIN`]).
    trusted: bool,
}

impl Known {
    /// The hash of `file` (read from its start), with the stamp `meta` it had before.
    pub(super) fn read(file: &mut File, meta: &Metadata) -> io::Result<Known> {
        let started = SystemTime::now();
        let stamp = Stamp::of(meta);
        Ok(Known {
            stamp,
            executable: meta.mode() & 0o111 != 0,
            sha256: sha256(file.take(stamp.size))?,
            trusted: !stamp.recent(started),
        })
    }

    /// Whether this hash still holds for a file whose stamp is now `stamp`.
    pub(super) fn holds_for(&self, stamp: &Stamp) -> bool {
        self.trusted && self.stamp == *stamp
    }
}

/// Every file of a manifest by path: what the next manifest reuses, and what `/sync/file`
/// may send.
pub(super) type Files = HashMap<String, Known>;

/// The manifest's entries for what the listing found, in its order, each file's hash taken
/// from `cache` when it still holds (and is not `distrusted`) and read otherwise; and the
/// files as the next cache. A file that cannot be read (gone, replaced, unreadable) is left
/// out: it is changing.
pub(super) fn entries(
    root: &OwnedFd,
    found: Vec<Found>,
    cache: &Files,
    distrusted: &HashSet<String>,
) -> (Vec<ManifestEntry>, Files) {
    let mut entries = Vec::with_capacity(found.len());
    let mut files = Files::with_capacity(found.len());
    for Found { path, what } in found {
        let kind = match what {
            What::Symlink(target) => EntryKind::Symlink { target },
            What::File(stamp) => {
                let cached = cache.get(&path).filter(|_| !distrusted.contains(&path));
                let known = match cached.filter(|k| k.holds_for(&stamp)) {
                    Some(known) => known.clone(),
                    None => match hash(root, &path) {
                        Ok(known) => known,
                        Err(err) => {
                            tracing::debug!("sync: left out {path}: {err}");
                            continue;
                        }
                    },
                };
                let kind = EntryKind::File {
                    executable: known.executable,
                    size: known.stamp.size,
                    sha256: known.sha256.clone(),
                };
                files.insert(path.clone(), known);
                kind
            }
        };
        entries.push(ManifestEntry { path, kind });
    }
    (entries, files)
}

/// Reads and hashes the file `rel` (never through a symlink).
fn hash(root: &OwnedFd, rel: &str) -> io::Result<Known> {
    let (mut file, meta) = open_beneath(root, rel)?;
    Known::read(&mut file, &meta)
}

/// The SHA-256 of everything `reader` gives, in lowercase hex.
pub(super) fn sha256(mut reader: impl Read) -> io::Result<String> {
    let mut context = Context::new(&SHA256);
    let mut buf = vec![0; READ_CHUNK_BYTES];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(crate::hex::encode(context.finish().as_ref())),
            Ok(n) => context.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The root as a directory handle for [`entries`], or why it cannot be opened.
pub(super) fn open_root(root: &Path) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags, open};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(open(root, flags, Mode::empty())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256(&b"abc"[..]).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_hash_taken_right_after_a_change_does_not_vouch_for_later() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let mut file = File::open(dir.path().join("f")).unwrap();
        let meta = file.metadata().unwrap();
        let known = Known::read(&mut file, &meta).unwrap();
        assert!(!known.holds_for(&Stamp::of(&meta)), "changed just now");
        let old = Known {
            trusted: !known.stamp.recent(SystemTime::now() + RACY_MARGIN * 2),
            ..known
        };
        assert!(old.holds_for(&Stamp::of(&meta)));
        let mut other = Stamp::of(&meta);
        other.size += 1;
        assert!(!old.holds_for(&other));
    }
}
