//! The gateway (`catty gateway`, issue 18): the one process that will hold the providers'
//! keys, forward the agents' requests and meter them. Built so far: the meter, which reads
//! each answer's usage on the side of the stream (`usage.rs`, over the server-sent events
//! reader `sse.rs`), the list prices (`prices.rs`) and the quota's books (`ledger.rs`). The
//! mode itself and its routes come next.

mod ledger;
mod prices;
mod sse;
pub mod usage;

/// The ledger for the integration tests (`tests/gateway_ledger.rs`); not an API.
#[doc(hidden)]
pub use ledger::testing as ledger_testing;
