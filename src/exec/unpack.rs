//! Safe extraction of an uploaded workspace zip (SPEC section 4, upload rules).
//! Every central-directory entry is checked before anything is written; if extraction then
//! fails, everything written is removed, so a rejected archive leaves an empty workspace.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use async_zip::base::read1::ZipOptions;
use async_zip::base::read1::seek::ZipArchiveReader;
use async_zip::error::ZipError;
use async_zip::spec::constructs::CDR;
use async_zip::spec::extra::{EF, EFD, EFHID};
use async_zip::spec::headers1::Compression;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncReadExt, AsyncSeek, BufReader, ReadBuf};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

type Archive = ZipArchiveReader<Compat<Positioned>>;

/// Linux cannot create a symlink whose target reaches PATH_MAX (4096, counting the NUL).
const MAX_LINK_TARGET_BYTES: u64 = 4095;
/// Linux NAME_MAX: a longer component is the archive's fault, not an I/O failure.
const MAX_COMPONENT_BYTES: usize = 255;
/// Leaves room under PATH_MAX for the workspace's own path.
const MAX_NAME_BYTES: usize = 3840;
/// The smallest central directory record: an archive declaring more entries than fit is lying.
const MIN_CDR_BYTES: u64 = 46;
/// Copy buffer while inflating: big enough for throughput, small enough per upload.
const CHUNK_BYTES: usize = 64 * 1024;

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
/// `version made by` host byte for Unix: only then do the external attributes hold `st_mode`.
const HOST_UNIX: u16 = 3;

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

/// Error naming the first bad entry, e.g. `entry "../evil": path leaves the workspace`.
#[derive(Debug)]
pub enum UnpackError {
    /// An entry breaks a rule; `name` is as stored in the archive (lossy UTF-8).
    BadEntry { name: String, reason: String },
    /// Not a readable zip archive.
    Archive(String),
    /// The server's side failed: the workspace or the spooled file.
    Io(io::Error),
}

impl UnpackError {
    /// True when the upload is at fault (HTTP 400), false for our own I/O failures (500).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, UnpackError::Io(_))
    }

    fn bad(name: &[u8], reason: impl Into<String>) -> Self {
        let name = String::from_utf8_lossy(name).into_owned();
        UnpackError::BadEntry {
            name,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for UnpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnpackError::BadEntry { name, reason } => write!(f, "entry {name:?}: {reason}"),
            UnpackError::Archive(msg) => write!(f, "not a readable zip archive: {msg}"),
            UnpackError::Io(err) => write!(f, "{err}"),
        }
    }
}

// No source(): Display already includes the I/O error, and a cause chain would repeat it.
impl std::error::Error for UnpackError {}

