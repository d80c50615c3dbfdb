//! The integration tests: one crate, so the helpers in `common/` compile once, with a module
//! per area. They drive the real binary (`CARGO_BIN_EXE_catty`) and real terminals.

// A test crate has no public API: `pub` here only shares helpers between its own modules.
#![allow(unreachable_pub)]

mod common;

mod api_billing;
mod api_credentials;
mod api_extend;
mod api_hosted;
mod api_http;
mod api_login;
mod api_restart;
mod api_sandbox;
mod api_sessions;
mod boundary;
mod cli;
mod client_credentials;
mod client_cuts;
mod client_e2e;
mod client_link;
mod client_login;
mod client_logs;
mod client_outage;
mod client_pacing;
mod client_retry;
mod client_sync;
mod client_upload;
mod client_usage;
mod exec_agents;
mod exec_hold;
mod exec_hostile;
mod exec_http;
mod exec_stream;
mod exec_sync;
mod exec_terminal;
mod exec_transcript;
mod exec_ttl;
mod fly_fake;
mod fly_provider;
mod gateway;
mod gateway_ledger;
mod git_upload;
mod image_layout;
mod sandbox_reach;
mod sync_e2e;
mod sync_retain;
