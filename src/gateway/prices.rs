//! List prices (SKELETON: the quota's implementation fills the table): what a request is
//! estimated to cost before it is forwarded, and what its reported usage costs, in
//! micro-dollars.

#![allow(dead_code)] // Until the gateway uses it (issue 18, in progress).

use super::usage::{Provider, Usage};

/// The most a request of `provider` with this body can cost: its input (from the body's
/// size) and its output cap (`max_tokens` or the like, else a default), at list price.
pub(crate) fn estimate(provider: Provider, body: &[u8]) -> i64 {
    let _ = (provider, body);
    0
}

/// What `usage` of `model` costs at list price.
pub(crate) fn units(provider: Provider, model: Option<&str>, usage: &Usage) -> i64 {
    let _ = (provider, model, usage);
    0
}
