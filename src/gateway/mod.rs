//! The gateway (`catty gateway`, issue 18): the one process that will hold the providers'
//! keys, forward the agents' requests and meter them. Built so far: the meter, which reads
//! each answer's usage on the side of the stream (`usage.rs`, over the server-sent events
//! reader `sse.rs`). The mode itself, its routes and the quota come next.

mod ledger;
mod prices;
mod sse;
pub mod usage;

#[doc(hidden)]
pub use ledger::testing as ledger_testing;
