//! Live sync while attached: a task of its own long-polls `GET /sync/manifest?after=G` on
//! its own connections and applies each new manifest (file work on blocking threads), so the
//! terminal stream never waits for it. It reconnects with backoff, says nothing unless there
//! is a conflict or a refusal, and ends with a last pull when the program has exited. A
//! runtime without sync endpoints ends it quietly.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::apply::{self, Say, SyncSession};
use super::remote::RemoteError;
use super::{Branch, Counts, Link, Summary, branch, manifest, pull_with};
use crate::protocol::sync::Manifest;
use crate::task::AbortOnDrop;

/// Waits between attempts while the runtime cannot be reached, doubling up to the maximum.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long before the session's TTL ends it live sync pulls once more, whatever the long
/// poll says: the runtime ends everything at the TTL.
const LAST_PULL_LEAD: Duration = Duration::from_secs(20);

/// A session followed live. Dropping it stops the task at once (a write in flight still
/// completes or leaves nothing: writes are atomic).
pub struct Live {
    sync: Arc<SyncSession>,
    stop: watch::Sender<bool>,
    expiry: Expiry,
    task: AbortOnDrop<Followed>,
}

/// The session's `expires_at` (unix seconds) as live sync knows it: the attach moves it when
/// the runtime says the deadline moved (`catty extend`), so the last pull comes before the
/// real end, not the old one.
#[derive(Clone)]
pub struct Expiry(Arc<watch::Sender<Option<u64>>>);

impl Expiry {
    pub fn moved(&self, expires_at: u64) {
        self.0.send_if_modified(|at| {
            let changed = *at != Some(expires_at);
            *at = Some(expires_at);
            changed
        });
    }
}

/// What the task did, and whether the runtime turned out to have no sync endpoints.
#[derive(Debug, Default)]
struct Followed {
    counts: Counts,
    unsupported: bool,
}

impl Live {
    /// Starts following `link` into the directory of its base (or `here`).
    pub fn start(link: &Link, state_dir: &Path, here: &Path, say: Say) -> anyhow::Result<Live> {
        let sync = Arc::new(SyncSession::new(link, state_dir, here.to_owned(), say)?);
        let (stop, stopped) = watch::channel(false);
        let (expiry, expires) = watch::channel(link.expires_at);
        let task = AbortOnDrop(tokio::spawn(follow(sync.clone(), stopped, expires)));
        let expiry = Expiry(Arc::new(expiry));
        Ok(Live {
            sync,
            stop,
            expiry,
            task,
        })
    }

    /// Where to say that the session's deadline moved.
    pub fn expiry(&self) -> Expiry {
        self.expiry.clone()
    }

    /// Stops following after the round in progress; what the rounds did.
    pub async fn stop(self) -> Counts {
        self.join().await.counts
    }

