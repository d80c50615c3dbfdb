//! The size check that runs before a session exists: will the archive pass the runtime's
//! upload limit, and if not, what to leave out.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::archive::{Counted, write_zip};
use super::archive_error::ArchiveError;
use super::walk::{Entry, Kind, Workspace};

/// Headers per entry (local and central, zip64 fields) plus deflate's framing of a tiny file,
/// rounded up: bounds the archive's size without compressing.
const ENTRY_OVERHEAD_BYTES: u64 = 256;
/// End records and the last partly filled buffers.
const ARCHIVE_OVERHEAD_BYTES: u64 = 64 * 1024;
const MIB: u64 = 1024 * 1024;

/// The archive would pass the runtime's upload limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    pub limit: u64,
    /// Size of everything before compression.
    pub raw_bytes: u64,
    /// The five largest files and directories (sizes before compression), largest first.
    pub largest_files: Vec<(PathBuf, u64)>,
    pub largest_dirs: Vec<(PathBuf, u64)>,
}

/// Whether `ws` zips to at most `limit` bytes, without sending anything. A workspace that
/// cannot pass it even uncompressed answers at once; otherwise it is compressed into a
/// counting sink that stops as soon as the count passes the limit.
pub async fn check_size(ws: &Workspace, root: &Path, limit: u64) -> Result<(), SizeError> {
    if size_bound(ws) <= limit {
        return Ok(());
    }
    let mut sink = Counted::new(tokio::io::sink(), limit);
    match write_zip(ws, root, &mut sink, |_| {}).await {
        Ok(_) => Ok(()),
        Err(_) if sink.count > limit => Err(SizeError::TooLarge(TooLarge::new(ws, limit))),
        Err(err) => Err(SizeError::Archive(err)),
    }
}

/// Why [`check_size`] failed.
#[derive(Debug)]
pub enum SizeError {
    TooLarge(TooLarge),
    /// Compressing failed before the size was known (an unreadable file).
    Archive(ArchiveError),
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeError::TooLarge(err) => err.fmt(f),
            SizeError::Archive(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for SizeError {}

/// Never below the real archive size: deflate grows incompressible data by well under 0.1%.
fn size_bound(ws: &Workspace) -> u64 {
    let entry = |e: &Entry| {
        e.size + e.size / 1000 + ENTRY_OVERHEAD_BYTES + 2 * e.path.as_os_str().len() as u64
    };
    ws.entries.iter().map(entry).sum::<u64>() + ARCHIVE_OVERHEAD_BYTES
}

impl TooLarge {
    fn new(ws: &Workspace, limit: u64) -> Self {
        let files = ws.entries.iter().filter(|e| e.kind == Kind::File);
        let mut dirs: HashMap<&Path, u64> = HashMap::new();
        for file in files.clone() {
            for dir in file
                .path
                .ancestors()
                .skip(1)
                .filter(|d| !d.as_os_str().is_empty())
            {
                *dirs.entry(dir).or_default() += file.size;
            }
        }
        TooLarge {
            limit,
            raw_bytes: ws.total_bytes(),
            largest_files: top(files.map(|e| (e.path.as_path(), e.size))),
            largest_dirs: top(dirs.into_iter()),
        }
    }

    /// `.gitignore` lines that would help most: the largest directory, then the largest files
    /// outside it.
    fn suggestions(&self) -> Vec<String> {
        let dir = self.largest_dirs.first().map(|(d, _)| d);
        let outside = |f: &&(PathBuf, u64)| dir.is_none_or(|d| !f.0.starts_with(d));
        let files = self.largest_files.iter().filter(outside).take(2);
        let dir_line = dir.map(|d| format!("/{}/", d.display()));
        dir_line
            .into_iter()
            .chain(files.map(|(f, _)| format!("/{}", f.display())))
            .collect()
    }
}

fn top<'a>(sizes: impl Iterator<Item = (&'a Path, u64)>) -> Vec<(PathBuf, u64)> {
    let mut all: Vec<_> = sizes.collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    all.into_iter()
        .take(5)
        .map(|(p, n)| (p.to_owned(), n))
        .collect()
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (limit, raw) = (human(self.limit), human(self.raw_bytes));
        writeln!(
            f,
            "the workspace is larger than {limit} compressed ({raw} before compression)"
        )?;
        writeln!(f, "largest files:")?;
        for (path, size) in &self.largest_files {
            writeln!(f, "  {:>10}  {}", human(*size), path.display())?;
        }
        if !self.largest_dirs.is_empty() {
            writeln!(f, "largest directories:")?;
        }
        for (path, size) in &self.largest_dirs {
            writeln!(f, "  {:>10}  {}/", human(*size), path.display())?;
        }
        writeln!(
            f,
            "add lines like these to .gitignore, or start without uploading (--no-upload):"
        )?;
        let lines = self.suggestions();
        write!(
            f,
            "{}",
            lines
                .iter()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    }
}

impl std::error::Error for TooLarge {}

/// `48.0 MiB`, `512 B`.
pub(super) fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1024 * MIB => format!("{:.1} GiB", b as f64 / (1024 * MIB) as f64),
        b if b >= MIB => format!("{:.1} MiB", b as f64 / MIB as f64),
        b if b >= 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(48 * MIB), "48.0 MiB");
        assert_eq!(human(3 * 1024 * MIB / 2), "1.5 GiB");
    }

    #[test]
    fn suggests_the_largest_dir_and_files_outside_it() {
        let p = PathBuf::from;
        let tl = TooLarge {
            limit: 100 * MIB,
            raw_bytes: 0,
            largest_files: vec![
                (p("data/a.bin"), 9),
                (p("b.bin"), 8),
                (p("c/d.bin"), 7),
                (p("e"), 1),
            ],
            largest_dirs: vec![(p("data"), 9), (p("c"), 7)],
        };
        assert_eq!(tl.suggestions(), ["/data/", "/b.bin", "/c/d.bin"]);
    }
}
