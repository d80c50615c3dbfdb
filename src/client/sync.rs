//! Sync-back (SPEC section 9): the session's files and commits come back into the directory
//! it was started from. `base` remembers what the local files are known to equal, `check`
//! refuses what a hostile runtime may send, `decision` judges a path, `planner` acts on it,
//! `apply` runs a round, `fetch` brings files, `disk` writes without ever following a symlink,
//! `remote` talks to the runtime, `branch` fetches commits, `live` follows changes while
//! attached, `diff` shows them.

mod apply;
mod base;
mod branch;
mod check;
mod decision;
mod diff;
mod disk;
mod fetch;
mod live;
mod planner;
pub(super) mod remote;

pub use apply::Say;
pub use base::Base;
pub use branch::Branch;
pub use diff::diff;
pub use live::{Expiry, Live};

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::client::upload::Workspace;
use crate::protocol::api::{SessionCreated, SessionInfo};
use crate::protocol::sync::{
    MANIFEST_WAIT_SEC, Manifest, Pulled, SYNC_MANIFEST_PATH, SYNC_PULLED_PATH, pulled_query,
};
use apply::SyncSession;
use remote::{Remote, RemoteError};

/// The largest manifest read: 200,000 entries of some 300 bytes each.
const MANIFEST_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Rounds `catty pull` runs when files move under it, before it gives up and says so.
const PULL_ROUNDS: usize = 3;

/// How to reach a session's runtime, and what the session is called. Not `Debug`: it holds
/// the session's token.
#[derive(Clone)]
pub struct Link {
    pub session_id: String,
    pub label: String,
    /// The runtime's base URL.
    pub connect_url: String,
    pub token: String,
    pub headers: BTreeMap<String, String>,
    /// When the session expires at its TTL (unix seconds), when known: live sync pulls once
    /// more shortly before.
    pub expires_at: Option<u64>,
}

impl From<&SessionCreated> for Link {
    fn from(created: &SessionCreated) -> Link {
        Link {
            session_id: created.session_id.clone(),
            label: created.label.clone(),
            connect_url: created.connect_url.clone(),
            token: created.connect_token.clone(),
            headers: created.headers.clone(),
            expires_at: None,
        }
    }
}

impl From<SessionInfo> for Link {
    fn from(info: SessionInfo) -> Link {
        Link {
            session_id: info.session_id,
            label: info.label,
            connect_url: info.connect_url,
            token: info.connect_token,
            headers: info.headers,
            expires_at: Some(info.expires_at),
        }
    }
}

/// What rounds did, for the summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub changed: usize,
    pub added: usize,
    pub deleted: usize,
    pub conflicts: usize,
}

impl Counts {
    pub(super) fn add(&mut self, other: Counts) {
        self.changed += other.changed;
        self.added += other.added;
        self.deleted += other.deleted;
        self.conflicts += other.conflicts;
    }

    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }
}

/// What a pull brought back.
#[derive(Debug, Clone)]
pub struct Summary {
    pub label: String,
    pub dir: PathBuf,
    pub counts: Counts,
    pub branch: Branch,
    /// A file that kept moving while it was pulled, and why: run `catty pull` again.
    pub unsettled: Option<String>,
}

impl Summary {
    /// Whether everything came back (conflicts included: they are reported, not lost).
    pub fn complete(&self) -> bool {
        self.unsettled.is_none() && !matches!(self.branch, Branch::Failed(_))
    }

    /// Whether there is anything to tell: something came back, or did not.
    pub fn is_news(&self) -> bool {
        !self.counts.is_empty() || !self.complete() || matches!(self.branch, Branch::Updated { .. })
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Counts {
            changed,
            added,
            deleted,
            conflicts,
        } = self.counts;
        write!(
            f,
            "pulled {} into {}: {changed} changed, {added} added, {deleted} deleted, {conflicts} conflicts; {}",
            self.label,
            self.dir.display(),
            self.branch
        )?;
        if let Some(why) = &self.unsettled {
            write!(
                f,
                "\nsome files were still moving ({why}); run: catty pull {}",
                self.label
            )?;
        }
        Ok(())
    }
}

/// Brings back what the session has and the directory lacks: files (rounds until nothing
/// moves, at most [`PULL_ROUNDS`]) and commits. Applies into the directory of the session's
/// base, or `here` when this machine has none. Lines (conflicts, refusals) go to `say`.
pub async fn pull(link: &Link, state_dir: &Path, here: &Path, say: Say) -> anyhow::Result<Summary> {
    let sync = Arc::new(SyncSession::new(link, state_dir, here.to_owned(), say)?);
    pull_with(&sync).await
}

/// The first round after the upload, taken before the program starts: the first manifest
/// confirms the base (an uploaded path it does not list is taken for one the session's git
/// ignores), so it must list the workspace as uploaded, before the program can delete
/// anything. Brings nothing back (nothing has changed yet) and fetches no branch.
pub async fn confirm(link: &Link, state_dir: &Path, here: &Path, say: Say) -> anyhow::Result<()> {
    let sync = Arc::new(SyncSession::new(link, state_dir, here.to_owned(), say)?);
    let manifest = manifest(&sync.remote, None).await?;
    apply::round(&sync, manifest).await?;
    Ok(())
}

