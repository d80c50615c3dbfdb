//! `GET /sync/file`'s reading side, on a blocking thread: the file opened without following
//! any symlink, its hash known before the first byte goes out (the manifest's when its stamp
//! still holds), then its bytes in chunks, the last held back until they hash to what was
//! announced, so a client never receives a complete answer that differs from its header.

use std::fs::{File, Metadata};
use std::io::{self, Read, Seek};
use std::os::fd::OwnedFd;

use bytes::{Bytes, BytesMut};
use rustix::fs::{Mode, OFlags, openat};
use rustix::io::Errno;
use tokio::sync::{mpsc, oneshot};

use super::hashes::{Known, READ_CHUNK_BYTES, Stamp};
use crate::hex::encode as hex;
use crate::protocol::sync::SYNC_FILE_MAX_BYTES;

/// What the answer's head says.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) size: u64,
    pub(super) sha256: String,
}

/// Why a file is not sent.
#[derive(Debug)]
pub(super) enum Refusal {
    /// Gone, or not a regular file (a symlink on the way included).
    NotAFile,
    TooLarge(u64),
    Io(io::Error),
}

/// How a sending ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Sent {
    /// Every byte, matching the announced hash; or the client went away.
    Done,
    /// The bytes read did not hash to what was announced: the file changed, or the
    /// manifest's hash was stale. The answer was cut.
    Mismatch,
}

/// Opens the regular file `rel` below the directory `root` for reading, following no symlink
/// on the way (each directory, then the file, opened with `O_NOFOLLOW`) and never blocking on
/// a fifo; with its metadata.
pub(super) fn open_beneath(root: &OwnedFd, rel: &str) -> io::Result<(File, Metadata)> {
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let (parents, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let mut dir: Option<OwnedFd> = None;
    for part in parents.split('/').filter(|p| !p.is_empty()) {
        let at = dir.as_ref().unwrap_or(root);
        dir = Some(openat(at, part, dir_flags, Mode::empty())?);
    }
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = openat(
        dir.as_ref().unwrap_or(root),
        name,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let file = File::from(fd);
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((file, meta))
}

/// Sends the file `rel`: its [`Head`] (or why not) on `head`, then its bytes on `chunks`.
/// `known` is what the manifest said of it.
pub(super) fn send(
    root: &OwnedFd,
    rel: &str,
    known: &Known,
    head: oneshot::Sender<Result<Head, Refusal>>,
    chunks: mpsc::Sender<io::Result<Bytes>>,
) -> Sent {
    let (file, head_sent) = match prepare(root, rel, known) {
        Ok((file, sent)) => (file, sent),
        Err(refusal) => {
            let _ = head.send(Err(refusal));
            return Sent::Done;
        }
    };
    let (size, sha256) = (head_sent.size, head_sent.sha256.clone());
    if head.send(Ok(head_sent)).is_err() {
        return Sent::Done;
    }
    stream(file, size, &sha256, &chunks)
}

/// The open file and its head: the size from its stamp, the hash from the manifest when the
/// stamp still matches, else read once before sending.
fn prepare(root: &OwnedFd, rel: &str, known: &Known) -> Result<(File, Head), Refusal> {
    let (mut file, meta) =
        open_beneath(root, rel).map_err(|err| match Errno::from_io_error(&err) {
            Some(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => Refusal::NotAFile,
            _ if err.kind() == io::ErrorKind::InvalidInput => Refusal::NotAFile,
            _ => Refusal::Io(err),
        })?;
    if meta.len() > SYNC_FILE_MAX_BYTES {
        return Err(Refusal::TooLarge(meta.len()));
    }
    let sha256 = if known.holds_for(&Stamp::of(&meta)) {
        known.sha256.clone()
    } else {
        let fresh = Known::read(&mut file, &meta).map_err(Refusal::Io)?;
        file.rewind().map_err(Refusal::Io)?;
        fresh.sha256
    };
    let size = meta.len();
    Ok((file, Head { size, sha256 }))
}

/// Sends exactly `size` bytes of `file`, hashing them; the last chunk only if they hash to
/// `sha256`, else an error in its place.
fn stream(file: File, size: u64, sha256: &str, chunks: &mpsc::Sender<io::Result<Bytes>>) -> Sent {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut reader = file.take(size);
    let mut pending: Option<Bytes> = None;
    let mut read = 0u64;
    loop {
        let mut buf = BytesMut::zeroed(READ_CHUNK_BYTES);
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = chunks.blocking_send(Err(e));
                return Sent::Done;
            }
        };
        if n == 0 {
            break;
        }
        buf.truncate(n);
        context.update(&buf);
        read += n as u64;
        if let Some(chunk) = pending.replace(buf.freeze())
            && chunks.blocking_send(Ok(chunk)).is_err()
        {
            return Sent::Done;
        }
    }
    let (last, sent) = if read < size {
        let err = io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while sent");
        (Err(err), Sent::Mismatch)
    } else if hex(context.finish().as_ref()) != sha256 {
        let err = io::Error::other("the file changed while sent");
        (Err(err), Sent::Mismatch)
    } else {
        match pending {
            Some(chunk) => (Ok(chunk), Sent::Done),
            None => return Sent::Done,
        }
    };
    let _ = chunks.blocking_send(last);
    sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::sync::hashes::{open_root, sha256};

    #[test]
    fn no_symlink_is_followed_on_the_way_to_a_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::fs::write(dir.path().join("real/f"), "x").unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink("real/f", dir.path().join("f-link")).unwrap();
        let root = open_root(dir.path()).unwrap();
        assert!(open_beneath(&root, "real/f").is_ok());
        assert!(
            open_beneath(&root, "link/f").is_err(),
            "a symlinked directory"
        );
        assert!(
            open_beneath(&root, "f-link").is_err(),
            "a symlink to a file"
        );
        assert!(open_beneath(&root, "real").is_err(), "a directory");
    }

    /// Sends `data` announced with `sha256`; what arrives on the channel.
    fn sent(data: &[u8], sha256: &str) -> (Sent, Vec<io::Result<Bytes>>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), data).unwrap();
        let file = File::open(dir.path().join("f")).unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let how = stream(file, data.len() as u64, sha256, &tx);
        drop(tx);
        let mut chunks = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            chunks.push(chunk);
        }
        (how, chunks)
    }

    #[test]
    fn the_bytes_go_out_whole_when_they_hash_to_the_head() {
        let data = vec![7u8; READ_CHUNK_BYTES * 2 + 5];
        let (how, chunks) = sent(&data, &sha256(&data[..]).unwrap());
        assert_eq!(how, Sent::Done);
        let got: Vec<u8> = chunks.into_iter().flat_map(|c| c.unwrap()).collect();
        assert_eq!(got, data);
    }

    #[test]
    fn bytes_that_differ_from_the_head_end_in_an_error() {
        let data = vec![7u8; READ_CHUNK_BYTES * 2 + 5];
        let (how, chunks) = sent(&data, &sha256(&b"other"[..]).unwrap());
        assert_eq!(how, Sent::Mismatch);
        assert!(
            chunks.last().unwrap().is_err(),
            "the last chunk is held back"
        );
        assert_eq!(chunks.len(), 3, "two chunks, then the error");
    }
}
