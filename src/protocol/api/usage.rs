//! The hosted API's account of what a user spent (`catty usage`):
//!
//! | method and path | body | answer |
//! | --- | --- | --- |
//! | `GET /v1/usage` | | [`UsageReport`] (the local daemon: `404`, nothing is metered there) |
//!
//! Amounts are list-price micro-dollars (a million is one dollar), what the gateway holds and
//! charges (`gateway/prices.rs`); a period is a calendar month in UTC. Token counters are the
//! providers' own, raw: input not read from a cache nor written to one, input written to the
//! cache, input read from it, and output (thinking included).

use serde::{Deserialize, Serialize};

pub const USAGE_PATH: &str = "/v1/usage";

/// This period's use of one user's budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    /// `free` or `paid`: the plan now (from the subscription's status, within seconds).
    pub plan: String,
    /// The period's first instant and the next period's, unix seconds.
    pub period_start: u64,
    pub period_end: u64,
    /// Charged for requests that ended this period, in micro-dollars.
    pub used_micro_usd: i64,
    /// Held by requests in flight (their estimates), in micro-dollars: a request is let
    /// through only while `used + reserved + its estimate` fits the limit.
    pub reserved_micro_usd: i64,
    /// The plan's budget for the period, in micro-dollars.
    pub limit_micro_usd: i64,
    /// This period's requests by provider and model, the costliest first.
    pub models: Vec<ModelUsage>,
}

/// The requests of one model in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelUsage {
    /// `anthropic`, `openai` or `gemini`.
    pub provider: String,
    /// As the provider named it; absent when the answer named none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub requests: u64,
    pub input_tokens: u64,
    pub cache_write_tokens: u64,
    pub cache_read_tokens: u64,
    pub output_tokens: u64,
    /// What they cost, in micro-dollars.
    pub cost_micro_usd: i64,
}
