//! What can go wrong while unpacking, and whose fault it is: the upload's (a bad entry or not a
//! zip at all) or ours (I/O on the workspace or the spooled file).

use std::fmt;
use std::io;
use std::path::Path;

use async_zip::error::ZipError;

/// Error naming the first bad entry, e.g. `entry "../evil": path leaves the workspace`.
#[derive(Debug)]
pub enum UnpackError {
    /// An entry breaks a rule; `name` is as stored in the archive (lossy UTF-8).
    BadEntry { name: String, reason: String },
    /// Not a readable zip archive.
    Archive(String),
    /// More entries than the limits allow, as the central directory declares them.
    TooManyEntries { max: u64 },
    /// The server's side failed: the workspace or the spooled file.
    Io(io::Error),
}

impl UnpackError {
    /// True when the upload is at fault (HTTP 400), false for our own I/O failures (500).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, UnpackError::Io(_))
    }

    pub(super) fn bad(name: &[u8], reason: impl Into<String>) -> Self {
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
            UnpackError::TooManyEntries { max } => {
                write!(f, "the archive holds more than the {max} entries allowed")
            }
            UnpackError::Io(err) => write!(f, "{err}"),
        }
    }
}

// No source(): Display already includes the I/O error, and a cause chain would repeat it.
impl std::error::Error for UnpackError {}

pub(super) fn io_at(path: &Path) -> impl Fn(io::Error) -> UnpackError + '_ {
    move |err| {
        UnpackError::Io(io::Error::new(
            err.kind(),
            format!("{}: {err}", path.display()),
        ))
    }
}

/// Whether reading the spooled archive failed in the system (a disk error: ours), not in
/// its contents (a truncated file, a deflate stream that does not decode: the upload's).
pub(super) fn is_system_error(err: &io::Error) -> bool {
    err.raw_os_error().is_some()
}

/// A parser's message as one plain line: its first line, without escape sequences (the zip
/// parser appends a multi-line, coloured backtrace).
pub(super) fn one_line(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    let plain: String = first.chars().filter(|c| !c.is_control()).collect();
    plain.trim().trim_end_matches(':').to_string()
}

pub(super) fn read_error(name: &[u8], err: io::Error) -> UnpackError {
    if !is_system_error(&err) {
        UnpackError::bad(name, format!("corrupt data: {err}"))
    } else {
        UnpackError::Io(err)
    }
}

pub(super) fn entry_error(name: &[u8], err: ZipError) -> UnpackError {
    match err {
        ZipError::UpstreamReadError(err) => read_error(name, err),
        err => UnpackError::bad(
            name,
            format!("unreadable entry: {}", one_line(&err.to_string())),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
