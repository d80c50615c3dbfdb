//! One sync round: the manifest checked, every path whose session version differs from the
//! base decided against the local file (deletions first, so a file can become a directory and
//! back), symlinks written at once, files fetched, then the base saved. Rerunning a round
//! after a kill is safe: a file already written equals the session's and is only adopted.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use futures_util::StreamExt;

use super::Counts;
use super::base::{Base, Store};
use super::check::{self, Checked, shown};
use super::disk::Root;
use super::fetch::{self, Dest, Fetched, Job, PARALLEL_FETCHES};
use super::plan::{Decision, Local, decide};
use super::remote::Remote;
use crate::protocol::sync::{EntryKind, Manifest};

/// Where a round's lines go: stderr, or the attach loop's note while the terminal is raw.
pub type Say = Arc<dyn Fn(&str) + Send + Sync>;

/// A session's sync: where it comes back, how to reach it, where lines go.
pub(super) struct SyncSession {
    pub session_id: String,
    pub label: String,
    pub store: Store,
    pub remote: Remote,
    /// Where the work comes back when this machine has no base for the session.
    pub here: PathBuf,
    say: Say,
    /// Refusals already said (a hostile manifest is not repeated at every change).
    said: std::sync::Mutex<HashSet<String>>,
    cleaned: AtomicBool,
}

/// What a round did, and whether something moved under it (then another round settles it).
pub(super) struct Round {
    pub counts: Counts,
    pub retry: Option<String>,
    pub base: Base,
}

impl SyncSession {
    pub(super) fn new(
        link: &super::Link,
        state_dir: &std::path::Path,
        here: PathBuf,
        say: Say,
    ) -> anyhow::Result<SyncSession> {
        Ok(SyncSession {
            session_id: link.session_id.clone(),
            label: link.label.clone(),
            store: Store::new(state_dir),
            remote: Remote::new(&link.connect_url, &link.token, &link.headers)?,
            here,
            say,
            said: Default::default(),
            cleaned: AtomicBool::new(false),
        })
    }

    pub(super) fn say(&self, line: &str) {
        (self.say)(&format!("catty: {line}"));
    }

    pub(super) fn say_once(&self, line: &str) {
        if crate::sync::lock(&self.said).insert(line.to_string()) {
            self.say(line);
        }
    }

    /// The base for this session, or an empty one for [`SyncSession::here`].
    pub(super) fn base(&self) -> anyhow::Result<Base> {
        let base = self.store.load(&self.session_id)?;
        Ok(base.unwrap_or_else(|| Base::empty(&self.label, &self.here)))
    }
}

/// Applies `manifest` to the session's directory.
pub(super) async fn round(sync: &Arc<SyncSession>, manifest: Manifest) -> anyhow::Result<Round> {
    let s = sync.clone();
    let (lock, prepared) = blocking(move || {
        let lock = s.store.lock(&s.session_id)?;
        Ok((lock, prepare(&s, manifest)?))
    })
    .await?;
    let Prepared {
        mut base,
        mut counts,
        jobs,
        project,
    } = prepared;
    let mut retry = None;
    if !jobs.is_empty() {
        let conflicts = Arc::new(Root::open(&sync.store.conflicts(&sync.session_id)?)?);
        let fetches = jobs.into_iter().map(|job| {
            let root = match job.dest {
                Dest::Project { .. } => project.clone(),
                Dest::Conflict { .. } | Dest::Scratch => conflicts.clone(),
            };
            let remote = &sync.remote;
            async move { (fetch::fetch(remote, root, job.clone()).await, job) }
        });
        let mut fetched = futures_util::stream::iter(fetches).buffer_unordered(PARALLEL_FETCHES);
        while let Some((outcome, job)) = fetched.next().await {
            match outcome {
                Fetched::Written => done(sync, &mut base, &mut counts, &conflicts, job),
                Fetched::Retry(why) => retry = Some(format!("{}: {why}", shown(&job.path))),
                Fetched::Failed(line) => sync.say_once(&line),
            }
        }
    }
    let s = sync.clone();
    let base = blocking(move || {
        s.store.save(&s.session_id, &base)?;
        drop(lock);
        Ok(base)
    })
    .await?;
    Ok(Round {
        counts,
        retry,
        base,
    })
}

