//! The session store: the single truth of which sessions exist, written before any machine
//! exists or is destroyed. Two homes behind one interface: a JSON file in the state directory
//! for the local daemon (`file.rs`), and PostgreSQL for the hosted API (`api/db/sessions.rs`),
//! which many instances share. Every operation touches one record, or (a create) one owner's
//! records, so in PostgreSQL each is one short transaction.

mod file;

use serde::{Deserialize, Serialize};

use super::db::Db;
use super::labels;
use super::provider::Machine;
use crate::protocol::api::{Agent, SessionInfo, SessionState};
pub(super) use file::FileStore;

/// Where the records live.
pub(super) enum Store {
    File(FileStore),
    Db(Db),
}

/// What a create found.
pub(super) enum Made {
    /// The new record, its label chosen.
    New(Box<Record>),
    /// An earlier try of the same request made this session (its id).
    Earlier(String),
    /// The owner has as many live sessions as allowed.
    Full,
}

/// A session to record: `record` with its label still to be chosen.
pub(super) struct NewSession {
    pub record: Record,
    /// Live sessions the owner may have at most.
    pub max_live: usize,
}

impl Store {
    /// The sessions of `owner` (every session for `None`), oldest first.
    pub(super) async fn list(&self, owner: Option<&str>) -> anyhow::Result<Vec<Record>> {
        match self {
            Store::File(file) => Ok(file
                .records(|r| owner.is_none_or(|o| r.owner.as_deref() == Some(o)))
                .await),
            Store::Db(db) => db.sessions_of(owner).await,
        }
    }

    /// What the sweep looks at, of every owner: live sessions and pending destructions.
    pub(super) async fn sweepable(&self) -> anyhow::Result<Vec<Record>> {
        match self {
            Store::File(file) => Ok(file
                .records(|r| r.state.is_live() || r.destroy_pending)
                .await),
            Store::Db(db) => db.sweepable_sessions().await,
        }
    }

    /// `owner`'s session by id, else by label (the live one first, then the newest).
    pub(super) async fn find(
        &self,
        owner: Option<&str>,
        key: &str,
    ) -> anyhow::Result<Option<Record>> {
        let records = match self {
            Store::File(file) => file.records(|r| r.id == key || r.label == key).await,
            Store::Db(db) => db.sessions_by_key(key).await?,
        };
        let ours = records
            .into_iter()
            .filter(|r| owner.is_none_or(|o| r.owner.as_deref() == Some(o)));
        let mut found: Option<Record> = None;
        for r in ours {
            if r.id == key {
                return Ok(Some(r));
            }
            // Records come oldest first: a later one of the same liveness wins.
            if found
                .as_ref()
                .is_none_or(|f| r.state.is_live() >= f.state.is_live())
            {
                found = Some(r);
            }
        }
        Ok(found)
    }

    /// The session `id`, whoever owns it.
    pub(super) async fn get(&self, id: &str) -> anyhow::Result<Option<Record>> {
        match self {
            Store::File(file) => Ok(file.records(|r| r.id == id).await.pop()),
            Store::Db(db) => db.session(id).await,
        }
    }

    /// Records a new session: unless an earlier try of its request made one, or its owner is
    /// at the limit. Decided with the owner's records locked, so concurrent creates can pass
    /// neither the limit nor each other's request.
    pub(super) async fn create(&self, new: NewSession) -> anyhow::Result<Made> {
        match self {
            Store::File(file) => {
                file.modify(|records| {
                    let made = decide(records, new);
                    if let Made::New(record) = &made {
                        records.push(Record::clone(record));
                    }
                    made
                })
                .await
            }
            Store::Db(db) => db.create_session(new).await,
        }
    }

