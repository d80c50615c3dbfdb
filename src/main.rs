//! Entry point: picks the mode from the name the binary was called by or its first argument,
//! runs it, and turns the outcome into an exit code. Only this file prints errors.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use argh::FromArgs;
use catty::cli::{self, ApiArgs, Catty, ExecArgs, GatewayArgs, Subcommand};
use catty::config::{
    ApiConfig, ClientConfig, Env, ExecConfig, GatewayConfig, Listen, Logging, NewOptions,
    UsageError,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let invoked = args
        .first()
        .and_then(|a| Path::new(a).file_name()?.to_str())
        .unwrap_or("catty")
        .to_string();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let parsed = match invoked.as_str() {
        "catty-exec-runtime" => ExecArgs::from_args(&[&invoked], &rest).map(Subcommand::Exec),
        "catty-api" => ApiArgs::from_args(&[&invoked], &rest).map(Subcommand::Api),
        "catty-gateway" => GatewayArgs::from_args(&[&invoked], &rest).map(Subcommand::Gateway),
        _ if rest.is_empty() => {
            let _ = writeln!(std::io::stderr(), "{}", cli::USAGE);
            return ExitCode::from(2);
        }
        _ => {
            let normalized = cli::normalize(&rest);
            let words: Vec<&str> = normalized.iter().map(String::as_str).collect();
            Catty::from_args(&[&invoked], &words)
                .map(|catty| catty.command)
                .map_err(|mut early| {
                    if early.status.is_err() {
                        early.output = cli::explain(&normalized, &early.output);
                    }
                    early
                })
        }
    };
    let command = match parsed {
        Ok(command) => command,
        Err(early) => {
            let (mut out, code): (Box<dyn Write>, _) = match early.status {
                Ok(()) => (Box::new(std::io::stdout()), ExitCode::SUCCESS),
                Err(()) => (Box::new(std::io::stderr()), ExitCode::from(2)),
            };
            let _ = writeln!(out, "{}", early.output.trim_end());
            return code;
        }
    };
    // Every command that prints but `new` and `connect`, which own the terminal, and `logs`,
    // which ends with success on a broken pipe by itself (`main` takes it for success).
    if !matches!(
        command,
        Subcommand::New(_)
            | Subcommand::Connect(_)
            | Subcommand::Logs(_)
            | Subcommand::Api(_)
            | Subcommand::Exec(_)
            | Subcommand::Gateway(_)
    ) {
        end_quietly_on_a_closed_pipe();
    }
    let env = Env::process();
    let result = match command {
        Subcommand::Exec(args) => exec(args, &env),
        Subcommand::Api(args) => api(args, &env),
        Subcommand::Gateway(args) => gateway(args, &env),
        Subcommand::Version(_) => version(),
        // A hosted API is sent no credentials: which API answers decides what is read.
        Subcommand::New(args) => client(&env, |config| {
            let options = NewOptions::new(args, &env, config.hosted.is_some());
            async move { catty::client::new(&config, options?).await }
        }),
        Subcommand::Connect(args) => client(&env, |config| async move {
            catty::client::connect(&config, &args.session, args.watch).await
        }),
        // For shell completion: nothing but labels, and nothing at all when that fails.
        Subcommand::List(args) if args.labels => {
            let labels = client(&env, |config| async move {
                catty::client::labels(&config, args.all).await
            });
            Ok(labels.unwrap_or(0))
        }
        Subcommand::Completions(args) => completions(&args.shell),
        Subcommand::List(args) => client(&env, |config| async move {
            catty::client::list(&config, args.json, args.all).await
        }),
        Subcommand::Logs(args) => client(&env, |config| async move {
            let options = catty::client::LogsOptions {
                follow: args.follow,
                since: args.since,
                tail: args.tail,
                raw: args.raw,
            };
            catty::client::logs(&config, &args.session, options).await
        }),
        Subcommand::Pull(args) => client(&env, |config| async move {
            catty::client::pull(&config, &args.session).await
        }),
        Subcommand::Diff(args) => client(&env, |config| async move {
            catty::client::diff(&config, &args.session, args.stat).await
        }),
        Subcommand::Stop(args) => client(&env, |config| async move {
            catty::client::stop(&config, &args.session, args.discard).await
        }),
        Subcommand::Rm(args) => client(&env, |config| async move {
            catty::client::rm(&config, &args.session).await
        }),
        Subcommand::Extend(args) => match catty::config::ExtendOptions::new(args) {
            Ok(options) => client(&env, |config| async move {
                catty::client::extend(&config, options).await
            }),
            Err(e) => Err(e.into()),
        },
        Subcommand::StopAll(args) => client(&env, |config| async move {
            catty::client::stop_all(&config, args.yes_i_mean_it).await
        }),
        Subcommand::Login(args) => client(&env, |config| async move {
            catty::client::login(&config, args.api.as_deref()).await
        }),
        Subcommand::Logout(args) => client(&env, |config| async move {
            catty::client::logout(&config, args.all).await
        }),
        Subcommand::Whoami(_) => client(&env, |config| async move {
            catty::client::whoami(&config).await
        }),
        Subcommand::Upgrade(_) => client(&env, |config| async move {
            catty::client::upgrade(&config).await
        }),
        Subcommand::Usage(args) => client(&env, |config| async move {
            catty::client::usage(&config, args.json).await
        }),
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) if caused_by(&e, is_broken_pipe) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed stderr (`catty new 2>&1 | head -1`) must not turn the error into a panic.
            let _ = writeln!(std::io::stderr(), "catty: {e:#}");
            let usage = caused_by(&e, |cause| cause.is::<UsageError>());
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn version() -> anyhow::Result<i32> {
    writeln!(std::io::stdout(), "catty {}", env!("CARGO_PKG_VERSION"))?;
    Ok(0)
}

/// `catty completions SHELL`: the script on stdout.
fn completions(shell: &str) -> anyhow::Result<i32> {
    let Some(script) = cli::completion_script(shell) else {
        let shells = cli::COMPLETION_SHELLS;
        return Err(UsageError(format!("no completions for {shell:?}; say {shells}")).into());
    };
    std::io::stdout().write_all(script.as_bytes())?;
    Ok(0)
}

/// Runs a client command on a single-threaded runtime. Client logs go to `CATTY_LOG_FILE`
/// only: never into the user's terminal.
fn client<F, Fut>(env: &Env, command: F) -> anyhow::Result<i32>
where
    F: FnOnce(ClientConfig) -> Fut,
    Fut: Future<Output = anyhow::Result<i32>> + Send + 'static,
{
    let config = ClientConfig::new(env)?;
    if let Some(path) = &config.log.file {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(&config.log.filter))
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The command runs as a task: a task woken by another (a keystroke, a frame) runs at
    // once, where the future given to `block_on` would cost a look at epoll first.
    runtime.block_on(async {
        match tokio::spawn(command(config)).await {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    })
}

fn exec(args: ExecArgs, env: &Env) -> anyhow::Result<i32> {
    let config = ExecConfig::new(args, env)?;
    init_logging(&config.log);
    // One thread: the hand-offs between worker threads cost half the runtime's CPU per byte
    // of output (BENCHMARKS.md). Blocking work (unpacking an upload) has its own threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Taken before the runtime opens descriptors of its own, which a wrong number could name.
    let inherited = match config.listen {
        Listen::Fd(fd) => Some(inherited_listener(fd)?),
        Listen::Addr(_) => None,
    };
    runtime.block_on(async {
        let listener = match (inherited, config.listen) {
            (Some(listener), _) => tokio::net::TcpListener::from_std(listener)?,
            (None, Listen::Addr(addr)) => listen(addr, "").await?,
            (None, Listen::Fd(_)) => unreachable!("taken above"),
        };
        catty::exec::run(config, listener, terminated()).await
    })?;
    Ok(0)
}

fn api(args: ApiArgs, env: &Env) -> anyhow::Result<i32> {
    let config = ApiConfig::new(args, env)?;
    init_logging(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = listen(config.addr, " (is another catty api running?)").await?;
        catty::api::run(config, listener, terminated()).await
    })?;
    Ok(0)
}

fn gateway(args: GatewayArgs, env: &Env) -> anyhow::Result<i32> {
    let config = GatewayConfig::new(args, env)?;
    init_logging(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = listen(config.listen, "").await?;
        catty::gateway::run(config, listener, terminated()).await
    })?;
    Ok(0)
}

