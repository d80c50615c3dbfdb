//! End-to-end tests of `unpack` over real archives in a temporary directory: good archives
//! round-trip, hostile ones are refused, and every way out but success leaves nothing behind.

use super::entry::{S_IFDIR, S_IFREG};
use super::testing::{CHAR_DEVICE, DIR, FIFO, FILE, LINK, MTIME_SECS, SOCKET, test_mtime};
use super::*;
use async_zip::Compression as Method;
use async_zip::ZipEntryBuilder;
use async_zip::base::write::ZipFileWriter;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, SystemTime};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

const OK: Spec = ("ok.txt", FILE, b"fine\n");

type Spec = (&'static str, u32, &'static [u8]);

/// A parent directory holding only the workspace and the zip, so stray writes show.
struct Fixture {
    root: TempDir,
    zip: PathBuf,
    ws: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let (zip, ws) = (root.path().join("up.zip"), root.path().join("ws"));
        std::fs::create_dir(&ws).unwrap();
        Fixture { root, zip, ws }
    }

    async fn write(&self, entries: &[(&str, u32, &[u8])]) {
        let file = tokio::fs::File::create(&self.zip).await.unwrap();
        let mut zip = ZipFileWriter::with_tokio(file);
        for &(name, mode, data) in entries {
            let mut entry = ZipEntryBuilder::new(name.into(), Method::Deflate);
            entry = entry.last_modification_date(test_mtime());
            if mode != 0 {
                entry = entry.unix_permissions(mode as u16);
            }
            zip.write_entry_whole(entry, data).await.unwrap();
        }
        let mut file = zip.close().await.unwrap().into_inner();
        file.flush().await.unwrap(); // pitfall 19: or the central directory is lost
    }

    async fn unpack(&self, limits: &Limits) -> Result<Unpacked, UnpackError> {
        unpack(&self.zip, &self.ws, limits).await
    }

    fn listing(dir: &Path) -> Vec<String> {
        let entries = std::fs::read_dir(dir).unwrap();
        let mut names: Vec<_> = entries
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn assert_clean(&self, case: &str) {
        assert_eq!(
            Self::listing(&self.ws),
            Vec::<String>::new(),
            "{case}: workspace not empty"
        );
        assert_eq!(
            Self::listing(self.root.path()),
            ["up.zip", "ws"],
            "{case}: wrote outside"
        );
    }

    async fn reject(&self, limits: &Limits, name: &str, reason: &str) {
        let err = self.unpack(limits).await.unwrap_err();
        match &err {
            UnpackError::BadEntry {
                name: got,
                reason: why,
            } => {
                assert_eq!(got, name, "{err}");
                assert!(why.contains(reason), "{err}");
            }
            other => panic!("{name}: expected a bad entry, got {other:?}"),
        }
        assert!(err.is_bad_input());
        self.assert_clean(name);
    }

    /// Overwrites a 32-bit field of `name`'s local header and central record, the way a
    /// hand-crafted hostile archive would.
    fn patch(&self, name: &[u8], lfh_at: usize, cdr_at: usize, value: u32) {
        let mut zip = std::fs::read(&self.zip).unwrap();
        let mut patched = 0;
        for i in 0..zip.len().saturating_sub(46) {
            let (field, name_at) = match &zip[i..i + 4] {
                [0x50, 0x4b, 3, 4] => (lfh_at, 30),
                [0x50, 0x4b, 1, 2] => (cdr_at, 46),
                _ => continue,
            };
            if zip[i + name_at..].starts_with(name) {
                zip[i + field..i + field + 4].copy_from_slice(&value.to_le_bytes());
                patched += 1;
            }
        }
        assert_eq!(patched, 2);
        std::fs::write(&self.zip, zip).unwrap();
    }
}

fn meta(path: &Path) -> (u32, SystemTime) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.mode() & 0o7777, meta.modified().unwrap())
}

