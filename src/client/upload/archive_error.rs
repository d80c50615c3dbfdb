//! Why the workspace archive could not be written: a file that cannot be read, or an output
//! that failed.

use std::fmt;
use std::io;
use std::path::PathBuf;

use async_zip::error::ZipError;

/// Why the archive could not be written.
#[derive(Debug)]
pub enum ArchiveError {
    /// A file of the workspace could not be read.
    Read { path: PathBuf, err: io::Error },
    /// The output failed: the connection closed, or a size limit passed.
    Write(io::Error),
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveError::Read { path, err } => write!(f, "cannot read {}: {err}", path.display()),
            ArchiveError::Write(err) => write!(f, "writing the archive failed: {err}"),
        }
    }
}

impl std::error::Error for ArchiveError {}

impl From<ZipError> for ArchiveError {
    fn from(err: ZipError) -> Self {
        match err {
            ZipError::UpstreamReadError(err) => ArchiveError::Write(err),
            other => ArchiveError::Write(io::Error::other(other)),
        }
    }
}