    /// Changes the record `id` with `change` and stores it if it changed; `None` when there
    /// is no such record. On a failed write the record stays as it was.
    pub(super) async fn update<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut Record) -> T,
    ) -> anyhow::Result<Option<T>> {
        match self {
            Store::File(file) => {
                file.modify(|records| records.iter_mut().find(|r| r.id == id).map(change))
                    .await
            }
            Store::Db(db) => db.update_session(id, change).await,
        }
    }

    /// Forgets the record `id`; false when there was none.
    pub(super) async fn remove(&self, id: &str) -> anyhow::Result<bool> {
        match self {
            Store::File(file) => {
                file.modify(|records| {
                    let before = records.len();
                    records.retain(|r| r.id != id);
                    records.len() < before
                })
                .await
            }
            Store::Db(db) => db.remove_session(id).await,
        }
    }

    /// Forgets the sessions that ended before `ended_before` (unix seconds) and whose machine
    /// is destroyed; their ids.
    pub(super) async fn prune(&self, ended_before: u64) -> anyhow::Result<Vec<String>> {
        match self {
            Store::File(file) => {
                file.modify(|records| {
                    let old = |r: &Record| {
                        !r.state.is_live()
                            && !r.destroy_pending
                            && r.ended_at.is_some_and(|t| t < ended_before)
                    };
                    let gone = records
                        .iter()
                        .filter(|r| old(r))
                        .map(|r| r.id.clone())
                        .collect();
                    records.retain(|r| !old(r));
                    gone
                })
                .await
            }
            Store::Db(db) => db.prune_sessions(ended_before).await,
        }
    }

    /// When the sweep is next due (unix seconds): the soonest deadline (plus `slack`) of a
    /// live session, or end of keep (`keep` after its end) of an ended one.
    pub(super) async fn next_due(&self, slack: u64, keep: u64) -> anyhow::Result<Option<u64>> {
        match self {
            Store::File(file) => Ok(file
                .records(|_| true)
                .await
                .iter()
                .filter_map(|r| match (r.state.is_live(), r.ended_at) {
                    (true, _) => Some(r.expires_at + slack),
                    (false, Some(ended)) => Some(ended + keep + 1),
                    (false, None) => None,
                })
                .min()),
            Store::Db(db) => db.next_due(slack, keep).await,
        }
    }

    /// The token that will open session `id`'s terminal: random, kept in the file; derived
    /// from the id in the database, which keeps none.
    pub(super) fn connect_token(&self, id: &str) -> String {
        match self {
            Store::File(_) => crate::random::hex(32),
            Store::Db(db) => db.connect_token(id),
        }
    }
}

/// A create's decision over the owner's records.
pub(super) fn decide(records: &[Record], new: NewSession) -> Made {
    let NewSession {
        mut record,
        max_live,
    } = new;
    // Looked up with the records locked, so two tries of one request make one. One whose
    // machine was never made (its daemon died first) is no answer: the request makes its
    // session now.
    let answers = |r: &&Record| {
        record.request_id.is_some()
            && r.request_id == record.request_id
            && (r.state.is_live() || r.machine.is_some())
    };
    if let Some(earlier) = records.iter().find(answers) {
        return Made::Earlier(earlier.id.clone());
    }
    if records.iter().filter(|r| r.state.is_live()).count() >= max_live {
        return Made::Full;
    }
    record.label = labels::generate(|l| records.iter().any(|r| r.label == l));
    Made::New(Box::new(record))
}

/// One session as the daemon remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(in crate::api) struct Record {
    pub id: String,
    /// The user it belongs to (the hosted API's); `None` for the local daemon's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
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
    /// The PostgreSQL store derives it instead of keeping it (`api/db/sessions.rs`).
    #[serde(default)]
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
    /// The hosted API instance creating it (`db/instances.rs`), while it is `starting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<i32>,
    /// The command it runs instead of an agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// How its program exited, once the runtime said so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

impl Record {
    pub(in crate::api) fn info(&self) -> SessionInfo {
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
    pub(in crate::api) fn end(&mut self, state: SessionState, reason: &str, now: u64) {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::api) fn record(id: &str, label: &str, state: SessionState) -> Record {
        Record {
            request_id: None,
            id: id.into(),
            owner: None,
            creator: None,
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
