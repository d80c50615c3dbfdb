//! Command-line shapes (argh). Raw values only: `config.rs` validates them and adds the
//! environment.

use argh::FromArgs;

/// Run a coding agent on a remote machine and stream its terminal to yours.
#[derive(FromArgs, Debug)]
pub struct Catty {
    #[argh(subcommand)]
    pub command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Exec(ExecArgs),
    Version(VersionArgs),
}

/// Run the session runtime: one PTY session served over HTTP and WebSocket (what a machine
/// runs; also installed as `catty-exec-runtime`).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "exec")]
pub struct ExecArgs {
    /// address to listen on [env: CATTY_EXEC_ADDR] (default 0.0.0.0:8080; port 0 picks a free
    /// port, printed on stdout as `listening on ADDR`)
    #[argh(option)]
    pub addr: Option<String>,

    /// directory the upload lands in and the program starts in [env: CATTY_WORKSPACE]
    /// (default /workspace)
    #[argh(option)]
    pub workspace: Option<String>,

    /// end the session after this many seconds [env: CATTY_TTL_SEC] (default: no limit)
    #[argh(option)]
    pub ttl_sec: Option<u64>,

    /// keep the final output readable this long after the program exits [env:
    /// CATTY_GRACE_SEC] (default 60)
    #[argh(option)]
    pub grace_sec: Option<u64>,

    /// accept clients without a token; for experiments on a trusted machine only (otherwise
    /// the token comes from CONNECT_TOKEN)
    #[argh(switch)]
    pub insecure_no_token: bool,

    /// the command to run [env: CATTY_CMD, a JSON array or a shell command line] (default:
    /// the agent of CATTY_AGENT, or a login shell)
    #[argh(positional, greedy)]
    pub command: Vec<String>,
}

/// Print catty's version.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "version")]
pub struct VersionArgs {}
