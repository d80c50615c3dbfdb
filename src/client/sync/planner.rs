//! What a round does per path whose session version differs from the base: deletions and
//! symlinks at once, files to fetch (into the project or, for a conflict, aside), the base
//! moved along, and one line per conflict.

use std::collections::HashSet;
use std::sync::Arc;

use super::Counts;
use super::apply::{Roots, SyncSession, conflict_line};
use super::base::Base;
use super::check::shown;
use super::decision::{Decision, Local, decide};
use super::disk::Root;
use super::fetch::{Dest, Job};
use crate::protocol::sync::EntryKind;

pub(super) struct Planner<'a> {
    sync: &'a SyncSession,
    project: Root,
    counts: Counts,
    jobs: Vec<Job>,
    conflicts: Option<Root>,
}

impl<'a> Planner<'a> {
    pub(super) fn new(sync: &'a SyncSession, project: Root) -> Planner<'a> {
        Planner {
            sync,
            project,
            counts: Counts::default(),
            jobs: Vec::new(),
            conflicts: None,
        }
    }

    /// What the round did so far, the files to fetch and where they go.
    pub(super) fn finish(self) -> (Counts, Vec<Job>, Roots) {
        let roots = Roots {
            project: Arc::new(self.project),
            conflicts: self.conflicts.map(Arc::new),
        };
        (self.counts, self.jobs, roots)
    }

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

    pub(super) fn delete(&mut self, base: &mut Base, path: &str, remote_dirs: &HashSet<&str>) {
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

    pub(super) fn write(&mut self, base: &mut Base, path: &str, kind: &EntryKind) {
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
                let Some(conflicts) = self.conflicts_root() else {
                    return;
                };
                let at = conflicts.display(path);
                let dest = Dest::Conflict { why, at };
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
                sync.say(&conflict_line(path, &why, &conflicts.display(path)));
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
