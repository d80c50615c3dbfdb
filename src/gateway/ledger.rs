//! The gateway's books (SKELETON: the contract between the proxy and the quota; the quota's
//! implementation replaces the bodies, keeping the signatures): before a request is forwarded
//! its estimate is held against the user's quota ([`Ledger::hold`]); once the answer ended,
//! the hold is settled with what the provider reported ([`Ledger::settle`]).

#![allow(dead_code)] // Until the gateway and billing use it (issue 18, in progress).

use super::usage::{Provider, Usage};

/// The books: the database, and the limits of each plan.
#[derive(Clone)]
pub(crate) struct Ledger {}

/// What one request holds against its user's quota until it is settled.
#[derive(Debug)]
pub(crate) struct Hold {
    pub user: String,
    pub session: String,
    pub units: i64,
}

/// Why a request was not let through.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The user's quota cannot hold the estimate: answered 402.
    OverQuota { used: i64, limit: i64 },
}

/// What one answer cost, as the provider reported it (or as far as it got).
#[derive(Debug)]
pub(crate) struct Charge {
    pub provider: Provider,
    pub model: Option<String>,
    /// The upstream's request id (Anthropic's `request-id`, OpenAI's `x-request-id`), else
    /// one of the gateway's own: the usage row is written once per id.
    pub request_id: String,
    pub usage: Usage,
    /// False when the answer ended before the provider reported its usage.
    pub reported: bool,
}

impl Ledger {
    /// Holds `estimate` micro-dollars of `user`'s quota for a request of `session`.
    pub(crate) async fn hold(
        &self,
        user: &str,
        session: &str,
        estimate: i64,
    ) -> anyhow::Result<Result<Hold, Refusal>> {
        Ok(Ok(Hold {
            user: user.into(),
            session: session.into(),
            units: estimate,
        }))
    }

    /// Settles `hold` with `charge`: the usage row (once per request id), the quota's `used`
    /// up by its price and `reserved` down by the hold, in one transaction.
    pub(crate) async fn settle(&self, hold: Hold, charge: Charge) -> anyhow::Result<()> {
        let _ = (hold, charge);
        Ok(())
    }
}
