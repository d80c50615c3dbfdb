//! The durable session store, `<state_dir>/sessions.json`: one record per session, live or
//! not. Every write replaces the whole file atomically (temporary file, fsync, rename, fsync of
//! the directory), so a `kill -9` leaves the old file or the new one, never a mix.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::provider::Machine;
use crate::protocol::api::{Agent, SessionInfo, SessionState};

/// Bumped only for changes an older daemon cannot read.
const FORMAT_VERSION: u32 = 1;
/// Names of the temporary files a write renames over the store.
const TEMP_PREFIX: &str = ".sessions.json.";

/// One session as the daemon remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Record {
    pub id: String,
    pub label: String,
    pub state: SessionState,
    pub agent: Agent,
    pub provider: String,
    /// Where its machine runs, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    pub expires_at: u64,
    pub connect_token: String,
    /// Set once the provider created it; `None` while (or if) creation has not got that far.
    #[serde(default)]
    pub machine: Option<Machine>,
    /// The session ended but its machine's destruction is not confirmed yet: retried by the
    /// sweep until it is.
    #[serde(default)]
    pub destroy_pending: bool,
    /// When it stopped being live (unix seconds), for pruning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<u64>,
    /// Why it ended, in a few words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The id the creating request carried: a retry of it gets this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The command it runs instead of an agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// How its program exited, once the runtime said so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

impl Record {
    pub(super) fn info(&self) -> SessionInfo {
        let machine = self.machine.as_ref();
        SessionInfo {
            session_id: self.id.clone(),
            label: self.label.clone(),
            state: self.state,
            agent: self.agent,
            provider: self.provider.clone(),
            region: self.region.clone(),
            machine_id: machine.map(|m| m.id.clone()).unwrap_or_default(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            connect_url: machine.map(|m| m.connect_url.clone()).unwrap_or_default(),
            connect_token: self.connect_token.clone(),
            headers: machine.map(|m| m.headers.clone()).unwrap_or_default(),
            cmd: self.cmd.clone(),
            exit_code: self.exit_code,
            ended_at: self.ended_at,
        }
    }

    /// Ends the session (if it is live) with `state`; one whose program had exited ends
    /// `exited` (its machine lost, expired or stopped after that), which says more.
    pub(super) fn end(&mut self, state: SessionState, reason: &str, now: u64) {
        if self.state.is_live() {
            self.state = match self.exit_code {
                Some(_) => SessionState::Exited,
                None => state,
            };
            self.destroy_pending = self.machine.is_some();
            self.ended_at = Some(now);
            self.reason = Some(match self.state {
                SessionState::Exited => "its program exited".to_string(),
                _ => reason.to_string(),
            });
        }
    }
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    sessions: Vec<Record>,
}

/// The records and where they live on disk.
pub(super) struct Store {
    path: PathBuf,
    pub records: Vec<Record>,
}

impl Store {
    /// Reads the store. A file that does not parse is moved aside (never overwritten) and the
    /// daemon starts empty, loudly.
    pub(super) fn open(state_dir: &Path) -> anyhow::Result<Store> {
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
        Ok(Store { path, records })
    }

    /// By id, else by label (the live one first, then the newest).
    pub(super) fn find(&self, key: &str) -> Option<&Record> {
        self.records.iter().find(|r| r.id == key).or_else(|| {
            // `max_by_key` keeps the last of equals: records are oldest first.
            self.records
                .iter()
                .filter(|r| r.label == key)
                .max_by_key(|r| r.state.is_live())
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn encode(records: &[Record]) -> Vec<u8> {
        let file = File {
            version: FORMAT_VERSION,
            sessions: records.to_vec(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).expect("records serialize");
        bytes.push(b'\n');
        bytes
    }
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
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
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
    use super::*;

    fn record(id: &str, label: &str, state: SessionState) -> Record {
        Record {
            request_id: None,
            id: id.into(),
            label: label.into(),
            state,
            agent: Agent::Shell,
            provider: "local".into(),
            region: None,
            created_at: 1,
            expires_at: 2,
            connect_token: "t".into(),
            machine: None,
            destroy_pending: false,
            ended_at: None,
            reason: None,
            cmd: None,
            exit_code: None,
        }
    }

    #[test]
    fn round_trip_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        assert!(store.records.is_empty());
        store.records = vec![
            record("s-1", "brave-tiger-0001", SessionState::Stopped),
            record("s-2", "brave-tiger-0001", SessionState::Running),
            record("s-3", "calm-owl-0002", SessionState::Gone),
        ];
        write_atomic(store.path(), &Store::encode(&store.records)).unwrap();
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.records, store.records);
        assert_eq!(again.find("s-1").unwrap().id, "s-1");
        assert_eq!(again.find("brave-tiger-0001").unwrap().id, "s-2");
        assert_eq!(again.find("calm-owl-0002").unwrap().id, "s-3");
        assert!(again.find("nope").is_none());
    }

    #[test]
    fn a_corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sessions.json"), b"{\"version\":1,\"sess").unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.records.is_empty());
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

    #[test]
    fn ending_is_once() {
        let mut r = record("s-1", "a-b-0001", SessionState::Running);
        r.end(SessionState::Stopped, "stopped", 10);
        r.end(SessionState::Gone, "later", 11);
        assert_eq!((r.state, r.ended_at), (SessionState::Stopped, Some(10)));
    }

    #[test]
    fn a_machine_lost_after_its_program_exited_ends_exited() {
        let mut r = record("s-1", "a-b-0001", SessionState::Running);
        r.exit_code = Some(3);
        r.end(SessionState::Gone, "its machine is gone", 10);
        assert_eq!(r.state, SessionState::Exited);
        assert_eq!(r.info().state_text(), "exited (code 3)");
        assert!(!r.destroy_pending, "no machine, nothing to destroy");
    }
}
