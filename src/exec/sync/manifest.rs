//! Manifests and their generation. One is computed at a time, off the async thread, and
//! shared by every request until the watcher counts a change; the generation grows only when
//! what the manifest says differs, so a waiting client wakes for real changes only.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ring::digest::{Context, SHA256};
use tokio::sync::OnceCell;

use super::hashes::{self, Files};
use super::watch::Watcher;
use super::{SyncError, listing, repo};
use crate::locks::lock;
use crate::protocol::sync::{EntryKind, MANIFEST_WAIT_SEC, Manifest, ManifestEntry};

/// The least pause between two computations, as a multiple of the last one's duration: a
/// workspace that changes without end costs a waiting client at most a fifth of a core.
const PACE_FACTOR: u32 = 4;

/// A computed manifest.
pub(super) struct Snapshot {
    /// The watcher's count when its walk began: it shows every change counted until then.
    changes: u64,
    pub(super) generation: u64,
    /// Of the entries and head: what decides whether the generation grows.
    digest: [u8; 32],
    /// The answer's body, serialized once off the async thread.
    pub(super) json: Bytes,
    pub(super) files: Files,
}

pub(super) struct Manifests {
    root: PathBuf,
    /// Started by the first request: a session never synced watches nothing.
    watcher: OnceCell<Watcher>,
    last: Mutex<Option<Arc<Snapshot>>>,
    /// Held by the blocking thread that computes: a computation whose request went away runs
    /// on, and the next one waits for it rather than deciding a generation beside it.
    computing: Mutex<()>,
    /// Requests that need a computation queue here, so one blocking task runs at a time.
    queue: tokio::sync::Mutex<()>,
    /// When the last computation ended and how long it took.
    pace: Mutex<Option<(Instant, Duration)>>,
    /// Paths whose hash turned out stale: read again next time, whatever their stamp.
    distrusted: Mutex<HashSet<String>>,
}

impl Manifests {
    pub(super) fn new(root: PathBuf) -> Arc<Manifests> {
        Arc::new(Manifests {
            root,
            watcher: OnceCell::new(),
            last: Mutex::new(None),
            computing: Mutex::new(()),
            queue: tokio::sync::Mutex::new(()),
            pace: Mutex::new(None),
            distrusted: Mutex::new(HashSet::new()),
        })
    }

    async fn watcher(&self) -> &Watcher {
        let root = self.root.clone();
        self.watcher.get_or_init(|| Watcher::start(root)).await
    }

