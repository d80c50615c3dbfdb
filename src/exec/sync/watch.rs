//! The change watcher, on a thread of its own: inotify on every directory the listing looks
//! into (never on ignored trees like `node_modules/` or `target/`) plus `.git` and its refs,
//! so commits count; a burst of events counts as one change after a few ms. Without inotify,
//! or past its budget of watches, it counts a change every 500 ms instead and says so once.

use std::collections::HashSet;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec, eventfd, poll};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};

use super::{listing, repo};
use crate::protocol::workspace::always_skipped;

/// How long a burst of events is gathered before it counts as one change.
const DEBOUNCE: Duration = Duration::from_millis(10);

/// How often the fallback counts a change.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The most directories watched, whatever the system allows: each watch pins kernel memory.
const WATCHES_MAX: usize = 32_768;

/// Room for many events per read (one takes 16 bytes plus its name, at most 256).
const EVENT_BUFFER_BYTES: usize = 64 * 1024;

/// The events that change what a directory holds or what its files contain.
fn mask() -> WatchFlags {
    WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::MODIFY
        | WatchFlags::ATTRIB
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
        | WatchFlags::ONLYDIR
        | WatchFlags::DONT_FOLLOW
        | WatchFlags::EXCL_UNLINK
}

/// Counts the workspace's changes for as long as it lives; dropping it ends the thread.
pub(super) struct Watcher {
    changes: Arc<watch::Sender<u64>>,
    stop: Arc<Stop>,
}

impl Watcher {
    /// Watches `root`; once this returns, every later change is counted.
    pub(super) async fn start(root: PathBuf) -> Watcher {
        let changes = Arc::new(watch::channel(0).0);
        let stop = Arc::new(Stop {
            asked: AtomicBool::new(false),
            wake: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).ok(),
        });
        let (ready, started) = oneshot::channel();
        let (counter, stopper, handle) = (changes.clone(), stop.clone(), Handle::current());
        let spawned = std::thread::Builder::new()
            .name("catty-sync-watch".into())
            .spawn(move || run(root, &counter, &stopper, ready, &handle));
        match spawned {
            Ok(_) => {
                let _ = started.await;
            }
            Err(e) => tracing::warn!("sync: cannot start the watcher: {e}"),
        }
        Watcher { changes, stop }
    }

    /// Changes counted so far.
    pub(super) fn count(&self) -> u64 {
        *self.changes.borrow()
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Counts a change the watcher could not see (a hash found stale).
    pub(super) fn bump(&self) {
        self.changes.send_modify(|count| *count += 1);
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.ask();
    }
}

/// How the thread is told to end: a flag, and an eventfd that wakes its waits.
struct Stop {
    asked: AtomicBool,
    wake: Option<OwnedFd>,
}

impl Stop {
    fn ask(&self) {
        self.asked.store(true, Ordering::Relaxed);
        if let Some(wake) = &self.wake {
            let _ = rustix::io::write(wake, &1u64.to_ne_bytes());
        }
    }

    fn asked(&self) -> bool {
        self.asked.load(Ordering::Relaxed)
    }