/// Records a fetched file in the base, or says where the session's version was put.
fn done(sync: &SyncSession, base: &mut Base, counts: &mut Counts, conflicts: &Root, job: Job) {
    let kind = EntryKind::File {
        executable: job.executable,
        size: job.size,
        sha256: job.sha256,
    };
    match job.dest {
        Dest::Project { before } => {
            match before {
                Local::Absent => counts.added += 1,
                _ => counts.changed += 1,
            }
            base.conflicts.remove(&job.path);
            base.files.insert(job.path, kind);
        }
        Dest::Conflict { why } => {
            counts.conflicts += 1;
            sync.say(&conflict_line(&job.path, &why, conflicts));
            base.conflicts.insert(job.path, Some(kind));
        }
        Dest::Scratch => {}
    }
}

fn conflict_line(path: &str, why: &str, conflicts: &Root) -> String {
    format!(
        "conflict: {} {why}; the session's version is at {} (copy it over yours to take it)",
        shown(path),
        shown(&conflicts.display(path).to_string_lossy())
    )
}

struct Prepared {
    base: Base,
    counts: Counts,
    jobs: Vec<Job>,
    project: Arc<Root>,
}

/// The blocking part before any fetch: checks, deletions, symlinks and the list of files to
/// fetch.
fn prepare(sync: &SyncSession, manifest: Manifest) -> anyhow::Result<Prepared> {
    let mut base = sync.base()?;
    let project = Root::open(&base.dir)
        .with_context(|| format!("cannot open {} to sync into", base.dir.display()))?;
    let checked = match check::check(manifest) {
        Ok(checked) => checked,
        Err(line) => {
            sync.say_once(&line);
            Checked::default()
        }
    };
    for line in &checked.lines {
        sync.say_once(line);
    }
    if !sync.cleaned.swap(true, Ordering::Relaxed) {
        let paths = checked.entries.keys().chain(base.files.keys());
        let dirs: BTreeSet<&str> = paths
            .map(|p| p.rsplit_once('/').map_or("", |(dir, _)| dir))
            .collect();
        project.clean_temps(dirs.into_iter());
    }
    let remote = &checked.entries;
    // A conflict whose session version went back to the base is over.
    let files = &base.files;
    base.conflicts.retain(|p, _| remote.get(p) != files.get(p));
    let changed: BTreeSet<String> = remote
        .keys()
        .chain(base.files.keys())
        .filter(|p| remote.get(*p) != base.files.get(*p) && !checked.refused.contains(*p))
        .cloned()
        .collect();
    let mut planner = Planner {
        sync,
        project,
        counts: Counts::default(),
        jobs: Vec::new(),
        conflicts: None,
    };
    let remote_dirs: HashSet<&str> = remote.keys().flat_map(|p| check::ancestors(p)).collect();
    for path in changed.iter().filter(|p| !remote.contains_key(*p)) {
        planner.delete(&mut base, path, &remote_dirs);
    }
    for (path, kind) in changed.iter().filter_map(|p| Some((p, remote.get(p)?))) {
        planner.write(&mut base, path, kind);
    }
    Ok(Prepared {
        base,
        counts: planner.counts,
        jobs: planner.jobs,
        project: Arc::new(planner.project),
    })
}

struct Planner<'a> {
    sync: &'a SyncSession,
    project: Root,
    counts: Counts,
    jobs: Vec<Job>,
    conflicts: Option<Root>,
}