/// Binds a server's address and prints `listening on ADDR` on stdout: whoever started it
/// (the local provider, the tests) reads the port it got from that line.
async fn listen(addr: SocketAddr, hint: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}{hint}: {e}"))?;
    let mut out = std::io::stdout();
    writeln!(out, "listening on {}", listener.local_addr()?)?;
    out.flush()?;
    Ok(listener)
}

/// Takes the listening socket our parent left at `fd` and prints `listening on ADDR` as
/// [`listen`] does. The program the runtime starts does not inherit it.
fn inherited_listener(fd: i32) -> anyhow::Result<std::net::TcpListener> {
    use std::os::fd::FromRawFd;
    let not_a_socket = |e| anyhow::anyhow!("--listen-fd {fd}: not a listening socket: {e}");
    // SAFETY: nothing else in this process owns `fd`: it was inherited for this one use and
    // is taken once, at start, before anything else opens a descriptor. If it is not open,
    // `local_addr` fails below.
    #[allow(unsafe_code)]
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    let addr = listener.local_addr().map_err(not_a_socket)?;
    rustix::io::fcntl_setfd(&listener, rustix::io::FdFlags::CLOEXEC)?;
    listener.set_nonblocking(true)?;
    let mut out = std::io::stdout();
    writeln!(out, "listening on {addr}")?;
    out.flush()?;
    Ok(listener)
}

/// For commands that print: when the reader of a pipe goes away (`catty list | head -1`),
/// end at once and quietly as `ls` does. Rust ignores SIGPIPE, and a write would fail with `EPIPE`.
fn end_quietly_on_a_closed_pipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: called at start, before any thread exists; SIG_DFL installs no handler code.
    #[allow(unsafe_code)]
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// Resolves at SIGTERM (how a machine is stopped) or SIGINT (Ctrl-C when run by hand).
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// A server logs to stderr, filtered as [`Logging::filter`] says.
fn init_logging(log: &Logging) {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&log.filter))
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal; a log file gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Whether `e` or anything in its cause chain is what `test` looks for.
fn caused_by(e: &anyhow::Error, test: impl Fn(&(dyn std::error::Error + 'static)) -> bool) -> bool {
    e.chain().any(test)
}

fn is_broken_pipe(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
