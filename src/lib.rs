//! catty: run a coding agent on a remote machine and stream its terminal to yours.
//! One binary with three modes (client, api, exec) that share the `protocol` module.
#![deny(unsafe_code)]

pub mod api;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
mod db;
pub mod exec;
pub mod gateway;
pub mod hex;
pub mod llm_token;
pub mod locks;
pub mod net;
pub mod private_dir;
pub mod process_tree;
pub mod protocol;
pub mod random;
pub mod task;
pub mod upgrade_link;
pub mod version;