/// Extracts `zip` into `workspace`, which must exist and be empty.
///
/// On error the workspace is emptied again. Dropping the future mid-extraction skips that
/// cleanup (a blocking write may still be landing), so a caller that can be cancelled should
/// run this in a task it awaits.
pub async fn unpack(
    zip: &Path,
    workspace: &Path,
    limits: &Limits,
) -> Result<Unpacked, UnpackError> {
    ensure_empty(workspace).await?;
    let mut archive = open(zip).await?;
    let mut records: Vec<Record> = archive.cdrs().iter().map(record).collect();
    // Validation stops at the first entry past the limit; the rest need not be read.
    records.truncate(
        usize::try_from(limits.max_entries)
            .unwrap_or(usize::MAX)
            .saturating_add(1),
    );
    read_links(&mut archive, &mut records).await?;
    let plan = validate(&records, limits)?;
    let mut extractor = Extractor::new(archive, workspace, limits);
    match extractor.run(&records, &plan).await {
        Ok(()) => Ok(extractor.done),
        Err(err) => {
            if let Err(clear_err) = clear(workspace).await {
                tracing::warn!("cannot empty {}: {clear_err}", workspace.display());
            }
            Err(err)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
}

/// One central-directory entry, as far as validation and extraction care.
#[derive(Debug, Clone)]
struct Record {
    name: Vec<u8>,
    /// `st_mode` from Unix external attributes; 0 when the archive has none.
    mode: u32,
    size: u64,
    mtime: Option<SystemTime>,
    /// A symlink entry's data: its target.
    link: Option<Vec<u8>>,
    /// Found while reading the entry (unsupported compression, unreadable link data, ...).
    problem: Option<String>,
}

/// An entry that passed validation: where it goes, relative to the workspace.
#[derive(Debug, PartialEq, Eq)]
struct Planned {
    path: PathBuf,
    kind: Kind,
}

fn kind_of(name: &[u8], mode: u32) -> Result<Kind, String> {
    match mode & S_IFMT {
        S_IFDIR => Ok(Kind::Dir),
        S_IFLNK => Ok(Kind::Symlink),
        0 | S_IFREG if name.ends_with(b"/") => Ok(Kind::Dir),
        0 | S_IFREG => Ok(Kind::File),
        other => Err(format!(
            "special file (type {other:06o}): only files, directories and symlinks"
        )),
    }
}

/// Permission bits to apply; setuid, setgid and sticky are dropped on purpose.
fn permissions(kind: Kind, mode: u32) -> u32 {
    match (mode, kind) {
        (0, Kind::Dir) => 0o755,
        (0, _) => 0o644,
        _ => mode & 0o777,
    }
}

/// The name's path components, dropping `.` and empty ones; `..` is never allowed.
fn components(name: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.contains(&0) {
        return Err("name contains NUL");
    }
    if name.starts_with(b"/") {
        return Err("absolute path");
    }
    if name.len() > MAX_NAME_BYTES {
        return Err("name too long");
    }
    let mut parts = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if parts.is_empty() => return Err("path leaves the workspace"),
            b".." => return Err("path has a .. component"),
            long if long.len() > MAX_COMPONENT_BYTES => return Err("name component too long"),
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err("name is the workspace itself");
    }
    Ok(parts)
}

/// Checks every record in central-directory order and plans where each one goes.
///
/// Conflicts are judged against the whole archive, not only earlier entries, so `ln/x` before
/// the symlink `ln` is still caught (and named, being first).
fn validate(records: &[Record], limits: &Limits) -> Result<Vec<Planned>, UnpackError> {
    let keys: Vec<_> = records
        .iter()
        .map(|r| components(&r.name).map(|p| p.join(&b'/')))
        .collect();
    let mut kinds = HashMap::new();
    for (r, key) in records.iter().zip(&keys) {
        if let (Ok(key), Ok(kind)) = (key, kind_of(&r.name, r.mode)) {
            kinds.entry(key.as_slice()).or_insert(kind);
        }
    }
    let (mut seen, mut total) = (HashSet::new(), 0u64);
    let mut plan = Vec::with_capacity(records.len());
    for (i, (r, key)) in records.iter().zip(&keys).enumerate() {
        if i as u64 >= limits.max_entries {
            let reason = format!("archive has more than {} entries", limits.max_entries);
            return Err(UnpackError::bad(&r.name, reason));
        }
        total = total.saturating_add(r.size);
        if total > limits.max_total_bytes {
            let reason = format!(
                "archive declares more than {} bytes uncompressed",
                limits.max_total_bytes
            );
            return Err(UnpackError::bad(&r.name, reason));
        }
        let kind =
            check_entry(r, key, &kinds, &mut seen).map_err(|e| UnpackError::bad(&r.name, e))?;
        let path = PathBuf::from(OsStr::from_bytes(key.as_deref().unwrap_or_default()));
        plan.push(Planned { path, kind });
    }
    Ok(plan)
}

fn check_entry<'k>(
    r: &Record,
    key: &'k Result<Vec<u8>, &str>,
    kinds: &HashMap<&[u8], Kind>,
    seen: &mut HashSet<&'k [u8]>,
) -> Result<Kind, String> {
    if let Some(problem) = &r.problem {
        return Err(problem.clone());
    }
    let key = key.as_ref().map_err(|e| e.to_string())?;
    let kind = kind_of(&r.name, r.mode)?;
    if !seen.insert(key.as_slice()) {
        return Err("duplicate name".into());
    }
    for (i, _) in key.iter().enumerate().filter(|(_, b)| **b == b'/') {
        let parent = String::from_utf8_lossy(&key[..i]);
        match kinds.get(&key[..i]) {
            Some(Kind::File) => return Err(format!("parent {parent:?} is a file")),
            Some(Kind::Symlink) => return Err(format!("path passes through symlink {parent:?}")),
            _ => {}
        }
    }
    if kind == Kind::Symlink {
        check_target(key, r.link.as_deref().unwrap_or_default(), kinds)?;
    }
    Ok(kind)
}