    /// The current manifest; with `after`, the first whose generation passes it, or the
    /// current one once [`MANIFEST_WAIT_SEC`] have passed.
    pub(super) async fn wait(
        self: &Arc<Self>,
        after: Option<u64>,
    ) -> Result<Arc<Snapshot>, SyncError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(MANIFEST_WAIT_SEC);
        let mut changes = self.watcher().await.subscribe();
        loop {
            // Without `after`, the workspace as it is now: a change made just before (the
            // program's last write before it exited) may not be counted yet (the debounce).
            let snapshot = match after {
                None => self.computed(true).await?,
                Some(_) => self.fresh().await?,
            };
            if after.is_none_or(|after| snapshot.generation > after) {
                return Ok(snapshot);
            }
            let counted = changes.wait_for(|&count| count > snapshot.changes);
            let changed = tokio::time::timeout_at(deadline, counted)
                .await
                .is_ok_and(|counted| counted.is_ok());
            if !changed {
                return self.fresh().await;
            }
        }
    }

    /// The last manifest computed, or a new one if there is none yet.
    pub(super) async fn latest(self: &Arc<Self>) -> Result<Arc<Snapshot>, SyncError> {
        let last = lock(&self.last).clone();
        match last {
            Some(snapshot) => Ok(snapshot),
            None => self.fresh().await,
        }
    }

    /// Says the hash of `path` proved stale: it is read again, and a manifest is due.
    pub(super) fn distrust(&self, path: String) {
        lock(&self.distrusted).insert(path);
        self.changed();
    }

    /// Counts a change (when something is watched): the next manifest is computed afresh.
    pub(super) fn changed(&self) {
        if let Some(watcher) = self.watcher.get() {
            watcher.bump();
        }
    }

    /// The manifest as of the last change counted, computed if it is not known yet.
    pub(super) async fn fresh(self: &Arc<Self>) -> Result<Arc<Snapshot>, SyncError> {
        self.computed(false).await
    }

    /// Like [`Self::fresh`]; with `anew`, computed after the call whatever was counted.
    async fn computed(self: &Arc<Self>, anew: bool) -> Result<Arc<Snapshot>, SyncError> {
        let watcher = self.watcher().await;
        if let Some(snapshot) = self.showing(watcher.count()).filter(|_| !anew) {
            return Ok(snapshot);
        }
        let _turn = self.queue.lock().await;
        self.pace().await;
        // Read before git and the walk run: the manifest shows every change counted so far.
        let changes = watcher.count();
        if let Some(snapshot) = self.showing(changes).filter(|_| !anew) {
            return Ok(snapshot);
        }
        let tracked = repo::tracked(&self.root).await;
        let head = repo::head(&self.root).await;
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.compute(changes, anew, &tracked, head))
            .await
            .map_err(|e| SyncError::Task(e.to_string()))?
    }

    /// The last manifest if it shows the changes up to `count`.
    fn showing(&self, count: u64) -> Option<Arc<Snapshot>> {
        lock(&self.last).clone().filter(|s| s.changes >= count)
    }

    async fn pace(&self) {
        let due = lock(&self.pace).map(|(ended, took)| ended + took * PACE_FACTOR);
        if let Some(due) = due {
            tokio::time::sleep_until(due.into()).await;
        }
    }

    /// Walks, hashes what changed and serializes: the blocking part.
    fn compute(
        &self,
        changes: u64,
        anew: bool,
        tracked: &[u8],
        head: Option<String>,
    ) -> Result<Arc<Snapshot>, SyncError> {
        let _one = lock(&self.computing);
        if let Some(snapshot) = self.showing(changes).filter(|_| !anew) {
            return Ok(snapshot);
        }
        let started = Instant::now();
        let previous = lock(&self.last).clone();
        let listing = listing::list(&self.root, tracked)?;
        let root = hashes::open_root(&self.root).map_err(|e| SyncError::io(&self.root, e))?;
        let distrusted = std::mem::take(&mut *lock(&self.distrusted));
        let no_cache = Files::new();
        let cache = previous.as_ref().map_or(&no_cache, |p| &p.files);
        let (entries, files) = hashes::entries(&root, listing.found, cache, &distrusted);
        let digest = digest(&entries, head.as_deref());
        let generation = match &previous {
            None => 1,
            Some(p) if p.digest == digest => p.generation,
            Some(p) => p.generation + 1,
        };
        let count = entries.len();
        let manifest = Manifest {
            generation,
            entries,
            head,
        };
        let json = Bytes::from(serde_json::to_vec(&manifest).expect("manifests serialize"));
        let snapshot = Arc::new(Snapshot {
            changes,
            generation,
            digest,
            json,
            files,
        });
        *lock(&self.last) = Some(snapshot.clone());
        let took = started.elapsed();
        // The first one hashes everything once: no measure of what following changes costs.
        if previous.is_some() {
            *lock(&self.pace) = Some((Instant::now(), took));
        }
        tracing::debug!(generation, entries = count, ?took, "sync manifest");
        Ok(snapshot)
    }
}

/// What a manifest says, as one digest.
fn digest(entries: &[ManifestEntry], head: Option<&str>) -> [u8; 32] {
    let mut context = Context::new(&SHA256);
    for entry in entries {
        context.update(entry.path.as_bytes());
        context.update(&[0]);
        match &entry.kind {
            EntryKind::File {
                executable,
                size,
                sha256,
            } => {
                context.update(&[0, u8::from(*executable)]);
                context.update(&size.to_le_bytes());
                context.update(sha256.as_bytes());
            }
            EntryKind::Symlink { target } => {
                context.update(&[1]);
                context.update(target.as_bytes());
                context.update(&[0]);
            }
        }
    }
    context.update(head.unwrap_or_default().as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}
