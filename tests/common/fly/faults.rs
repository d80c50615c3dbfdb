//! Faults a test switches on through `FakeFly::faults()`: the bad days of reference §1 and
//! §2.1 (rate limits, 5xx, an ambiguous 408 on create, an empty list, a machine stuck in
//! `created`, a revoked token, a region out of capacity). Each is consumed as it fires.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// Which Machines API call a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Any,
    /// `GET /v1/apps/{app}`.
    App,
    Create,
    List,
    Get,
    Wait,
    Stop,
    Start,
    Delete,
    Lease,
    Metadata,
}

/// The fault switches of one fake. Every method takes `&self`, so a test can flip them while
/// clients run.
#[derive(Default)]
pub struct Faults {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Canned answers for the next requests, each with how many times it fires.
    canned: Vec<(Endpoint, usize, Canned)>,
    timeout_after_create: usize,
    empty_lists: usize,
    stuck_creates: usize,
    revoked: bool,
    full_regions: BTreeSet<String>,
}

/// An answer given instead of the real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canned {
    /// 429 `rate limit exceeded`, with `Retry-After: secs` when given (whether Fly sends it
    /// is UNVERIFIED, reference §1, so by default it does not).
    Throttle(Option<u64>),
    /// This status with `{"error": …}`.
    Status(u16),
}

impl Faults {
    /// The next `n` requests to `on` answer 429 (reference §1: rate limits).
    pub fn throttle(&self, on: Endpoint, n: usize, retry_after_secs: Option<u64>) {
        let canned = Canned::Throttle(retry_after_secs);
        self.state.lock().unwrap().canned.push((on, n, canned));
    }

    /// The next `n` requests to `on` answer `status` (a 5xx; reference §8.10).
    pub fn server_error(&self, on: Endpoint, n: usize, status: u16) {
        let canned = Canned::Status(status);
        self.state.lock().unwrap().canned.push((on, n, canned));
    }

    /// The next `n` creates make (and launch) their machine, then answer 408
    /// `deadline_exceeded` (reference §1: "a 408 on create is ambiguous").
    pub fn timeout_after_create(&self, n: usize) {
        self.state.lock().unwrap().timeout_after_create += n;
    }

    /// The next `n` list calls answer `[]` though machines exist (reference §1: the flaps
    /// empty-list bug).
    pub fn empty_lists(&self, n: usize) {
        self.state.lock().unwrap().empty_lists += n;
    }

    /// The next `n` created machines stay `created` for ever (reference §2.1: one sat in
    /// `created` for 2 h 20 m), so a wait for `started` answers 408.
    pub fn stuck_in_created(&self, n: usize) {
        self.state.lock().unwrap().stuck_creates += n;
    }

    /// While `revoked`, every API request answers 401, whatever its token.
    pub fn revoke_token(&self, revoked: bool) {
        self.state.lock().unwrap().revoked = revoked;
    }

    /// While `full`, creates in `region` answer 422 `insufficient_capacity` (reference §2.1).
    pub fn no_capacity(&self, region: &str, full: bool) {
        let mut state = self.state.lock().unwrap();
        if full {
            state.full_regions.insert(region.to_string());
        } else {
            state.full_regions.remove(region);
        }
    }

    /// Clears every switch.
    pub fn clear(&self) {
        *self.state.lock().unwrap() = State::default();
    }

    pub(super) fn take_canned(&self, endpoint: Endpoint) -> Option<Canned> {
        let mut state = self.state.lock().unwrap();
        let slot = state
            .canned
            .iter_mut()
            .find(|(on, n, _)| *n > 0 && (*on == Endpoint::Any || *on == endpoint))?;
        slot.1 -= 1;
        let canned = slot.2;
        state.canned.retain(|(_, n, _)| *n > 0);
        Some(canned)
    }

    pub(super) fn take_timeout_after_create(&self) -> bool {
        take(&mut self.state.lock().unwrap().timeout_after_create)
    }

    pub(super) fn take_empty_list(&self) -> bool {
        take(&mut self.state.lock().unwrap().empty_lists)
    }

    pub(super) fn take_stuck(&self) -> bool {
        take(&mut self.state.lock().unwrap().stuck_creates)
    }

    pub(super) fn revoked(&self) -> bool {
        self.state.lock().unwrap().revoked
    }

    pub(super) fn region_full(&self, region: &str) -> bool {
        self.state.lock().unwrap().full_regions.contains(region)
    }
}

fn take(count: &mut usize) -> bool {
    let fired = *count > 0;
    *count = count.saturating_sub(1);
    fired
}
