//! Creating one extracted file: never over anything already there, never through a symlink,
//! then its data, mode and modification time.

use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::SystemTime;

/// Writes `chunk` to `out`, or to `path` created anew, and with `finish` sets its mode and time.
pub(super) fn write_chunk(
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

/// Creates a file that must not exist yet; its directory must.
fn create_file(path: &Path) -> io::Result<std::fs::File> {
    // create_new refuses anything already there; O_NOFOLLOW is belt and braces.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

pub(super) fn set_meta(
    file: &std::fs::File,
    perm: u32,
    mtime: Option<SystemTime>,
) -> io::Result<()> {
    file.set_permissions(std::fs::Permissions::from_mode(perm))?;
    match mtime {
        Some(mtime) => file.set_modified(mtime),
        None => Ok(()),
    }
}