async fn pull_with(sync: &Arc<SyncSession>) -> anyhow::Result<Summary> {
    let mut counts = Counts::default();
    let mut unsettled = None;
    let mut last = None;
    let mut refused = false;
    for _ in 0..PULL_ROUNDS {
        let manifest = manifest(&sync.remote, None).await?;
        let (generation, head) = (manifest.generation, manifest.head.clone());
        let round = apply::round(sync, manifest).await?;
        counts.add(round.counts);
        unsettled = round.retry;
        refused = round.refused;
        last = Some((round.base, head, generation));
        if unsettled.is_none() {
            break;
        }
    }
    let (base, head, generation) = last.expect("at least one round");
    let branch = branch::fetch(sync, &base, head.as_deref()).await;
    if unsettled.is_none() && !refused && !matches!(branch, Branch::Failed(_)) {
        // The files are here whatever the runtime hears: a lost ack only keeps it up longer.
        if let Err(e) = acknowledge(&sync.remote, generation).await {
            sync.say(&format!("telling the session what was pulled: {e}"));
        }
    }
    Ok(Summary {
        label: sync.label.clone(),
        dir: base.dir,
        counts,
        branch,
        unsettled,
    })
}

/// Whether the session's runtime keeps work nobody pulled (`GET /sync/pulled`); `None`
/// when it cannot say (unreachable, or a runtime from before retention).
pub async fn unpulled(link: &Link) -> Option<bool> {
    let remote = Remote::new(&link.connect_url, &link.token, &link.headers).ok()?;
    let mut reply = remote
        .get(SYNC_PULLED_PATH, Duration::from_secs(10))
        .await
        .ok()?;
    let body = reply.collect(64 * 1024).await.ok()?;
    let pulled: Pulled = serde_json::from_slice(&body).ok()?;
    Some(pulled.unpulled)
}

/// `POST /sync/pulled`: the directory has what generation `generation` holds (conflicts
/// included, kept aside), so the runtime need not keep it. A runtime from before the
/// endpoint (`404`) keeps nothing anyway.
async fn acknowledge(remote: &Remote, generation: u64) -> Result<(), RemoteError> {
    let endpoint = format!("{SYNC_PULLED_PATH}?{}", pulled_query(generation));
    match remote.post(&endpoint, Duration::from_secs(30)).await {
        Err(RemoteError::Status(status, _)) if status == hyper::StatusCode::NOT_FOUND => Ok(()),
        done => done,
    }
}

/// `GET /sync/manifest` (with `after`, a long poll), read with a limit and parsed off the
/// async thread.
async fn manifest(remote: &Remote, after: Option<u64>) -> Result<Manifest, RemoteError> {
    let (endpoint, wait) = match after {
        Some(g) => (
            format!("{SYNC_MANIFEST_PATH}?after={g}"),
            Duration::from_secs(MANIFEST_WAIT_SEC + 30),
        ),
        None => (SYNC_MANIFEST_PATH.to_string(), Duration::from_secs(120)),
    };
    let body = remote
        .get(&endpoint, wait)
        .await?
        .collect(MANIFEST_MAX_BYTES)
        .await?;
    let parsed = tokio::task::spawn_blocking(move || serde_json::from_slice::<Manifest>(&body));
    match parsed.await {
        Ok(Ok(manifest)) => Ok(manifest),
        Ok(Err(e)) => Err(RemoteError::Broken(format!(
            "a manifest catty cannot read: {e}"
        ))),
        Err(e) => Err(RemoteError::Broken(e.to_string())),
    }
}

/// What `catty new` uploads, hashed on blocking threads: started before the session is
/// created and saved before the upload reads the files. (A file saved between the hash and
/// the upload then at worst shows as a conflict; hashed after, it could be overwritten.)
pub struct Remembering {
    dir: PathBuf,
    hashing: Option<tokio::task::JoinHandle<anyhow::Result<Base>>>,
}

impl Remembering {
    /// Starts hashing `ws` (nothing to hash without an upload).
    pub fn start(dir: &Path, ws: Option<&Workspace>) -> Remembering {
        let hashing = ws.map(|ws| {
            let (dir, ws) = (dir.to_owned(), ws.clone());
            tokio::task::spawn_blocking(move || Base::from_workspace(&dir, &ws))
        });
        Remembering {
            dir: dir.to_owned(),
            hashing,
        }
    }

    /// Records the base of the session `session_id` called `label`, followed live or not.
    pub async fn save(
        self,
        state_dir: &Path,
        session_id: &str,
        label: &str,
        live: bool,
    ) -> anyhow::Result<()> {
        let mut base = match self.hashing {
            Some(hashing) => hashing.await??,
            None => Base::empty(label, &self.dir),
        };
        base.label = label.to_string();
        base.live = live;
        let (state_dir, session_id) = (state_dir.to_owned(), session_id.to_string());
        tokio::task::spawn_blocking(move || base.save(&state_dir, &session_id)).await?
    }
}
