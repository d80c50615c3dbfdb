//! The archives the upload tests send: hostile_zips.py's, good.zip with Python's zipfile as
//! the oracle of what it holds, and a large one that takes a while to extract.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

pub const MIB: u64 = 1024 * 1024;
pub const S_IFMT: u32 = 0o170_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFLNK: u32 = 0o120_000;

/// The archives of hostile_zips.py, and good.zip as Python's zipfile reads it.
pub struct Zips {
    pub dir: PathBuf,
    pub cases: Vec<Case>,
    pub good: Vec<Entry>,
}

#[derive(Deserialize)]
pub struct Case {
    pub file: String,
    pub bad_entry: Option<String>,
    /// For an archive refused as a whole: what the refusal says.
    #[serde(default)]
    pub message: Option<String>,
}

/// One entry as stored in the archive; `mtime` is its DOS time read as UTC.
#[derive(Deserialize)]
pub struct Entry {
    pub name: String,
    pub mode: u32,
    pub mtime: i64,
    pub data: Vec<u8>,
}

/// Python's zipfile is the oracle for what good.zip holds, independent of the runtime's reader.
const DESCRIBE_ZIP: &str = "import calendar, json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
print(json.dumps([{'name': i.filename, 'mode': i.external_attr >> 16,
    'mtime': calendar.timegm(i.date_time + (0, 0, 0)), 'data': list(z.read(i))}
    for i in z.infolist()]))";

/// An archive that takes a while to extract: one file of zeros, `BIG_FILE_MIB` inflated.
pub const BIG_ZIP: &str = "big.zip";
pub const BIG_FILE: &str = "big.bin";
pub const BIG_FILE_MIB: u64 = 128;
const WRITE_BIG_ZIP: &str = "import sys, zipfile
i = zipfile.ZipInfo('big.bin', date_time=(2024, 5, 17, 12, 30, 0))
i.create_system, i.external_attr, i.compress_type = 3, 0o100644 << 16, zipfile.ZIP_DEFLATED
with zipfile.ZipFile(sys.argv[1], 'w') as z, z.open(i, 'w') as out:
    for _ in range(int(sys.argv[2])):
        out.write(bytes(1 << 20))";

const HOSTILE_ZIPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/hostile_zips.py");

pub fn zips() -> &'static Zips {
    static ZIPS: OnceLock<Zips> = OnceLock::new();
    ZIPS.get_or_init(|| {
        let dir = generate_zips();
        let cases = std::fs::read(dir.join("cases.json")).unwrap();
        let good = dir.join("good.zip");
        let good = python(&["-c".as_ref(), DESCRIBE_ZIP.as_ref(), good.as_os_str()]);
        Zips {
            cases: serde_json::from_slice(&cases).unwrap(),
            good: serde_json::from_slice(&good).unwrap(),
            dir,
        }
    })
}

/// Writes the archives under target/tmp once per version of their generators, into a
/// directory that appears complete or not at all: other `cargo test` runs may share it.
fn generate_zips() -> PathBuf {
    let mut version = DefaultHasher::new();
    (
        std::fs::read(HOSTILE_ZIPS).unwrap(),
        WRITE_BIG_ZIP,
        BIG_FILE_MIB,
    )
        .hash(&mut version);
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = parent.join(format!("exec_http_zips-{:016x}", version.finish()));
    if !dir.exists() {
        let fresh = tempfile::tempdir_in(parent).unwrap();
        python(&[HOSTILE_ZIPS.as_ref(), fresh.path().as_os_str()]);
        let big = fresh.path().join(BIG_ZIP);
        let mib = BIG_FILE_MIB.to_string();
        python(&[
            "-c".as_ref(),
            WRITE_BIG_ZIP.as_ref(),
            big.as_os_str(),
            mib.as_ref(),
        ]);
        // Fails if a concurrent run got there first; its archives are the same.
        let _ = std::fs::rename(fresh.path(), &dir);
    }
    dir
}

fn python(args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let out = std::process::Command::new("python3")
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python3 {args:?}: {err}");
    out.stdout
}