    /// Waits until `fd` is readable, `timeout` (`None`: no limit) passes, or the stop.
    fn wait(&self, fd: Option<&OwnedFd>, timeout: Option<Duration>) -> io::Result<()> {
        let Some(wake) = &self.wake else {
            std::thread::sleep(timeout.unwrap_or(POLL_INTERVAL));
            return Ok(());
        };
        let mut fds = vec![PollFd::new(wake, PollFlags::IN)];
        fds.extend(fd.map(|fd| PollFd::new(fd, PollFlags::IN)));
        let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(Errno::INTR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The thread: inotify while it works, then the fallback, until the stop.
fn run(
    root: PathBuf,
    changes: &watch::Sender<u64>,
    stop: &Stop,
    ready: oneshot::Sender<()>,
    handle: &Handle,
) {
    let inotify = match stop.wake {
        Some(_) => Inotify::new(root.clone(), handle),
        None => Err("no eventfd to stop it with".into()),
    };
    let _ = ready.send(());
    let why = match inotify.and_then(|mut inotify| inotify.run(changes, stop, handle)) {
        Ok(()) => return,
        Err(why) => why,
    };
    let every = POLL_INTERVAL.as_millis();
    tracing::warn!(
        "sync: cannot watch {} ({why}); looking for changes every {every} ms",
        root.display()
    );
    while !stop.asked() {
        if let Err(e) = stop.wait(None, Some(POLL_INTERVAL)) {
            tracing::warn!("sync: the watcher stops: {e}");
            return;
        }
        changes.send_modify(|count| *count += 1);
    }
}

struct Inotify {
    root: PathBuf,
    fd: OwnedFd,
    watches: HashSet<i32>,
}

/// What a batch of events asks for.
#[derive(Default)]
struct Seen {
    changed: bool,
    /// Directories appeared, moved or may have become (un)ignored: watch anew.
    rescan: bool,
}

impl Inotify {
    fn new(root: PathBuf, handle: &Handle) -> Result<Inotify, String> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
            .map_err(|e| format!("inotify: {e}"))?;
        let mut inotify = Inotify {
            root,
            fd,
            watches: HashSet::new(),
        };
        inotify.rewatch(handle)?;
        Ok(inotify)
    }

    /// Counts changes until the stop (`Ok`) or until inotify fails (why).
    fn run(
        &mut self,
        changes: &watch::Sender<u64>,
        stop: &Stop,
        handle: &Handle,
    ) -> Result<(), String> {
        let reading = |e: io::Error| format!("reading inotify events: {e}");
        let mut buf = vec![MaybeUninit::uninit(); EVENT_BUFFER_BYTES];
        loop {
            let mut seen = Seen::default();
            stop.wait(Some(&self.fd), None).map_err(reading)?;
            if stop.asked() {
                return Ok(());
            }
            if !drain(&self.fd, &mut buf, &mut seen).map_err(reading)? {
                continue;
            }
            stop.wait(None, Some(DEBOUNCE)).map_err(reading)?;
            drain(&self.fd, &mut buf, &mut seen).map_err(reading)?;
            if seen.rescan {
                self.rewatch(handle)?;
            }
            if seen.changed || seen.rescan {
                changes.send_modify(|count| *count += 1);
            }
        }
    }

    /// Watches what the listing looks into, plus `.git` and its refs, and drops the watches
    /// no longer wanted. Errs when that would pass the budget or the system's limit.
    fn rewatch(&mut self, handle: &Handle) -> Result<(), String> {
        let tracked = handle.block_on(repo::tracked(&self.root));
        let listing = listing::list(&self.root, &tracked).map_err(|e| e.to_string())?;
        let mut dirs: Vec<PathBuf> = listing.dirs.iter().map(|d| self.root.join(d)).collect();
        git_dirs(&self.root.join(".git"), &mut dirs);
        let budget = budget();
        if dirs.len() > budget {
            let n = dirs.len();
            return Err(format!(
                "{n} directories, more than the {budget} watches it may use"
            ));
        }
        let mut watches = HashSet::with_capacity(dirs.len());
        for dir in &dirs {
            match inotify::add_watch(&self.fd, dir, mask()) {
                Ok(wd) => {
                    watches.insert(wd);
                }
                Err(Errno::NOSPC) => return Err("the system's inotify watches are used up".into()),
                // Gone or replaced since the walk: the next rescan sees what it became.
                Err(e) => tracing::debug!("sync: cannot watch {}: {e}", dir.display()),
            }
        }
        for &wd in self.watches.difference(&watches) {
            let _ = inotify::remove_watch(&self.fd, wd);
        }
        self.watches = watches;
        Ok(())
    }
}

/// Reads every event queued now into `seen`; whether there was any.
fn drain(fd: &OwnedFd, buf: &mut [MaybeUninit<u8>], seen: &mut Seen) -> io::Result<bool> {
    let mut reader = inotify::Reader::new(fd, buf);
    let mut any = false;
    loop {
        match reader.next() {
            Ok(event) => {
                any = true;
                note(&event, seen);
            }
            Err(Errno::AGAIN) => return Ok(any),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// What one event means. Names the defaults skip (`debug.log`, `node_modules/`) change
/// nothing; `.git` appearing or a `.gitignore` changing may change what is watched.
fn note(event: &inotify::Event<'_>, seen: &mut Seen) {
    let flags = event.events();
    if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
        seen.changed = true;
        seen.rescan = true;
        return;
    }
    if flags.contains(ReadFlags::IGNORED) {
        return;
    }
    let name = event.file_name().map_or(&b""[..], |n| n.to_bytes());
    let is_dir = flags.contains(ReadFlags::ISDIR);
    let moved = ReadFlags::CREATE | ReadFlags::MOVED_TO | ReadFlags::MOVED_FROM;
    if name == b".git" || name == b".gitignore" || (is_dir && flags.intersects(moved)) {
        seen.rescan = true;
    }
    if name.is_empty() || name == b".git" || !always_skipped(name, is_dir) {
        seen.changed = true;
    }
}

/// `.git` and the directories under `.git/refs`, when `.git` is a directory: commits,
/// checkouts and resets change `HEAD`, a ref, `packed-refs` or the index there.
fn git_dirs(git: &Path, dirs: &mut Vec<PathBuf>) {
    if !std::fs::symlink_metadata(git).is_ok_and(|m| m.is_dir()) {
        return;
    }
    dirs.push(git.to_owned());
    let mut todo = vec![git.join("refs")];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(entry.path());
            }
        }
        dirs.push(dir);
    }
}

/// How many directories may be watched: half of what the system allows a user (the agent's
/// own tools watch files too), at most [`WATCHES_MAX`].
fn budget() -> usize {
    let system = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(8192);
    (system / 2).min(WATCHES_MAX)
}
