//! The sweep: brings the records in line with the provider, at start and then periodically.
//! Live sessions whose machine died become `gone`, sessions past their deadline are
//! destroyed and `expired` (the backstop for a lost runtime), sessions left `starting` by a
//! daemon that died are adopted or given up, pending destructions are retried, and ended
//! records are pruned once `keep_ended` (`catty api --keep-ended`) has passed since their end.

use std::time::Duration;

use futures_util::future::join_all;
use tracing::Instrument;

use super::daemon::Daemon;
use super::provider::{Liveness, Machine, Provider};
use super::store::{Record, Store};
use crate::clock::unix_now;
use crate::protocol::api::SessionState;

/// The advisory lock one sweep at a time holds (any constant of ours).
const SWEEP_LOCK: i64 = 0x6361_7474_7973; // "cattys"
/// How often the sweep runs when no deadline comes sooner.
pub(super) const SWEEP_INTERVAL: Duration = Duration::from_secs(15);
/// The runtime ends its own session at the deadline and needs a few seconds to hang up its
/// program; the backstop acts only after that head start.
const EXPIRY_SLACK_SEC: u64 = 5;
/// How long an orphaned `starting` record waits for a non-authoritative provider to list its
/// machine before it is given up: longer than any create takes.
const ORPHAN_AFTER_SEC: u64 = 300;
/// The same for a record whose creator is known to be dead.
const DEAD_CREATOR_ORPHAN_AFTER_SEC: u64 = 30;
/// How long an adopted machine gets to answer `/healthz`.
const ADOPT_READY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the sweep decided for one live record.
enum Verdict {
    Keep,
    /// A `starting` session whose machine is alive and answers: it runs (with the machine,
    /// for an adopted orphan).
    Running(Option<Machine>),
    /// Its program exited with this code; the runtime stays for its grace.
    Exited(i32),
    End {
        state: SessionState,
        reason: &'static str,
        /// A machine found for an orphan record, to be destroyed with it.
        machine: Option<Machine>,
    },
}

impl<P: Provider> Daemon<P> {
    /// One pass over the records; with a store many instances share, by one instance at a
    /// time (so no two act on one machine at once, and the backstop destroys an expired
    /// machine once).
    pub(super) async fn sweep(&self) {
        let Store::Db(db) = &self.store else {
            return self.sweep_once().await;
        };
        match db.exclusively(SWEEP_LOCK, self.sweep_once()).await {
            Ok(Some(())) => {}
            Ok(None) => tracing::debug!("another instance is sweeping"),
            Err(e) => tracing::warn!("cannot sweep: {e:#}"),
        }
    }

    async fn sweep_once(&self) {
        let now = unix_now();
        let sweepable = match self.store.sweepable().await {
            Ok(records) => records,
            Err(e) => {
                tracing::error!("cannot read the sessions to sweep: {e:#}");
                return;
            }
        };
        let live: Vec<Record> = (sweepable.into_iter())
            .filter(|r| r.state.is_live() && r.provider == P::NAME && !self.in_creation(r))
            .collect();
        let listed = match live.iter().any(|r| r.machine.is_none()) {
            true => match self.provider.list().await {
                Ok(listed) => Some(listed),
                Err(e) => {
                    tracing::warn!("cannot list machines: {e:#}");
                    None
                }
            },
            false => None,
        };
        let verdicts = join_all(live.iter().map(|r| self.judge(r, now, listed.as_deref()))).await;
        if let Err(e) = self
            .apply(live.into_iter().zip(verdicts).collect(), now)
            .await
        {
            tracing::error!("cannot record what the sweep found: {e:#}");
        }
        self.retry_destroys().await;
        self.prune(now).await;
    }

    async fn judge(&self, r: &Record, now: u64, listed: Option<&[Machine]>) -> Verdict {
        let span = tracing::info_span!("session", session = %r.label);
        self.judge_live(r, now, listed).instrument(span).await
    }

    async fn judge_live(&self, r: &Record, now: u64, listed: Option<&[Machine]>) -> Verdict {
        if now >= r.expires_at + EXPIRY_SLACK_SEC {
            return end(SessionState::Expired, "its time to live ran out");
        }
        let Some(machine) = &r.machine else {
            return self.judge_orphan(r, now, listed).await;
        };
        match self.provider.alive(machine).await {
            Ok(Liveness::Alive | Liveness::Exited(_)) if r.state == SessionState::Starting => {
                self.ready(machine, None).await
            }
            Ok(Liveness::Exited(code)) if r.exit_code != Some(code) => Verdict::Exited(code),
            Ok(Liveness::Alive | Liveness::Exited(_) | Liveness::Unknown) => Verdict::Keep,
            Ok(Liveness::Dead) if now >= r.expires_at => {
                end(SessionState::Expired, "its time to live ran out")
            }
            Ok(Liveness::Dead) => end(SessionState::Gone, "its machine is gone"),
            Err(e) => {
                tracing::warn!("cannot tell whether machine {} runs: {e:#}", machine.id);
                Verdict::Keep
            }
        }
    }

