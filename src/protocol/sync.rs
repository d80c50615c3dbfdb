//! The sync-back channel (SPEC section 9): what the runtime says about its workspace and how
//! a client reads it. Types and limits only; the prose is in `protocol/mod.rs`.

use serde::{Deserialize, Serialize};

/// The sync-back endpoints, relative to the runtime's base URL.
pub const SYNC_MANIFEST_PATH: &str = "/sync/manifest";
pub const SYNC_FILE_PATH: &str = "/sync/file";
pub const SYNC_BUNDLE_PATH: &str = "/sync/bundle";
/// `POST /sync/pulled?generation=G`: the client applied the manifest of generation `G`.
pub const SYNC_PULLED_PATH: &str = "/sync/pulled";

/// The response header of `GET /sync/file` with the SHA-256 (lowercase hex) of the bytes sent.
pub const SHA256_HEADER: &str = "x-catty-sha256";

/// The longest a `GET /sync/manifest?after=G` waits for a change before it answers with the
/// same generation: under the proxies' idle timeouts, like the stream's pings.
pub const MANIFEST_WAIT_SEC: u64 = 25;

/// The largest file the sync channel carries; a bigger one is listed but never fetched (the
/// client reports it). Same budget as a whole upload.
pub const SYNC_FILE_MAX_BYTES: u64 = 100 * 1024 * 1024;

/// The most entries a manifest may list; a client refuses a longer one.
pub const MANIFEST_MAX_ENTRIES: usize = 200_000;

/// The largest git bundle `GET /sync/bundle` sends; a client stops reading past it.
pub const BUNDLE_MAX_BYTES: u64 = 200 * 1024 * 1024;

/// `GET /sync/manifest`: every path of the workspace that git would track in the session's
/// tree (its ignore files and the defaults of [`super::workspace`] applied), at `generation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Bumped each time the runtime sees the workspace change. Only ever grows.
    pub generation: u64,
    /// Sorted by path; directories are implied by their files (an empty one is not listed).
    pub entries: Vec<ManifestEntry>,
    /// The workspace repository's `HEAD` commit, when it is a git repository with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
}

/// One file or symlink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Relative, `/`-separated, UTF-8, no `.` or `..` component. A name that is not UTF-8 is
    /// left out of the manifest.
    pub path: String,
    #[serde(flatten)]
    pub kind: EntryKind,
}

/// What a path holds, with its content's SHA-256 in lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EntryKind {
    File {
        /// Whether any execute bit is set (files are written 0755 or 0644, nothing else).
        executable: bool,
        size: u64,
        sha256: String,
    },
    Symlink {
        /// The link's target as stored, not followed.
        target: String,
    },
}

/// The query of `GET /sync/file` for `path`: `path=` and the path percent-encoded.
pub fn file_query(path: &str) -> String {
    format!("path={}", super::percent::encode(path))
}

/// The path a `GET /sync/file` query names; `None` unless it is exactly `path=…`, well
/// encoded, UTF-8.
pub fn parse_file_query(query: &str) -> Option<String> {
    super::percent::decode(query.strip_prefix("path=")?)
}

/// `GET /sync/pulled`: whether the workspace holds work no client acknowledged (changed
/// since the program started, past every generation acknowledged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pulled {
    pub unpulled: bool,
}

/// The query of `POST /sync/pulled`.
pub fn pulled_query(generation: u64) -> String {
    format!("generation={generation}")
}

/// The generation a `POST /sync/pulled` query names; `None` unless it is exactly
/// `generation=G`.
pub fn parse_pulled_query(query: &str) -> Option<u64> {
    let digits = query.strip_prefix("generation=")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_queries_round_trip() {
        for path in ["src/main.rs", "a b/ü%&=+.txt", "x"] {
            assert_eq!(parse_file_query(&file_query(path)).as_deref(), Some(path));
        }
        assert_eq!(file_query("a b/c"), "path=a%20b%2Fc");
        for bad in [
            "",
            "file=x",
            "path=%zz",
            "path=%4",
            "path=a&b=c",
            "path=%FF",
        ] {
            assert_eq!(parse_file_query(bad), None, "{bad}");
        }
    }

    #[test]
    fn pulled_queries_round_trip() {
        assert_eq!(parse_pulled_query(&pulled_query(7)), Some(7));
        for bad in [
            "",
            "generation=",
            "generation=-1",
            "generation=1&x=2",
            "after=3",
        ] {
            assert_eq!(parse_pulled_query(bad), None, "{bad}");
        }
    }

    #[test]
    fn manifest_golden() {
        let manifest = Manifest {
            generation: 3,
            entries: vec![
                ManifestEntry {
                    path: "bin/run".into(),
                    kind: EntryKind::File {
                        executable: true,
                        size: 2,
                        sha256: "ab".into(),
                    },
                },
                ManifestEntry {
                    path: "latest".into(),
                    kind: EntryKind::Symlink {
                        target: "bin/run".into(),
                    },
                },
            ],
            head: None,
        };
        let wire = r#"{"generation":3,"entries":[{"path":"bin/run","kind":"file","executable":true,"size":2,"sha256":"ab"},{"path":"latest","kind":"symlink","target":"bin/run"}]}"#;
        assert_eq!(serde_json::to_string(&manifest).unwrap(), wire);
        assert_eq!(serde_json::from_str::<Manifest>(wire).unwrap(), manifest);
    }
}