/// Resolves a link target lexically from the link's directory. It must stay inside and must
/// not traverse another symlink of the archive: chains are how lexical checks get fooled.
fn check_target(key: &[u8], target: &[u8], kinds: &HashMap<&[u8], Kind>) -> Result<(), String> {
    if target.is_empty() || target.contains(&0) {
        return Err("symlink target is empty or contains NUL".into());
    }
    if target.starts_with(b"/") {
        return Err("symlink target is absolute".into());
    }
    let mut at: Vec<&[u8]> = key.split(|&b| b == b'/').collect();
    at.pop();
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if at.pop().is_none() {
                    return Err("symlink points outside the workspace".into());
                }
            }
            part => {
                at.push(part);
                let so_far = at.join(&b'/');
                if kinds.get(so_far.as_slice()) == Some(&Kind::Symlink) {
                    let via = String::from_utf8_lossy(&so_far);
                    return Err(format!("symlink target passes through symlink {via:?}"));
                }
            }
        }
    }
    Ok(())
}

/// DOS date and time (the zipping machine's local time, taken as UTC); None when invalid.
fn dos_time(date: u16, time: u16) -> Option<SystemTime> {
    let (year, month, day) = (
        1980 + i64::from(date >> 9),
        i64::from(date >> 5 & 0xF),
        i64::from(date & 0x1F),
    );
    let (hour, minute, second) = (
        u64::from(time >> 11),
        u64::from(time >> 5 & 0x3F),
        u64::from(time & 0x1F) * 2,
    );
    if !(1..=12).contains(&month) || day == 0 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days since 1970-01-01, after Howard Hinnant's days_from_civil (years here are >= 1980).
    let y = if month <= 2 { year - 1 } else { year };
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let days = y * 365 + y / 4 - y / 100 + y / 400 + doy - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + hour * 3600 + minute * 60 + second;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

fn record(cdr: &CDR) -> Record {
    let h = &cdr.cdrh;
    let mode = if h.v_made_by >> 8 == HOST_UNIX {
        h.exter_attr >> 16
    } else {
        0
    };
    let mut problem = None;
    if !matches!(h.compression, Compression::Stored | Compression::Deflate) {
        problem = Some(format!("unsupported compression {:?}", h.compression));
    }
    // CDR::lfh_offset unwraps a missing zip64 offset: refuse it here rather than panic later.
    let ei64_offset = cdr.find_ef(EFHID::EI64).and_then(|ef| match ef {
        EF {
            efd: EFD::EI64(ei), ..
        } => ei.relative_offset,
        _ => None,
    });
    if h.lfh_offset == u32::MAX && ei64_offset.is_none() {
        problem = Some("zip64 extra field lacks the local header offset".into());
    }
    let size = cdr.uncompressed_size().unwrap_or_else(|err| {
        problem = Some(err.to_string());
        0
    });
    let name = cdr.insecure_file_name.as_bytes().to_vec();
    let mtime = dos_time(h.mod_date, h.mod_time);
    Record {
        name,
        mode,
        size,
        mtime,
        link: None,
        problem,
    }
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

async fn open(zip: &Path) -> Result<Archive, UnpackError> {
    let file = tokio::fs::File::open(zip).await.map_err(io_at(zip))?;
    let len = file.metadata().await.map_err(io_at(zip))?.len();
    // untrusted() caps would reject before our limits, with a message naming no entry. These
    // bounds follow from the file's size, so they only refuse archives whose headers lie.
    let opts = ZipOptions {
        max_cd_num_files: len / MIN_CDR_BYTES + 1,
        max_cd_num_files_load: len / MIN_CDR_BYTES + 1,
        max_cd_size_in_bytes: len,
        max_compressed_size_per_file: len,
        max_uncompressed_size_per_file: u64::MAX,
        ..ZipOptions::untrusted()
    };
    let reader = Positioned {
        inner: BufReader::with_capacity(CHUNK_BYTES, file),
        pos: 0,
        seeking: false,
    };
    ZipArchiveReader::open_with_options(reader.compat(), opts)
        .await
        .map_err(|err| match err {
            ZipError::UpstreamReadError(err) if !is_data_error(&err) => io_at(zip)(err),
            err => UnpackError::Archive(err.to_string()),
        })
}

/// tokio's BufReader drops its buffer and asks the file on every seek, and async_zip asks for
/// its position (a seek to `Current(0)`) after every central-directory record: 200,000 entries
/// took 12 s. This answers that question from a counter.
struct Positioned {
    inner: BufReader<tokio::fs::File>,
    pos: u64,
    seeking: bool,
}

impl AsyncRead for Positioned {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        self.pos += (buf.filled().len() - before) as u64;
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for Positioned {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        Pin::new(&mut self.get_mut().inner).poll_fill_buf(cx)
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        self.pos += amt as u64;
        Pin::new(&mut self.inner).consume(amt);
    }
}

impl AsyncSeek for Positioned {
    /// Seeks that land inside the buffer (the next local header, usually) skip forward in it.
    fn start_seek(mut self: Pin<&mut Self>, to: io::SeekFrom) -> io::Result<()> {
        let target = match to {
            io::SeekFrom::Start(n) => n.checked_sub(self.pos),
            io::SeekFrom::Current(n) => u64::try_from(n).ok(),
            io::SeekFrom::End(_) => None,
        };
        let skip = target
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= self.inner.buffer().len());
        self.seeking = skip.is_none();
        match skip {
            Some(n) => self.as_mut().consume(n),
            None => Pin::new(&mut self.inner).start_seek(to)?,
        }
        Ok(())
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        if self.seeking {
            self.pos = ready!(Pin::new(&mut self.inner).poll_complete(cx))?;
            self.seeking = false;
        }
        Poll::Ready(Ok(self.pos))
    }
}

/// Reads each symlink's target, which is the entry's data. Bad data becomes the record's
/// problem, so validation still reports the first bad entry in order.
async fn read_links(archive: &mut Archive, records: &mut [Record]) -> Result<(), UnpackError> {
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
    r: &Record,
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

/// Writes validated entries in order, then fixes directory modes and times.
struct Extractor<'a> {
    archive: Archive,
    workspace: &'a Path,
    limits: &'a Limits,
    done: Unpacked,
    dirs: Vec<(PathBuf, u32, Option<SystemTime>)>,
}

impl<'a> Extractor<'a> {
    fn new(archive: Archive, workspace: &'a Path, limits: &'a Limits) -> Self {
        let (done, dirs) = (Unpacked::default(), Vec::new());
        Extractor {
            archive,
            workspace,
            limits,
            done,
            dirs,
        }
    }

    async fn run(&mut self, records: &[Record], plan: &[Planned]) -> Result<(), UnpackError> {
        for (index, (r, planned)) in records.iter().zip(plan).enumerate() {
            let dest = self.workspace.join(&planned.path);
            match planned.kind {
                Kind::Dir => {
                    tokio::fs::create_dir_all(&dest)
                        .await
                        .map_err(io_at(&dest))?;
                    self.dirs
                        .push((dest, permissions(Kind::Dir, r.mode), r.mtime));
                }
                Kind::File => self.write_file(index, r, &dest).await?,
                Kind::Symlink => {
                    let parent = dest.parent().unwrap_or(self.workspace);
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(io_at(parent))?;
                    let target = OsStr::from_bytes(r.link.as_deref().unwrap_or_default());
                    tokio::fs::symlink(target, &dest)
                        .await
                        .map_err(io_at(&dest))?;
                }
            }
        }
        self.finish_dirs().await
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
            let file = blocking(move || write_chunk(out, &path, &chunk, finish));
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
        blocking(move || {
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

/// Removes everything in the workspace, which was empty when extraction began.
async fn clear(workspace: &Path) -> io::Result<()> {
    let workspace = workspace.to_owned();
    blocking(move || {
        for entry in std::fs::read_dir(&workspace)? {
            let entry = entry?;
            // DirEntry::file_type does not follow symlinks, so a link is unlinked, not entered.
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    })
    .await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> UnpackError + '_ {
    move |err| {
        UnpackError::Io(io::Error::new(
            err.kind(),
            format!("{}: {err}", path.display()),
        ))
    }
}

/// Malformed archive data shows up as these kinds; anything else is a real I/O failure.
fn is_data_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
    )
}

fn read_error(name: &[u8], err: io::Error) -> UnpackError {
    if is_data_error(&err) {
        UnpackError::bad(name, format!("corrupt data: {err}"))
    } else {
        UnpackError::Io(err)
    }
}

fn entry_error(name: &[u8], err: ZipError) -> UnpackError {
    match err {
        ZipError::UpstreamReadError(err) => read_error(name, err),
        err => UnpackError::bad(name, format!("unreadable entry: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_zip::base::write::ZipFileWriter;
    use async_zip::{Compression as Method, ZipDateTime, ZipDateTimeBuilder, ZipEntryBuilder};
    use std::os::unix::fs::MetadataExt;
    use tempfile::TempDir;
    use tokio::io::AsyncWriteExt;

    const FILE: u32 = S_IFREG | 0o644;
    const DIR: u32 = S_IFDIR | 0o755;
    const LINK: u32 = S_IFLNK | 0o777;
    const CHAR_DEVICE: u32 = 0o020_644;
    const FIFO: u32 = 0o010_644;
    const SOCKET: u32 = 0o140_644;
    /// 2021-03-14 15:09:26 UTC: the modification time of every entry these tests write.
    const MTIME_SECS: u64 = 1_615_734_566;
    const OK: Spec = ("ok.txt", FILE, b"fine\n");

    type Spec = (&'static str, u32, &'static [u8]);

    fn rec(name: &str, mode: u32, link: Option<&str>) -> Record {
        let link = link.map(|l| l.as_bytes().to_vec());
        Record {
            name: name.into(),
            mode,
            size: 1,
            mtime: None,
            link,
            problem: None,
        }
    }

    fn file(name: &str) -> Record {
        rec(name, FILE, None)
    }

    fn link(name: &str, target: &str) -> Record {
        rec(name, LINK, Some(target))
    }

    fn first_bad(records: &[Record], limits: &Limits) -> (String, String) {
        match validate(records, limits) {
            Err(UnpackError::BadEntry { name, reason }) => (name, reason),
            other => panic!("expected a bad entry, got {other:?}"),
        }
    }

    #[test]
    fn components_drop_dots_and_refuse_escapes() {
        assert_eq!(components(b"a/./b").unwrap(), [b"a", b"b"]);
        assert_eq!(components(b"./a//b/").unwrap(), [b"a", b"b"]);
        assert_eq!(components(b"a\\..\\b").unwrap(), [b"a\\..\\b".as_slice()]);
        let long = vec![b'x'; MAX_COMPONENT_BYTES + 1];
        for (name, reason) in [
            (b"".as_slice(), "empty name"),
            (b"/etc/evil", "absolute path"),
            (b"a\0b", "name contains NUL"),
            (b"../evil", "path leaves the workspace"),
            (b"a/../b", "path has a .. component"),
            (b"./", "name is the workspace itself"),
            (&long, "name component too long"),
        ] {
            assert_eq!(
                components(name),
                Err(reason),
                "{}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn kinds_and_permissions_come_from_the_mode() {
        assert_eq!(kind_of(b"a", 0), Ok(Kind::File));
        assert_eq!(kind_of(b"a/", 0), Ok(Kind::Dir));
        assert_eq!(kind_of(b"a", S_IFDIR | 0o755), Ok(Kind::Dir));
        assert_eq!(kind_of(b"a", LINK), Ok(Kind::Symlink));
        for mode in [CHAR_DEVICE, FIFO, SOCKET, 0o060_644] {
            assert!(
                kind_of(b"a", mode).unwrap_err().starts_with("special file"),
                "{mode:o}"
            );
        }
        assert_eq!(permissions(Kind::File, 0), 0o644);
        assert_eq!(permissions(Kind::Dir, 0), 0o755);
        assert_eq!(permissions(Kind::File, S_IFREG | 0o4755), 0o755);
        assert_eq!(permissions(Kind::Dir, S_IFDIR | 0o1777), 0o777);
    }

    #[test]
    fn dos_times_are_read_as_utc() {
        let at = |secs| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        let dos = |d: ZipDateTime| dos_time(d_date(&d), d_time(&d));
        assert_eq!(dos(test_mtime()), at(MTIME_SECS));
        let leap = ZipDateTimeBuilder::new()
            .year(2000)
            .month(2)
            .day(29)
            .hour(23)
            .minute(59);
        assert_eq!(dos(leap.second(58).build()), at(951_868_798));
        assert_eq!(dos_time(0x0021, 0), at(315_532_800)); // 1980-01-01
        assert_eq!(dos_time(0, 0), None);
        assert_eq!(dos_time(0x0021, 24 << 11), None);
    }

    /// ZipDateTime hides its fields; its accessors give them back.
    fn d_date(d: &ZipDateTime) -> u16 {
        ((d.year() - 1980) as u16) << 9 | (d.month() as u16) << 5 | d.day() as u16
    }

    fn d_time(d: &ZipDateTime) -> u16 {
        (d.hour() as u16) << 11 | (d.minute() as u16) << 5 | (d.second() / 2) as u16
    }

    #[test]
    fn a_good_archive_is_planned_in_order() {
        let records = [
            rec("src/", DIR, None),
            file("src/./a.txt"),
            link("link", "src/a.txt"),
            link("src/up", "../src/a.txt"),
            link("here", "."),
            link("round", "src/.."),
        ];
        let plan = validate(&records, &Limits::DEFAULT).unwrap();
        let got: Vec<_> = plan
            .iter()
            .map(|p| (p.path.to_str().unwrap(), p.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("src", Kind::Dir),
                ("src/a.txt", Kind::File),
                ("link", Kind::Symlink),
                ("src/up", Kind::Symlink),
                ("here", Kind::Symlink),
                ("round", Kind::Symlink),
            ]
        );
    }

    #[test]
    fn the_first_bad_entry_is_named() {
        let ok = || file("ok.txt");
        let cases: Vec<(Vec<Record>, &str, &str)> = vec![
            (vec![ok(), file("/etc/evil")], "/etc/evil", "absolute path"),
            (
                vec![ok(), file("../evil")],
                "../evil",
                "leaves the workspace",
            ),
            (
                vec![ok(), file("a/../../evil")],
                "a/../../evil",
                ".. component",
            ),
            (vec![ok(), file("")], "", "empty name"),
            (
                vec![ok(), link("ln", "../../etc")],
                "ln",
                "outside the workspace",
            ),
            (
                vec![ok(), link("d/ln", "../../etc")],
                "d/ln",
                "outside the workspace",
            ),
            (vec![ok(), link("ln", "/etc/passwd")], "ln", "absolute"),
            (vec![ok(), link("ln", "")], "ln", "empty"),
            (
                vec![ok(), link("ln", "sub"), file("ln/x")],
                "ln/x",
                "through symlink \"ln\"",
            ),
            (
                vec![ok(), file("ln/x"), link("ln", "sub")],
                "ln/x",
                "through symlink \"ln\"",
            ),
            (
                vec![ok(), link("l1", "."), link("l2", "l1/../x")],
                "l2",
                "through symlink \"l1\"",
            ),
            (
                vec![ok(), link("l2", "l1/../x"), link("l1", ".")],
                "l2",
                "through symlink \"l1\"",
            ),
            (
                vec![ok(), link("self", "self")],
                "self",
                "through symlink \"self\"",
            ),
            (
                vec![ok(), rec("dev", CHAR_DEVICE, None)],
                "dev",
                "special file",
            ),
            (vec![ok(), rec("fifo", FIFO, None)], "fifo", "special file"),
            (vec![ok(), file("a/b"), file("a/./b")], "a/./b", "duplicate"),
            (
                vec![ok(), rec("d/", DIR, None), rec("d/", DIR, None)],
                "d/",
                "duplicate",
            ),
            (
                vec![ok(), rec("d/", DIR, None), file("d")],
                "d",
                "duplicate",
            ),
            (
                vec![ok(), file("a"), file("a/b")],
                "a/b",
                "parent \"a\" is a file",
            ),
            (
                vec![ok(), file("a/b/c"), file("a")],
                "a/b/c",
                "parent \"a\" is a file",
            ),
            (
                vec![ok(), file("../first"), file("/second")],
                "../first",
                "leaves",
            ),
        ];
        for (records, name, reason) in cases {
            let (got_name, got_reason) = first_bad(&records, &Limits::DEFAULT);
            assert_eq!(got_name, name);
            assert!(got_reason.contains(reason), "{name}: {got_reason}");
        }
    }

    #[test]
    fn problems_found_while_reading_are_reported_in_order() {
        let mut broken = file("broken");
        broken.problem = Some("unsupported compression Bz".into());
        let records = [file("ok.txt"), broken, file("../later")];
        let (name, reason) = first_bad(&records, &Limits::DEFAULT);
        assert_eq!(
            (name.as_str(), reason.as_str()),
            ("broken", "unsupported compression Bz")
        );
    }

    #[test]
    fn limits_name_the_entry_that_passes_them() {
        let records: Vec<_> = (0..5).map(|i| file(&format!("f{i}"))).collect();
        let limits = Limits {
            max_entries: 3,
            max_total_bytes: 100,
        };
        let (name, reason) = first_bad(&records, &limits);
        assert_eq!(
            (name.as_str(), reason.as_str()),
            ("f3", "archive has more than 3 entries")
        );
        assert!(validate(&records[..3], &limits).is_ok());

        let mut records = records;
        records[2].size = 99;
        let (name, reason) = first_bad(
            &records,
            &Limits {
                max_entries: 10,
                max_total_bytes: 100,
            },
        );
        assert_eq!(name, "f2");
        assert_eq!(reason, "archive declares more than 100 bytes uncompressed");
    }

    #[test]
    fn errors_print_one_line_and_classify() {
        let err = UnpackError::bad(b"../evil", "path leaves the workspace");
        assert_eq!(
            err.to_string(),
            r#"entry "../evil": path leaves the workspace"#
        );
        assert!(err.is_bad_input());
        assert!(UnpackError::Archive("x".into()).is_bad_input());
        assert!(!UnpackError::Io(io::Error::other("disk")).is_bad_input());
        let nasty = UnpackError::bad(b"a\nb\xff", "x").to_string();
        assert_eq!(nasty, "entry \"a\\nb\u{fffd}\": x");
    }

    fn test_mtime() -> ZipDateTime {
        let date = ZipDateTimeBuilder::new().year(2021).month(3).day(14);
        date.hour(15).minute(9).second(26).build()
    }

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
        f.reject(
            &Limits {
                max_entries: 3,
                max_total_bytes: 1 << 20,
            },
            "f3",
            "more than 3 entries",
        )
        .await;

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

    #[tokio::test]
    async fn a_file_that_is_not_a_zip_is_bad_input() {
        for junk in [b"this is not a zip archive\n".as_slice(), b""] {
            let f = Fixture::new();
            std::fs::write(&f.zip, junk).unwrap();
            let err = f.unpack(&Limits::DEFAULT).await.unwrap_err();
            assert!(matches!(err, UnpackError::Archive(_)), "{err:?}");
            assert!(err.is_bad_input());
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
}
