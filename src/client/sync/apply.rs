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
use super::decision::Local;
use super::disk::Root;
use super::fetch::{self, Dest, Fetched, Job, PARALLEL_FETCHES};
use super::planner::Planner;
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
    /// The manifest was refused whole: nothing of it counts as pulled.
    pub refused: bool,
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
        if crate::locks::lock(&self.said).insert(line.to_string()) {
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
        refused,
        mut base,
        mut counts,
        jobs,
        roots,
    } = prepared;
    let retry = fetch_all(sync, jobs, roots, &mut base, &mut counts).await;
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
        refused,
    })
}

/// Fetches the round's files a few at a time, recording each in the base as it lands; what
/// moved meanwhile, if anything.
async fn fetch_all(
    sync: &SyncSession,
    jobs: Vec<Job>,
    roots: Roots,
    base: &mut Base,
    counts: &mut Counts,
) -> Option<String> {
    let fetches = jobs.into_iter().filter_map(|job| {
        let root = match job.dest {
            Dest::Project { .. } => roots.project.clone(),
            Dest::Conflict { .. } | Dest::Scratch => roots.conflicts.clone()?,
        };
        let remote = &sync.remote;
        Some(async move { (fetch::fetch(remote, root, job.clone()).await, job) })
    });
    let mut fetched = futures_util::stream::iter(fetches).buffer_unordered(PARALLEL_FETCHES);
    let mut retry = None;
    while let Some((outcome, job)) = fetched.next().await {
        match outcome {
            Fetched::Written => done(sync, base, counts, job),
            Fetched::Retry(why) => retry = Some(format!("{}: {why}", shown(&job.path))),
            Fetched::Failed(line) => sync.say_once(&line),
        }
    }
    retry
}

/// Records a fetched file in the base, or says where the session's version was put.
fn done(sync: &SyncSession, base: &mut Base, counts: &mut Counts, job: Job) {
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
        Dest::Conflict { why, at } => {
            counts.conflicts += 1;
            sync.say(&conflict_line(&job.path, &why, &at));
            base.conflicts.insert(job.path, Some(kind));
        }
        Dest::Scratch => {}
    }
}

/// The line for a conflict: the path, how the two sides differ, and where the session's
/// version is.
pub(super) fn conflict_line(path: &str, why: &str, at: &std::path::Path) -> String {
    format!(
        "conflict: {} {why}; the session's version is at {} (copy it over yours to take it)",
        shown(path),
        shown(&at.to_string_lossy())
    )
}

/// What a round does once its files are fetched.
struct Prepared {
    refused: bool,
    base: Base,
    counts: Counts,
    jobs: Vec<Job>,
    roots: Roots,
}

/// The project, and the conflicts directory when the round has conflicts.
pub(super) struct Roots {
    pub project: Arc<Root>,
    pub conflicts: Option<Arc<Root>>,
}

/// The blocking part before any fetch: checks, deletions, symlinks and the list of files to
/// fetch.
fn prepare(sync: &SyncSession, manifest: Manifest) -> anyhow::Result<Prepared> {
    let mut base = sync.base()?;
    let project = Root::open(&base.dir)
        .with_context(|| format!("cannot open {} to sync into", base.dir.display()))?;
    let checked = checked(sync, manifest);
    if !sync.cleaned.swap(true, Ordering::Relaxed) {
        clean_temps(sync, &project, &base, checked.as_ref());
    }
    let mut planner = Planner::new(sync, project);
    // A manifest refused whole changes nothing: it is not an empty workspace.
    if let Some(checked) = &checked {
        plan(sync, &mut base, &mut planner, checked);
    }
    let (counts, jobs, roots) = planner.finish();
    Ok(Prepared {
        refused: checked.is_none(),
        base,
        counts,
        jobs,
        roots,
    })
}

/// Removes the temp files a killed client left beside the paths of the session, here and
/// among the conflicts.
fn clean_temps(sync: &SyncSession, project: &Root, base: &Base, checked: Option<&Checked>) {
    let listed = checked.into_iter().flat_map(|c| c.entries.keys());
    let dirs: BTreeSet<&str> = listed
        .chain(base.files.keys())
        .map(|p| p.rsplit_once('/').map_or("", |(dir, _)| dir))
        .collect();
    project.clean_temps(dirs.iter().copied());
    let aside = sync.store.conflicts_path(&sync.session_id);
    if let Ok(aside) = aside.and_then(|dir| Ok(Root::open(&dir)?)) {
        aside.clean_temps(dirs.iter().copied());
    }
}

/// Decides every path whose session version differs from the base: deletions first, so a
/// file can become a directory and back.
fn plan(sync: &SyncSession, base: &mut Base, planner: &mut Planner, checked: &Checked) {
    let remote = &checked.entries;
    if !base.confirmed {
        forget_unlisted(sync, base, checked);
    }
    // A conflict whose session version went back to the base is over.
    let files = &base.files;
    base.conflicts.retain(|p, _| remote.get(p) != files.get(p));
    let changed: BTreeSet<String> = remote
        .keys()
        .chain(base.files.keys())
        .filter(|p| remote.get(*p) != base.files.get(*p) && !checked.refused.contains(*p))
        .cloned()
        .collect();
    let remote_dirs: HashSet<&str> = remote.keys().flat_map(|p| check::ancestors(p)).collect();
    for path in changed.iter().filter(|p| !remote.contains_key(*p)) {
        planner.delete(base, path, &remote_dirs);
    }
    for (path, kind) in changed.iter().filter_map(|p| Some((p, remote.get(p)?))) {
        planner.write(base, path, kind);
    }
}

/// The first manifest after the upload: an uploaded path it does not list may be one the
/// session's git ignores rather than one it deleted, so it leaves the base and stays here.
fn forget_unlisted(sync: &SyncSession, base: &mut Base, checked: &Checked) {
    let unlisted: Vec<String> = base
        .files
        .keys()
        .filter(|p| !checked.entries.contains_key(*p) && !checked.refused.contains(*p))
        .cloned()
        .collect();
    for path in &unlisted {
        base.files.remove(path);
    }
    if let Some(first) = unlisted.first() {
        sync.say(&format!(
            "kept {} uploaded file(s) the session does not list (ignored there, or deleted before the first sync), e.g. {}",
            unlisted.len(),
            shown(first)
        ));
    }
    base.confirmed = true;
}

/// The manifest checked, its refusals said (once); `None` when it is refused whole.
fn checked(sync: &SyncSession, manifest: Manifest) -> Option<Checked> {
    let checked = match check::check(manifest) {
        Ok(checked) => checked,
        Err(line) => {
            sync.say_once(&line);
            return None;
        }
    };
    for line in &checked.lines {
        sync.say_once(line);
    }
    Some(checked)
}

/// Runs blocking file work off the async thread.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("a sync thread failed")?
}
