//! Command-line shapes (argh). Raw values only: `config/` validates them and adds the
//! environment.

mod completions;
mod conventions;

use argh::FromArgs;

pub use completions::{SHELLS as COMPLETION_SHELLS, script as completion_script};
pub use conventions::{USAGE, explain, normalize};

/// Run a coding agent on a remote machine and stream its terminal to yours.
#[derive(FromArgs, Debug)]
pub struct Catty {
    #[argh(subcommand)]
    pub command: Subcommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Subcommand {
    New(NewArgs),
    Connect(ConnectArgs),
    List(ListArgs),
    Logs(LogsArgs),
    Pull(PullArgs),
    Diff(DiffArgs),
    Stop(StopArgs),
    Rm(RmArgs),
    Extend(ExtendArgs),
    StopAll(StopAllArgs),
    Version(VersionArgs),
    Completions(CompletionsArgs),
    Login(LoginArgs),
    Logout(LogoutArgs),
    Whoami(WhoamiArgs),
    Upgrade(UpgradeArgs),
    Usage(UsageArgs),
    Api(ApiArgs),
    Exec(ExecArgs),
    Gateway(GatewayArgs),
}

/// Start a session: create a machine, upload this directory, run the agent and attach.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "new")]
pub struct NewArgs {
    /// the agent to run: claude (default), codex, gemini or shell
    #[argh(option)]
    pub agent: Option<String>,

    /// do not upload the current directory
    #[argh(switch)]
    pub no_upload: bool,

    /// do not bring the session's changes back while attached (catty pull still does)
    #[argh(switch)]
    pub no_sync: bool,

    /// region of the machine (Fly.io provider)
    #[argh(option)]
    pub region: Option<String>,

    /// CPUs of the machine (Fly.io provider)
    #[argh(option, from_str_fn(at_least_one))]
    pub cpus: Option<u32>,

    /// memory of the machine in MB (Fly.io provider)
    #[argh(option, from_str_fn(at_least_one))]
    pub memory_mb: Option<u32>,

    /// end the session after this long, e.g. 90m or 2h (default 2h)
    #[argh(option)]
    pub ttl: Option<String>,

    /// run this command instead of an agent (after `--`)
    #[argh(positional, greedy)]
    pub command: Vec<String>,
}

/// Reattach to a running session.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "connect")]
pub struct ConnectArgs {
    /// the session's label or id
    #[argh(positional)]
    pub session: String,

    /// watch only: nothing you type reaches the session
    #[argh(switch)]
    pub watch: bool,
}

/// List the live sessions with their label, state, agent (or command), age, provider and
/// region.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
pub struct ListArgs {
    /// print JSON instead of a table
    #[argh(switch)]
    pub json: bool,

    /// also the sessions that ended (kept a day by default: catty api --keep-ended)
    #[argh(switch)]
    pub all: bool,

    /// only the labels, one a line, for shell completion: starts no daemon, prints nothing
    /// on error
    #[argh(switch, hidden_help)]
    pub labels: bool,
}

/// Print a session's output: what its program wrote to the terminal, as text (escape
/// sequences removed) unless --raw. The runtime keeps the last 1 GiB by default.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "logs")]
pub struct LogsArgs {
    /// the session's label or id
    #[argh(positional)]
    pub session: String,

    /// follow: print new output as it comes, until the program exits
    #[argh(switch, short = 'f')]
    pub follow: bool,

    /// start at this byte offset of the output (default: the oldest byte kept)
    #[argh(option)]
    pub since: Option<u64>,

    /// print only the last N lines (of the text, or of the raw bytes with --raw)
    #[argh(option)]
    pub tail: Option<usize>,

    /// print the bytes as the program wrote them, escape sequences included
    #[argh(switch)]
    pub raw: bool,
}

/// Bring a session's work back: its files into the directory it started from (conflicts
/// are kept aside, never written over your changes) and its commits as the branch
/// catty/<label>.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "pull")]
pub struct PullArgs {
    /// the session's label or id
    #[argh(positional)]
    pub session: String,
}

/// Show the session's changes that this directory does not have yet, applying nothing.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "diff")]
pub struct DiffArgs {
    /// the session's label or id
    #[argh(positional)]
    pub session: String,

    /// a summary of the changed files (git diff --stat)
    #[argh(switch)]
    pub stat: bool,
}

/// Stop a session and destroy its machine.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "stop")]
pub struct StopArgs {
    /// the session's label or id
    #[argh(positional)]
    pub session: String,

    /// stop without pulling the session's work first
    #[argh(switch)]
    pub discard: bool,
}

/// Forget a session that ended (catty list --all shows them).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "rm")]
pub struct RmArgs {
    /// the session's label or id
    #[argh(positional)]
    pub session: String,
}

/// Give a running session more time before its TTL ends it, e.g. `catty extend LABEL 1h`.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "extend")]
pub struct ExtendArgs {
    /// the session's label or id
    #[argh(positional)]
    pub session: String,

