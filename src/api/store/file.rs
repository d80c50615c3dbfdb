//! The durable session store, `<state_dir>/sessions.json`: one record per session, live or
//! not. Every write replaces the whole file atomically (temporary file, fsync, rename, fsync of
//! the directory), so a `kill -9` leaves the old file or the new one, never a mix.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::Record;

/// Bumped only for changes an older daemon cannot read.
const FORMAT_VERSION: u32 = 1;
/// Names of the temporary files a write renames over the store.
const TEMP_PREFIX: &str = ".sessions.json.";

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    sessions: Vec<Record>,
}

/// The records, and the file they live in.
pub(in crate::api) struct FileStore {
    path: PathBuf,
    records: tokio::sync::Mutex<Vec<Record>>,
}

impl FileStore {
    /// Reads the store. A file that does not parse is moved aside (never overwritten) and the
    /// daemon starts empty, loudly.
    pub(in crate::api) fn open(state_dir: &Path) -> anyhow::Result<FileStore> {
        remove_stale_temporaries(state_dir);
        let path = state_dir.join("sessions.json");
        let records = match std::fs::read(&path) {
            Ok(bytes) => match parse(&bytes) {
                Ok(records) => records,
                Err(e) => {
                    let aside = state_dir.join(format!(
                        "sessions.json.corrupt-{}",
                        crate::clock::unix_now()
                    ));
                    std::fs::rename(&path, &aside)
                        .with_context(|| format!("cannot move {} aside", path.display()))?;
                    tracing::error!(
                        "the session store {} does not parse ({e}); moved it to {} and starting with no sessions",
                        path.display(),
                        aside.display()
                    );
                    Vec::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(FileStore {
            path,
            records: tokio::sync::Mutex::new(records),
        })
    }

    /// Copies of the records `which` selects, oldest first.
    pub(super) async fn records(&self, which: impl Fn(&Record) -> bool) -> Vec<Record> {
        let records = self.records.lock().await;
        records.iter().filter(|r| which(r)).cloned().collect()
    }

    /// Applies `change` to the records and writes them to disk; on a failed write the
    /// records stay as they were. The change lands in memory first, so a caller that is
    /// cancelled halfway leaves memory ahead of the disk, never behind.
    pub(super) async fn modify<T>(
        &self,
        change: impl FnOnce(&mut Vec<Record>) -> T,
    ) -> anyhow::Result<T> {
        let mut records = self.records.lock().await;
        let before = records.clone();
        let out = change(&mut records);
        if *records == before {
            return Ok(out);
        }
        let (path, bytes) = (self.path.clone(), encode(&records));
        let written = tokio::task::spawn_blocking(move || write_atomic(&path, &bytes)).await;
        match written.map_err(anyhow::Error::from).and_then(|w| w) {
            Ok(()) => Ok(out),
            Err(e) => {
                *records = before;
                Err(e)
            }
        }
    }
}

fn encode(records: &[Record]) -> Vec<u8> {
    let file = File {
        version: FORMAT_VERSION,
        sessions: records.to_vec(),
    };
    let mut bytes = serde_json::to_vec_pretty(&file).expect("records serialize");
    bytes.push(b'\n');
    bytes
}

/// Temporary files of writes a crash interrupted (the daemon holds the state directory's
/// lock, so no write is in progress).
fn remove_stale_temporaries(state_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn parse(bytes: &[u8]) -> anyhow::Result<Vec<Record>> {
    let file: File = serde_json::from_slice(bytes)?;
    if file.version != FORMAT_VERSION {
        anyhow::bail!("unknown format version {}", file.version);
    }
    Ok(file.sessions)
}

/// Replaces `path` with `bytes`: temporary file in the same directory, fsync, rename, fsync
/// of the directory (so the rename itself survives a power cut).
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("the store has no directory")?;
    let write = || -> std::io::Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::super::tests::record;
    use super::super::{SessionState, Store};
    use super::*;

    #[tokio::test]
    async fn round_trip_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let file = FileStore::open(dir.path()).unwrap();
        assert!(file.records(|_| true).await.is_empty());
        let written = vec![
            record("s-1", "brave-tiger-0001", SessionState::Stopped),
            record("s-2", "brave-tiger-0001", SessionState::Running),
            record("s-3", "calm-owl-0002", SessionState::Gone),
        ];
        file.modify(|records| *records = written.clone())
            .await
            .unwrap();
        let again = Store::File(FileStore::open(dir.path()).unwrap());
        assert_eq!(again.list(None).await.unwrap(), written);
        let found = async |key| again.find(None, key).await.unwrap().map(|r| r.id);
        assert_eq!(found("s-1").await.as_deref(), Some("s-1"));
        assert_eq!(found("brave-tiger-0001").await.as_deref(), Some("s-2"));
        assert_eq!(found("calm-owl-0002").await.as_deref(), Some("s-3"));
        assert_eq!(found("nope").await, None);
    }

    #[tokio::test]
    async fn a_corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sessions.json"), b"{\"version\":1,\"sess").unwrap();
        let file = FileStore::open(dir.path()).unwrap();
        assert!(file.records(|_| true).await.is_empty());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("sessions.json.corrupt-")),
            "{names:?}"
        );
        assert!(!names.contains(&"sessions.json".to_string()));
    }
}
