//! The generated inputs, the same on every run: a 256 MiB text file for bulk output (written
//! here by the stream bench; the peers bench has each contender's shell make it where that
//! shell can read it) and a 40,000-file / 80 MiB workspace for uploads. `stream.rs` and
//! `session.rs` include this file too (`#[path]`), each using part of it.

use std::io::Write;
use std::path::Path;

pub const BULK_BYTES: usize = 256 * 1024 * 1024;
/// The bulk file is this line over and over (a newline after each), cut at `BULK_BYTES`;
/// `yes LINE | head -c BULK_BYTES` makes the same file.
pub const BULK_LINE: &str =
    "the quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTUVW";
pub const FILES: usize = 40_000;
pub const WORKSPACE_BYTES: usize = 80 * 1024 * 1024;

/// 256 MiB of text lines, like a build log.
pub fn write_bulk_file(path: &Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let line = format!("{BULK_LINE}\n");
    let line = line.as_bytes();
    for _ in 0..BULK_BYTES / line.len() {
        out.write_all(line).unwrap();
    }
    out.write_all(&line[..BULK_BYTES % line.len()]).unwrap();
    out.flush().unwrap();
}

/// 40,000 files of mixed text (compressible like source code) in 400 directories; returns
/// their total size in bytes.
pub fn write_workspace(root: &Path) -> usize {
    let per_file = WORKSPACE_BYTES / FILES;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..FILES {
        let dir = root.join(format!("src/mod{:03}", i % 400));
        if i < 400 {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let mut content = Vec::with_capacity(per_file);
        while content.len() < per_file {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            writeln!(
                content,
                "let value_{} = compute({}, {});",
                seed % 1000,
                seed % 97,
                i
            )
            .unwrap();
        }
        content.truncate(per_file);
        std::fs::write(dir.join(format!("file{i}.rs")), content).unwrap();
    }
    per_file * FILES
}
