//! The session's deadline (its TTL): set at start from `CATTY_TTL_SEC`, moved by `POST /ttl`
//! (`catty extend`), awaited by the lifecycle, which ends the session at it, and followed by
//! each connection, which tells its client (`ending`) when it comes near or moves.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::protocol::ENDING_NOTICE;
use crate::protocol::api::MAX_TTL_SEC;

/// When the session ends; `None` without a TTL. Changed only through [`Deadline::set_in`],
/// which wakes every watcher.
pub(super) struct Deadline {
    started: Instant,
    at: watch::Sender<Option<Instant>>,
}

impl Deadline {
    pub(super) fn new(ttl: Option<Duration>) -> Deadline {
        let started = Instant::now();
        Deadline {
            started,
            at: watch::Sender::new(ttl.map(|ttl| started + ttl)),
        }
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<Option<Instant>> {
        self.at.subscribe()
    }

    /// Moves the deadline to `in_sec` seconds from now, no later than [`MAX_TTL_SEC`] after the
    /// start; the time left until the deadline it took.
    pub(super) fn set_in(&self, in_sec: u64) -> Duration {
        let now = Instant::now();
        let cap = self.started + Duration::from_secs(MAX_TTL_SEC);
        let at = (now + Duration::from_secs(in_sec)).min(cap);
        self.at.send_replace(Some(at));
        at.saturating_duration_since(now)
    }

    /// The whole time to live as it stands, from the start.
    pub(super) fn total(&self) -> Option<Duration> {
        (*self.at.borrow()).map(|at| at.saturating_duration_since(self.started))
    }

    /// Resolves once the deadline, as it stands then, has passed; never without one.
    pub(super) async fn passed(&self) {
        let mut at = self.subscribe();
        loop {
            let current = *at.borrow_and_update();
            let sleep = sleep_until(current);
            tokio::select! {
                () = sleep => return,
                // The sender lives as long as `self`.
                _ = at.changed() => {}
            }
        }
    }
}

/// Sleeps until `at`, forever for `None`.
pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What one connection has told its client about the deadline: it warns once when the time
/// left drops to [`ENDING_NOTICE`] (at once when it starts with less), and says every move.
#[derive(Debug)]
pub(super) struct Notice {
    at: Option<Instant>,
    warned: bool,
}

impl Notice {
    pub(super) fn new(at: Option<Instant>) -> Notice {
        Notice { at, warned: false }
    }

    /// The seconds left to tell the client now, if the warning is due and was not given.
    pub(super) fn due(&mut self, now: Instant) -> Option<u64> {
        let at = self.at?;
        if self.warned || at.saturating_duration_since(now) > ENDING_NOTICE {
            return None;
        }
        self.warned = true;
        Some(secs_left(at, now))
    }

    /// The deadline moved to `at`: the seconds left to tell the client. A deadline past the
    /// notice warns again when it comes near.
    pub(super) fn moved(&mut self, at: Option<Instant>, now: Instant) -> Option<u64> {
        self.at = at;
        let at = at?;
        self.warned = at.saturating_duration_since(now) <= ENDING_NOTICE;
        Some(secs_left(at, now))
    }

    /// When the warning falls due; `None` once given (or without a deadline).
    pub(super) fn wake_at(&self) -> Option<Instant> {
        match self.warned {
            true => None,
            false => self
                .at
                .map(|at| at.checked_sub(ENDING_NOTICE).unwrap_or(at)),
        }
    }
}

/// Whole seconds until `at`, rounded up: a warning never says less than is left.
fn secs_left(at: Instant, now: Instant) -> u64 {
    at.saturating_duration_since(now).as_millis().div_ceil(1000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn warns_once_when_the_time_left_drops_to_the_notice() {
        let now = Instant::now();
        let mut notice = Notice::new(Some(now + 10 * MIN));
        assert_eq!(notice.due(now), None);
        assert_eq!(notice.wake_at(), Some(now + 5 * MIN));
        assert_eq!(notice.due(now + 5 * MIN), Some(300));
        assert_eq!(notice.due(now + 6 * MIN), None, "once");
        assert_eq!(notice.wake_at(), None);
    }

    #[test]
    fn a_connection_that_starts_late_is_warned_at_once() {
        let now = Instant::now();
        let mut notice = Notice::new(Some(now + Duration::from_millis(3500)));
        assert_eq!(notice.due(now), Some(4), "rounded up");
    }

    #[test]
    fn a_move_is_told_and_a_later_crossing_warns_again() {
        let now = Instant::now();
        let mut notice = Notice::new(Some(now + 2 * MIN));
        assert_eq!(notice.due(now), Some(120));
        assert_eq!(notice.moved(Some(now + 62 * MIN), now), Some(3720));
        assert_eq!(notice.due(now + 56 * MIN), None);
        assert_eq!(notice.due(now + 57 * MIN), Some(300));
    }

    #[test]
    fn a_move_into_the_notice_is_the_warning() {
        let now = Instant::now();
        let mut notice = Notice::new(Some(now + 20 * MIN));
        assert_eq!(notice.moved(Some(now + 4 * MIN), now), Some(240));
        assert_eq!(notice.due(now + MIN), None);
    }

    #[test]
    fn without_a_deadline_nothing_is_told() {
        let now = Instant::now();
        let mut notice = Notice::new(None);
        assert_eq!(notice.due(now), None);
        assert_eq!(notice.wake_at(), None);
    }

    #[tokio::test]
    async fn set_in_is_clamped_to_the_longest_ttl_from_the_start() {
        let deadline = Deadline::new(Some(Duration::from_secs(60)));
        let left = deadline.set_in(MAX_TTL_SEC + 3600);
        assert!(left <= Duration::from_secs(MAX_TTL_SEC), "{left:?}");
        assert!(deadline.total().unwrap() <= Duration::from_secs(MAX_TTL_SEC));
        let left = deadline.set_in(90);
        assert_eq!(left.as_secs_f64().round(), 90.0);
    }
}