    /// Stops following, then pulls once more (the program has exited): the whole session's
    /// summary, files and branch. `None` when the runtime has no sync endpoints.
    pub async fn finish(self) -> anyhow::Result<Option<Summary>> {
        let sync = self.sync.clone();
        let followed = self.join().await;
        if followed.unsupported {
            return Ok(None);
        }
        let mut summary = match pull_with(&sync).await {
            Ok(summary) => summary,
            Err(e) if no_endpoints(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        summary.counts.add(followed.counts);
        Ok(Some(summary))
    }

    async fn join(mut self) -> Followed {
        let _ = self.stop.send(true);
        // Joined, not cancelled. A panic in the task counts as nothing done.
        (&mut self.task.0).await.unwrap_or_default()
    }
}

/// Whether `e` says the runtime has no sync endpoints (`404` for the manifest).
fn no_endpoints(e: &anyhow::Error) -> bool {
    let status = |e: &RemoteError| matches!(e, RemoteError::Status(s, _) if s.as_u16() == 404);
    e.downcast_ref::<RemoteError>().is_some_and(status)
}

/// When to pull before a session that expires at `expires_at` (unix seconds) ends.
fn last_pull_at(expires_at: u64) -> tokio::time::Instant {
    let left = Duration::from_secs(expires_at.saturating_sub(crate::clock::unix_now()));
    tokio::time::Instant::now() + left.saturating_sub(LAST_PULL_LEAD)
}

/// The loop: one manifest at a time, each new generation applied; [`LAST_PULL_LEAD`] before
/// the session expires (as `expires` says now), a manifest asked for at once rather than
/// waited for, once per deadline.
async fn follow(
    sync: Arc<SyncSession>,
    mut stopped: watch::Receiver<bool>,
    mut expires: watch::Receiver<Option<u64>>,
) -> Followed {
    let mut pulled_for: Option<u64> = None;
    let mut follower = Follower {
        sync,
        followed: Followed::default(),
        generation: None,
        head_seen: None,
        backoff: Duration::ZERO,
    };
    loop {
        let expires_at = *expires.borrow_and_update();
        let last_pull = expires_at.filter(|at| pulled_for != Some(*at));
        let due = async {
            match last_pull {
                Some(at) => tokio::time::sleep_until(last_pull_at(at)).await,
                None => std::future::pending().await,
            }
        };
        let polled = tokio::select! {
            polled = manifest(&follower.sync.remote, follower.generation) => polled,
            // The deadline moved: wait for the new one (the long poll is asked again).
            Ok(()) = expires.changed() => continue,
            () = due => {
                pulled_for = last_pull;
                tracing::info!(session = %follower.sync.label, "pulling before the session expires");
                manifest(&follower.sync.remote, None).await
            }
            _ = stopped.changed() => break,
        };
        let Some(wait) = follower.polled(polled).await else {
            break;
        };
        if !wait.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stopped.changed() => break,
            }
        }
    }
    follower.followed
}

/// What the loop keeps between manifests.
struct Follower {
    sync: Arc<SyncSession>,
    followed: Followed,
    /// The generation applied, for the next long poll.
    generation: Option<u64>,
    /// The session `HEAD` whose commits were fetched.
    head_seen: Option<String>,
    backoff: Duration,
}

impl Follower {
    /// Handles one answer; how long to wait before the next poll, `None` to stop.
    async fn polled(&mut self, polled: Result<Manifest, RemoteError>) -> Option<Duration> {
        match polled {
            Ok(manifest) if Some(manifest.generation) == self.generation => Some(Duration::ZERO),
            Ok(manifest) => self.apply(manifest).await,
            Err(e @ RemoteError::Status(..)) => {
                // A runtime without sync endpoints (an older image), a refused token: retrying
                // changes nothing, and a line in the middle of the agent's screen helps no one
                // (`catty pull` says it).
                tracing::info!(session = %self.sync.label, "no live sync: {e}");
                self.followed.unsupported = true;
                None
            }
            Err(e) => {
                if let RemoteError::Broken(why) = e {
                    let label = &self.sync.label;
                    self.sync
                        .say_once(&format!("a broken answer from {label}: {why}"));
                }
                self.backoff = (self.backoff * 2).clamp(BACKOFF_FIRST, BACKOFF_MAX);
                Some(self.backoff)
            }
        }
    }

    async fn apply(&mut self, manifest: Manifest) -> Option<Duration> {
        let (generation, head) = (manifest.generation, manifest.head.clone());
        let round = match apply::round(&self.sync, manifest).await {
            Ok(round) => round,
            Err(e) => {
                self.sync.say_once(&format!("sync stopped: {e:#}"));
                return None;
            }
        };
        self.followed.counts.add(round.counts);
        if head.is_some() && head != self.head_seen {
            match branch::fetch(&self.sync, &round.base, head.as_deref()).await {
                Branch::Failed(why) => self.sync.say_once(&format!("the session's commits: {why}")),
                _ => self.head_seen = head.clone(),
            }
        }
        let commits_in = head.is_none() || head == self.head_seen;
        if round.retry.is_none()
            && !round.refused
            && commits_in
            && let Err(e) = super::acknowledge(&self.sync.remote, generation).await
        {
            self.sync
                .say_once(&format!("telling the session what was pulled: {e}"));
        }
        self.backoff = Duration::ZERO;
        // Something moved under the round: ask again at once rather than wait for a change
        // that already happened (a moment later, so a runtime in flux is not hammered).
        self.generation = round.retry.is_none().then_some(generation);
        Some(match round.retry {
            None => Duration::ZERO,
            Some(_) => BACKOFF_FIRST,
        })
    }
}