    /// how much more time, with its unit: 30m, 2h, 1d
    #[argh(positional)]
    pub duration: String,
}

/// Stop every session and destroy every catty machine of the provider, including ones this
/// computer has no record of.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "stop-all-sessions-dangerously")]
pub struct StopAllArgs {
    /// confirm that every session should end
    #[argh(switch)]
    pub yes_i_mean_it: bool,
}

/// Run the control daemon in the foreground (other commands start it in the background when
/// it is not running; also installed as `catty-api`).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "api")]
pub struct ApiArgs {
    /// where machines run: local (default without FLY_API_TOKEN) or fly
    #[argh(option)]
    pub provider: Option<String>,

    /// address to listen on [env: CATTY_API_ADDR] (default 127.0.0.1:4815)
    #[argh(option)]
    pub addr: Option<String>,

    /// run local sessions without the bubblewrap sandbox
    #[argh(switch)]
    pub no_sandbox: bool,

    /// forget ended sessions this long after their end, e.g. 30m or 2d [env:
    /// CATTY_KEEP_ENDED] (default 24h)
    #[argh(option)]
    pub keep_ended: Option<String>,

    /// serve many users from this PostgreSQL database (hosted mode; needs CATTY_CONNECT_KEY;
    /// listens on 0.0.0.0:8080 unless --addr) [env: CATTY_DATABASE_URL]
    #[argh(option)]
    pub database_url: Option<String>,
}

/// Run the gateway: the one process that holds the providers' keys, forwarding the sessions'
/// requests to them and metering each against its user's quota (hosted mode; also installed
/// as `catty-gateway`). Needs CATTY_DATABASE_URL and CATTY_GATEWAY_KEY; keys from
/// CATTY_ANTHROPIC_KEYS, CATTY_OPENAI_KEYS, CATTY_GEMINI_KEYS.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "gateway")]
pub struct GatewayArgs {
    /// address to listen on [env: CATTY_GATEWAY_LISTEN] (default [::]:8080)
    #[argh(option)]
    pub listen: Option<String>,
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

    /// serve on this inherited listening socket instead of binding --addr (how the local
    /// provider starts a sandboxed runtime, whose network is its own)
    #[argh(option)]
    pub listen_fd: Option<i32>,

    /// directory the upload lands in and the program starts in [env: CATTY_WORKSPACE]
    /// (default /workspace)
    #[argh(option)]
    pub workspace: Option<String>,

    /// directory for the output transcript, kept outside the workspace [env:
    /// CATTY_TRANSCRIPT] (default: beside the workspace, WORKSPACE.transcript; its bound:
    /// CATTY_TRANSCRIPT_BYTES, default 1 GiB, 0 for none)
    #[argh(option)]
    pub transcript: Option<String>,

    /// end the session after this many seconds [env: CATTY_TTL_SEC] (default: no limit)
    #[argh(option)]
    pub ttl_sec: Option<u64>,

    /// keep the final output readable this long after the program exits [env:
    /// CATTY_GRACE_SEC] (default 60)
    #[argh(option)]
    pub grace_sec: Option<u64>,

    /// after the program exits, stay up at most this long while the workspace holds work not
    /// yet pulled [env: CATTY_RETAIN_SEC] (default 3600)
    #[argh(option)]
    pub retain_sec: Option<u64>,

    /// accept clients without a token; for experiments on a trusted machine only (otherwise
    /// the token comes from CONNECT_TOKEN)
    #[argh(switch)]
    pub insecure_no_token: bool,

    /// the command to run [env: CATTY_CMD, a JSON array or a shell command line] (default:
    /// the agent of CATTY_AGENT, or a login shell)
    #[argh(positional, greedy)]
    pub command: Vec<String>,
}

/// Log in to a hosted catty API (device flow: a code to approve in a browser).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "login")]
pub struct LoginArgs {
    /// the API, e.g. https://api.example.com; remembered for every command [env:
    /// CATTY_API_URL] (default: the one logged in to last)
    #[argh(option)]
    pub api: Option<String>,
}

/// Log out of the hosted API: revoke this computer's login there, then forget it here.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "logout")]
pub struct LogoutArgs {
    /// revoke every login of yours, on every computer
    #[argh(switch)]
    pub all: bool,
}

/// Show who you are logged in as to the hosted API.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "whoami")]
pub struct WhoamiArgs {}

/// Open a checkout in the browser to move to the paid plan of the hosted API.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "upgrade")]
pub struct UpgradeArgs {}
/// Show what this month's requests cost against your plan's budget on the hosted API, by
/// model.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "usage")]
pub struct UsageArgs {
    /// print JSON instead of a summary and a table
    #[argh(switch)]
    pub json: bool,
}

/// Print catty's version.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "version")]
pub struct VersionArgs {}

/// Print a shell completion script: source <(catty completions bash), or see the README for
/// zsh and fish.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "completions")]
pub struct CompletionsArgs {
    /// the shell: bash, zsh or fish
    #[argh(positional)]
    pub shell: String,
}

/// A count typed after a flag: a whole number, at least 1 (argh names the flag and the value).
fn at_least_one(value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number of at least 1".into()),
    }
}
