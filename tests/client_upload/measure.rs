//! Measurements, run by hand: they print numbers and assert nothing about speed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::MIB;
use crate::common::repo::write_file;
use crate::common::{Runtime, TOKEN};
use catty::client::upload::{self, Kind};
use catty::exec::unpack;

/// Writes `files` source-like files (lines of identifiers, which deflate like code) totalling
/// about `bytes`, 100 to a directory.
fn source_tree(root: &Path, files: u64, bytes: u64) {
    const WORDS: &[&str] = &[
        "let", "fn", "self", "match", "Some", "None", "return", "impl", "struct", "pub", "use",
        "mut", "if", "else", "for", "in", "while", "loop", "async", "await", "Result", "Option",
        "String", "Vec", "u64", "usize", "path", "entry", "buf", "error", "value", "config",
        "session", "client", "server", "=", "(", ")", "{", "}", ";", "->", "::", "&", ".",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..files {
        let mut text = String::new();
        let size = bytes / files / 2 + next() % (bytes / files);
        while (text.len() as u64) < size {
            let word = WORDS[(next() % WORDS.len() as u64) as usize];
            let id = next() % 500;
            text.push_str(&format!("{word} name_{id}"));
            text.push(if next() % 8 == 0 { '\n' } else { ' ' });
        }
        write_file(
            root,
            format!("dir_{:03}/file_{i}.rs", i / 100),
            text.as_bytes(),
        );
    }
}

fn mb_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

/// `cargo test --release --test tests -- --ignored client_upload::measure --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement; prints numbers, asserts nothing about speed"]
async fn measure_scan_and_upload() {
    let dir = tempfile::tempdir().unwrap();
    source_tree(dir.path(), 40_000, 80 * MIB);
    let start = Instant::now();
    let ws = upload::scan(dir.path()).unwrap();
    let scan = start.elapsed();
    let raw = ws.total_bytes();
    let start = Instant::now();
    let zipped = upload::write_zip(&ws, dir.path(), tokio::io::sink(), |_| {})
        .await
        .unwrap();
    let zip = start.elapsed();
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = tokio::fs::File::create(file.path()).await.unwrap();
    upload::write_zip(&ws, dir.path(), out, |_| {})
        .await
        .unwrap();
    let (start, into) = (Instant::now(), tempfile::tempdir().unwrap());
    unpack::unpack(file.path(), into.path(), &unpack::Limits::DEFAULT)
        .await
        .unwrap();
    let unpack = start.elapsed();
    let runtime = Runtime::start(&["true"], &[]);
    let start = Instant::now();
    let url = runtime.http();
    let done = upload::upload(&ws, dir.path(), &url, TOKEN, &BTreeMap::new(), false).await;
    let upload = start.elapsed();
    assert_eq!(done.unwrap().files, 40_000);
    println!(
        "{} entries, {:.1} MB raw, {:.1} MB zipped (level {})",
        ws.entries.len(),
        raw as f64 / 1e6,
        zipped as f64 / 1e6,
        upload::DEFLATE_LEVEL
    );
    println!(
        "scan {scan:.2?}; zip to a sink {zip:.2?} ({:.0} MB/s raw)",
        mb_per_s(raw, zip)
    );
    println!("unpack alone (as the runtime does after receiving): {unpack:.2?}");
    println!(
        "upload to a local runtime (zip + send + unpack) {upload:.2?} ({:.0} MB/s raw); \
        scan + upload {:.2?}",
        mb_per_s(raw, upload),
        scan + upload
    );
}

/// Compression alone, per level, on a corpus of real source code when one is at hand (the
/// cargo registry's unpacked crates), otherwise on the generated tree.
#[tokio::test]
#[ignore = "a measurement; prints numbers, asserts nothing about speed"]
async fn measure_deflate_levels() {
    let generated = tempfile::tempdir().unwrap();
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let corpus = home
        .map(|h| h.join("registry/src"))
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| {
            source_tree(generated.path(), 40_000, 80 * MIB);
            generated.path().to_owned()
        });
    let ws = upload::scan(&corpus).unwrap();
    let files: Vec<_> = ws
        .entries
        .iter()
        .filter(|e| e.kind == Kind::File)
        .map(|e| std::fs::read(corpus.join(&e.path)).unwrap())
        .collect();
    let raw: u64 = files.iter().map(|f| f.len() as u64).sum();
    println!(
        "corpus {} ({} files, {:.1} MB)",
        corpus.display(),
        files.len(),
        raw as f64 / 1e6
    );
    for level in [1, 2, 3, 6, 9] {
        let start = Instant::now();
        let mut archive = Vec::new();
        let mut zip = async_zip::tokio::write::ZipFileWriter::with_tokio(&mut archive);
        for (i, data) in files.iter().enumerate() {
            let name = format!("{i}").into();
            let entry = async_zip::ZipEntryBuilder::new(name, async_zip::Compression::Deflate)
                .deflate_option(async_zip::DeflateOption::Other(level));
            zip.write_entry_whole(entry, data).await.unwrap();
        }
        zip.close().await.unwrap();
        let (time, zipped) = (start.elapsed(), archive.len());
        println!(
            "level {level}: {time:.2?} ({:.0} MB/s), {:.1} MB compressed ({:.1}%)",
            mb_per_s(raw, time),
            zipped as f64 / 1e6,
            100.0 * zipped as f64 / raw as f64
        );
    }
}