#[tokio::test]
async fn a_good_archive_round_trips() {
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let files: [(&str, u32, &[u8]); 7] = [
        ("run.sh", S_IFREG | 0o755, b"#!/bin/sh\necho hi\n"),
        ("secret", S_IFREG | 0o600, b"s3cret"),
        ("plain.txt", 0, b"no unix mode"),
        ("suid", S_IFREG | 0o4755, b"setuid dropped"),
        ("src/lib/a.txt", FILE, b"alpha"),
        ("src/lib/big.bin", FILE, &big),
        ("implicit/deep/f.txt", FILE, b"deep"),
    ];
    let dirs: [(&str, u32, &[u8]); 3] = [
        ("src/", DIR, b""),
        ("src/lib/", S_IFDIR | 0o750, b""),
        ("empty/", S_IFDIR | 0o700, b""),
    ];
    let links: [(&str, u32, &[u8]); 2] = [
        ("link", LINK, b"src/lib/a.txt"),
        ("src/up", LINK, b"../run.sh"),
    ];
    let mut entries = dirs.to_vec();
    entries.extend(files);
    entries.extend(links);
    let f = Fixture::new();
    f.write(&entries).await;

    let done = f.unpack(&Limits::DEFAULT).await.unwrap();
    let bytes = files.iter().map(|(_, _, data)| data.len() as u64).sum();
    assert_eq!(done, Unpacked { files: 7, bytes });

    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(MTIME_SECS);
    for (name, mode, data) in files {
        let path = f.ws.join(name);
        assert_eq!(std::fs::read(&path).unwrap(), data, "{name}");
        let want = if mode == 0 { 0o644 } else { mode & 0o777 };
        assert_eq!(meta(&path), (want, mtime), "{name}");
    }
    for (name, mode, _) in dirs {
        assert_eq!(meta(&f.ws.join(name)), (mode & 0o777, mtime), "{name}");
    }
    assert!(Fixture::listing(&f.ws.join("empty")).is_empty());
    for (name, _, target) in links {
        let path = f.ws.join(name);
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_link(&path).unwrap().as_os_str().as_bytes(),
            target
        );
    }
    assert_eq!(std::fs::read(f.ws.join("link")).unwrap(), b"alpha");
    let top = [
        "empty",
        "implicit",
        "link",
        "plain.txt",
        "run.sh",
        "secret",
        "src",
        "suid",
    ];
    assert_eq!(Fixture::listing(&f.ws), top);
}

#[tokio::test]
async fn hostile_archives_are_rejected_leaving_nothing() {
    let cases: Vec<(Vec<Spec>, &str, &str)> = vec![
        (
            vec![OK, ("../evil", FILE, b"x")],
            "../evil",
            "leaves the workspace",
        ),
        (
            vec![OK, ("a/../../evil", FILE, b"x")],
            "a/../../evil",
            ".. component",
        ),
        (
            vec![OK, ("ln", LINK, b"../../etc")],
            "ln",
            "outside the workspace",
        ),
        (vec![OK, ("ln", LINK, b"/etc/passwd")], "ln", "absolute"),
        (
            vec![
                OK,
                ("sub/", DIR, b""),
                ("ln", LINK, b"sub"),
                ("ln/x", FILE, b"x"),
            ],
            "ln/x",
            "symlink",
        ),
        (
            vec![OK, ("l1", LINK, b"."), ("l2", LINK, b"l1/../x")],
            "l2",
            "through symlink",
        ),
        (vec![OK, ("dev", CHAR_DEVICE, b"")], "dev", "special file"),
        (vec![OK, ("fifo", FIFO, b"")], "fifo", "special file"),
        (vec![OK, ("sock", SOCKET, b"")], "sock", "special file"),
        (
            vec![OK, ("a/b", FILE, b"1"), ("a/./b", FILE, b"2")],
            "a/./b",
            "duplicate",
        ),
        (
            vec![OK, ("d/", DIR, b""), ("d/", DIR, b"")],
            "d/",
            "duplicate",
        ),
        (
            vec![OK, ("a", FILE, b"1"), ("a/b", FILE, b"2")],
            "a/b",
            "is a file",
        ),
    ];
    for (entries, name, reason) in cases {
        let f = Fixture::new();
        f.write(&entries).await;
        f.reject(&Limits::DEFAULT, name, reason).await;
    }
}

#[tokio::test]
async fn an_absolute_path_is_rejected() {
    let f = Fixture::new();
    let abs = f.root.path().join("abs-evil");
    let abs = abs.to_str().unwrap();
    f.write(&[OK, (abs, FILE, b"x")]).await;
    f.reject(&Limits::DEFAULT, abs, "absolute path").await;
}