    /// A `starting` record without a machine: its daemon died while creating it.
    async fn judge_orphan(&self, r: &Record, now: u64, listed: Option<&[Machine]>) -> Verdict {
        let Some(listed) = listed else {
            return Verdict::Keep;
        };
        match listed.iter().find(|m| m.session_id == r.id) {
            Some(machine) => self.ready(machine, Some(machine.clone())).await,
            None if P::AUTHORITATIVE || now >= r.created_at + self.orphan_after(r) => {
                end(SessionState::Gone, "its machine was never created")
            }
            None => Verdict::Keep,
        }
    }

    /// How long after its creation a `starting` record whose machine is not listed is given
    /// up. Its creator may still be creating it unless it is known dead (an instance of the
    /// hosted API, `in_creation`): then only the Machines API's listing may lag, by seconds.
    fn orphan_after(&self, r: &Record) -> u64 {
        match (&self.presence, r.creator) {
            (Some(_), Some(_)) => DEAD_CREATOR_ORPHAN_AFTER_SEC,
            _ => ORPHAN_AFTER_SEC,
        }
    }

    async fn ready(&self, machine: &Machine, adopt: Option<Machine>) -> Verdict {
        match self.provider.wait_ready(machine, ADOPT_READY_TIMEOUT).await {
            Ok(()) => Verdict::Running(adopt),
            Err(e) => {
                tracing::warn!("machine {} does not answer: {e:#}", machine.id);
                Verdict::End {
                    state: SessionState::Gone,
                    reason: "its runtime did not start",
                    machine: adopt,
                }
            }
        }
    }

    /// Writes the verdicts, each only if its record did not change since it was judged.
    async fn apply(&self, verdicts: Vec<(Record, Verdict)>, now: u64) -> anyhow::Result<()> {
        for (judged, verdict) in verdicts {
            if matches!(verdict, Verdict::Keep) {
                continue;
            }
            self.store
                .update(&judged.id, |r| {
                    if *r != judged {
                        return;
                    }
                    match verdict {
                        Verdict::Keep => {}
                        Verdict::Running(adopted) => {
                            r.machine = adopted.or(r.machine.take());
                            r.state = SessionState::Running;
                            tracing::info!(session = %r.label, "session running again");
                        }
                        Verdict::Exited(code) => {
                            r.exit_code = Some(code);
                            tracing::info!(session = %r.label, code, "its program exited");
                        }
                        Verdict::End {
                            state,
                            reason,
                            machine,
                        } => {
                            r.machine = r.machine.take().or(machine);
                            r.end(state, reason, now);
                            tracing::info!(session = %r.label, "session ended: {reason}");
                        }
                    }
                })
                .await?;
        }
        Ok(())
    }

    /// Destroys the machines of ended sessions that are not confirmed destroyed yet.
    async fn retry_destroys(&self) {
        let sweepable = match self.store.sweepable().await {
            Ok(records) => records,
            Err(e) => return tracing::error!("cannot read the sessions to sweep: {e:#}"),
        };
        let pending: Vec<Machine> = (sweepable.into_iter())
            .filter(|r| r.destroy_pending && !r.state.is_live() && r.provider == P::NAME)
            .filter_map(|r| r.machine)
            .collect();
        let results = join_all(pending.iter().map(|m| self.provider.destroy(m))).await;
        let mut destroyed = Vec::new();
        for (machine, result) in pending.iter().zip(results) {
            match result {
                Ok(()) => destroyed.push(machine),
                Err(e) => tracing::warn!("cannot destroy machine {} yet: {e:#}", machine.id),
            }
        }
        if let Err(e) = self.confirm_destroyed(&destroyed).await {
            tracing::error!("cannot record destroyed machines: {e:#}");
        }
    }

    /// Forgets sessions that ended more than `keep_ended` ago.
    async fn prune(&self, now: u64) {
        let keep = self.keep_ended.as_secs();
        match self.store.prune(now.saturating_sub(keep)).await {
            Ok(gone) => {
                for id in gone {
                    self.provider.forget(&id).await;
                }
            }
            Err(e) => tracing::error!("cannot prune old sessions: {e:#}"),
        }
    }

    /// How long until the next sweep: [`SWEEP_INTERVAL`], or less when a deadline (plus its
    /// slack) or the end of an ended session's keep comes sooner.
    pub(super) async fn next_sweep_in(&self) -> Duration {
        let now = unix_now();
        let keep = self.keep_ended.as_secs();
        match self.store.next_due(EXPIRY_SLACK_SEC, keep).await {
            Ok(Some(due)) => {
                Duration::from_secs(due.saturating_sub(now).max(1)).min(SWEEP_INTERVAL)
            }
            Ok(None) => SWEEP_INTERVAL,
            Err(e) => {
                tracing::warn!("cannot read the next deadline: {e:#}");
                SWEEP_INTERVAL
            }
        }
    }
}

fn end(state: SessionState, reason: &'static str) -> Verdict {
    Verdict::End {
        state,
        reason,
        machine: None,
    }
}
