//! The program the session runs: its argv, working directory and environment, and the agent
//! whose profile is prepared before it starts. The agent profiles check and extend it
//! (`agents.rs`); the process task spawns it (`process.rs`).

use std::path::PathBuf;

use crate::protocol::Agent;

/// What the process task needs to start the program.
pub(super) struct Command {
    /// Whose configuration to prepare before the program starts.
    pub agent: Agent,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
}