#[tokio::test]
async fn limits_reject_before_writing() {
    let f = Fixture::new();
    f.write(&[
        OK,
        ("f1", FILE, b"1"),
        ("f2", FILE, b"2"),
        ("f3", FILE, b"3"),
        ("f4", FILE, b"4"),
    ])
    .await;
    // The central directory says 5 entries: refused before any is read.
    let err = f
        .unpack(&Limits {
            max_entries: 3,
            max_total_bytes: 1 << 20,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the archive holds more than the 3 entries allowed"
    );
    assert!(err.is_bad_input());
    f.assert_clean("too many entries");

    let f = Fixture::new();
    f.write(&[OK, ("big.bin", FILE, &[7; 200])]).await;
    f.reject(
        &Limits {
            max_entries: 10,
            max_total_bytes: 100,
        },
        "big.bin",
        "more than 100 bytes",
    )
    .await;
}

#[tokio::test]
async fn a_bomb_that_understates_its_size_is_stopped_and_cleaned_up() {
    let zeros = vec![0; 1 << 20];
    // Caught in the first chunk, and after one chunk is already on disk.
    for declared in [1000, CHUNK_BYTES as u32 + 1000] {
        let f = Fixture::new();
        f.write(&[OK, ("sub/bomb.bin", FILE, &zeros)]).await;
        f.patch(b"sub/bomb.bin", 22, 24, declared);
        // ok.txt and sub/ are written before the bomb goes off: both must go.
        f.reject(
            &Limits::DEFAULT,
            "sub/bomb.bin",
            "inflates beyond its declared size",
        )
        .await;
    }
}

#[tokio::test]
async fn corrupt_data_is_a_bad_entry_and_cleaned_up() {
    let f = Fixture::new();
    f.write(&[OK, ("c.txt", FILE, b"hello")]).await;
    f.patch(b"c.txt", 14, 16, 0xdead_beef); // the CRC, checked at the end of the data
    f.reject(&Limits::DEFAULT, "c.txt", "corrupt data").await;
}

/// Deflate data that does not decode is the upload's fault (400), named by its entry.
#[tokio::test]
async fn corrupt_deflate_is_a_bad_entry() {
    let f = Fixture::new();
    let data: Vec<u8> = (0..20_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let data: &'static [u8] = Box::leak(data.into_boxed_slice());
    f.write(&[OK, ("d.bin", FILE, data)]).await;
    let mut bytes = std::fs::read(&f.zip).unwrap();
    // Past d.bin's local header (30 bytes and its name): garbage in its deflate stream.
    let name_at = bytes.windows(5).position(|w| w == b"d.bin").unwrap();
    bytes[name_at + 5 + 10..name_at + 5 + 50].fill(0xff);
    std::fs::write(&f.zip, &bytes).unwrap();
    f.reject(&Limits::DEFAULT, "d.bin", "corrupt data").await;
}

#[tokio::test]
async fn a_file_that_is_not_a_zip_is_bad_input() {
    let mut prefixed = b"JUNKJUNKJUNK".to_vec();
    let good = Fixture::new();
    good.write(&[OK]).await;
    prefixed.extend(std::fs::read(&good.zip).unwrap());
    for junk in [b"this is not a zip archive\n".as_slice(), b"", &prefixed] {
        let f = Fixture::new();
        std::fs::write(&f.zip, junk).unwrap();
        let err = f.unpack(&Limits::DEFAULT).await.unwrap_err();
        assert!(matches!(err, UnpackError::Archive(_)), "{err:?}");
        assert!(err.is_bad_input());
        // One plain line, whatever the parser had to say.
        let text = err.to_string();
        assert!(!text.contains('\n') && !text.contains('\x1b'), "{text:?}");
        f.assert_clean("not a zip");
    }
}

#[tokio::test]
async fn a_workspace_that_is_not_empty_is_left_alone() {
    let f = Fixture::new();
    std::fs::write(f.ws.join("keep.txt"), b"mine").unwrap();
    f.write(&[OK]).await;
    let err = f.unpack(&Limits::DEFAULT).await.unwrap_err();
    assert!(
        matches!(&err, UnpackError::Io(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty),
        "{err:?}"
    );
    assert!(!err.is_bad_input());
    assert_eq!(Fixture::listing(&f.ws), ["keep.txt"]);
}

/// Recursive count of what is in `dir`: files and directories alike.
fn written(dir: &Path) -> usize {
    let entries = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap());
    entries
        .map(|e| match e.file_type().unwrap().is_dir() {
            true => 1 + written(&e.path()),
            false => 1,
        })
        .sum()
}

/// Polls `unpacking` for a millisecond and asserts it is still running.
async fn poll_briefly(
    unpacking: &mut Pin<Box<impl Future<Output = Result<Unpacked, UnpackError>>>>,
) {
    let polled = tokio::time::timeout(Duration::from_millis(1), unpacking).await;
    assert!(
        polled.is_err(),
        "finished before it could be dropped mid-way"
    );
}

#[tokio::test]
async fn a_dropped_unpack_empties_the_workspace() {
    const FILES: usize = 2000;
    // Flat, so a write landing late would sit beside what clearing had already listed; one
    // directory, so clearing must remove trees too.
    let names: Vec<_> = (0..FILES).map(|i| format!("f{i}")).collect();
    let mut entries = vec![("sub/first", FILE, &b"x"[..])];
    entries.extend(names.iter().map(|n| (n.as_str(), FILE, &b"x"[..])));
    let f = Fixture::new();
    f.write(&entries).await;

    // Each round ends with the workspace empty, ready for the next; several rounds because
    // whether a write is caught on the blocking pool at the drop is down to timing.
    for round in 0..5 {
        let mut unpacking = Box::pin(f.unpack(&Limits::DEFAULT));
        let seen = loop {
            poll_briefly(&mut unpacking).await;
            let seen = written(&f.ws);
            if seen >= 20 {
                break seen;
            }
        };
        assert!(seen < FILES, "round {round}: {seen} entries, not mid-way");
        // One more slice, then hang up at once the way hyper does when the client goes: the
        // future is dropped while a write is most likely still on the blocking pool.
        poll_briefly(&mut unpacking).await;
        drop(unpacking);
        f.assert_clean(&format!("round {round}: dropped mid-extraction"));
        // A write that was on the blocking pool must not land afterwards either.
        tokio::time::sleep(Duration::from_millis(20)).await;
        f.assert_clean(&format!("round {round}: a moment after the drop"));
    }
}