impl Planner<'_> {
    /// What is at `path` locally; `None` (said) when it cannot be read.
    fn local(&self, path: &str) -> Option<Local> {
        match self.project.local(path) {
            Ok(local) => Some(local),
            Err(e) => {
                self.sync
                    .say_once(&format!("cannot read {}: {e}", shown(path)));
                None
            }
        }
    }

    fn decide(
        &self,
        base: &Base,
        path: &str,
        remote: Option<&EntryKind>,
    ) -> Option<(Local, Decision)> {
        let local = self.local(path)?;
        let reported = base.conflicts.get(path).map(Option::as_ref);
        let decision = decide(base.files.get(path), remote, &local, reported);
        Some((local, decision))
    }

    fn delete(&mut self, base: &mut Base, path: &str, remote_dirs: &HashSet<&str>) {
        let Some((_, decision)) = self.decide(base, path, None) else {
            return;
        };
        match decision {
            Decision::Adopt => {}
            Decision::Apply => {
                if let Err(e) = self.project.remove(path, |dir| remote_dirs.contains(dir)) {
                    let line = format!("cannot delete {}: {e}", shown(path));
                    return self.sync.say_once(&line);
                }
                self.counts.deleted += 1;
            }
            Decision::Conflict => {
                self.counts.conflicts += 1;
                self.sync.say(&format!(
                    "conflict: {} changed here but was deleted in the session; yours is kept (delete it to take the session's side)",
                    shown(path)
                ));
                base.conflicts.insert(path.to_string(), None);
                return;
            }
            Decision::KnownConflict => return,
        }
        base.files.remove(path);
        base.conflicts.remove(path);
    }

    fn write(&mut self, base: &mut Base, path: &str, kind: &EntryKind) {
        let Some((local, decision)) = self.decide(base, path, Some(kind)) else {
            return;
        };
        let apply = match decision {
            Decision::Adopt => true,
            Decision::KnownConflict => return,
            Decision::Apply => false,
            Decision::Conflict => return self.conflict(base, path, kind, &local),
        };
        if !apply {
            match kind {
                EntryKind::File {
                    executable,
                    size,
                    sha256,
                } => {
                    let dest = Dest::Project { before: local };
                    return self.jobs.push(job(path, *executable, *size, sha256, dest));
                }
                EntryKind::Symlink { target } => {
                    if let Err(e) = self.project.symlink(path, target) {
                        let line = format!("cannot write the symlink {}: {e}", shown(path));
                        return self.sync.say_once(&line);
                    }
                    match local {
                        Local::Absent => self.counts.added += 1,
                        _ => self.counts.changed += 1,
                    }
                }
            }
        }
        base.files.insert(path.to_string(), kind.clone());
        base.conflicts.remove(path);
    }

    /// Keeps the local side and puts the session's version in the conflicts directory.
    fn conflict(&mut self, base: &mut Base, path: &str, kind: &EntryKind, local: &Local) {
        let why = match local {
            Local::Absent => "was deleted here but changed in the session".to_string(),
            Local::Entry(_) => "changed here and in the session".to_string(),
            Local::Other(what) => format!("is in the way here ({what})"),
        };
        match kind {
            EntryKind::File {
                executable,
                size,
                sha256,
            } => {
                let dest = Dest::Conflict { why };
                self.jobs.push(job(path, *executable, *size, sha256, dest));
            }
            EntryKind::Symlink { target } => {
                let sync = self.sync;
                let Some(conflicts) = self.conflicts_root() else {
                    return;
                };
                if let Err(e) = conflicts.symlink(path, target) {
                    let line = format!("cannot keep the session's {}: {e}", shown(path));
                    return sync.say_once(&line);
                }
                sync.say(&conflict_line(path, &why, conflicts));
                self.counts.conflicts += 1;
                base.conflicts.insert(path.to_string(), Some(kind.clone()));
            }
        }
    }

    fn conflicts_root(&mut self) -> Option<&Root> {
        if self.conflicts.is_none() {
            let dir = self.sync.store.conflicts(&self.sync.session_id);
            match dir.and_then(|dir| Ok(Root::open(&dir)?)) {
                Ok(root) => self.conflicts = Some(root),
                Err(e) => self.sync.say_once(&format!("cannot keep conflicts: {e:#}")),
            }
        }
        self.conflicts.as_ref()
    }
}

fn job(path: &str, executable: bool, size: u64, sha256: &str, dest: Dest) -> Job {
    Job {
        path: path.to_string(),
        executable,
        size,
        sha256: sha256.to_string(),
        dest,
    }
}

/// Runs blocking file work off the async thread.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("a sync thread failed")?
}
