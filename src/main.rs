//! Entry point: picks the mode from the name the binary was called by or its first argument,
//! runs it, and turns the outcome into an exit code. Only this file prints errors.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use argh::FromArgs;
use catty::cli::{ApiArgs, Catty, Command, ExecArgs};
use catty::config::{ApiConfig, ClientConfig, ExecConfig, NewOptions, UsageError};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let invoked = args
        .first()
        .and_then(|a| Path::new(a).file_name()?.to_str())
        .unwrap_or("catty")
        .to_string();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let parsed = match invoked.as_str() {
        "catty-exec-runtime" => ExecArgs::from_args(&[&invoked], &rest).map(Command::Exec),
        "catty-api" => ApiArgs::from_args(&[&invoked], &rest).map(Command::Api),
        _ => Catty::from_args(&[&invoked], &rest).map(|catty| catty.command),
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
    let result = match command {
        Command::Exec(args) => exec(args),
        Command::Api(args) => api(args),
        Command::Version(_) => version(),
        Command::New(args) => {
            client(
                |config| async move { catty::client::new(&config, NewOptions::new(args)?).await },
            )
        }
        Command::Connect(args) => client(|config| async move {
            catty::client::connect(&config, &args.session, args.watch).await
        }),
        Command::List(args) => {
            client(|config| async move { catty::client::list(&config, args.json).await })
        }
        Command::Stop(args) => {
            client(|config| async move { catty::client::stop(&config, &args.session).await })
        }
        Command::StopAll(args) => {
            client(
                |config| async move { catty::client::stop_all(&config, args.yes_i_mean_it).await },
            )
        }
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("catty: {e:#}");
            ExitCode::from(if e.is::<UsageError>() { 2 } else { 1 })
        }
    }
}

fn version() -> anyhow::Result<i32> {
    writeln!(std::io::stdout(), "catty {}", env!("CARGO_PKG_VERSION"))?;
    Ok(0)
}

/// Runs a client command on a single-threaded runtime. Client logs go to `CATTY_LOG_FILE`
/// only: never into the user's terminal.
fn client<F, Fut>(command: F) -> anyhow::Result<i32>
where
    F: FnOnce(ClientConfig) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<i32>> + Send + 'static,
{
    let config = ClientConfig::new(|k| std::env::var(k).ok())?;
    if let Ok(path) = std::env::var("CATTY_LOG_FILE") {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(log_filter()))
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

fn exec(args: ExecArgs) -> anyhow::Result<i32> {
    let config = ExecConfig::new(args, |k| std::env::var(k).ok())?.with_child_env(std::env::vars());
    init_logging();
    // One thread: the hand-offs between worker threads cost half the runtime's CPU per byte
    // of output (BENCHMARKS.md). Blocking work (unpacking an upload) has its own threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.addr))?;
        // The local provider reads the bound port from this line.
        println!("listening on {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        catty::exec::run(config, listener, terminated()).await
    })?;
    Ok(0)
}

fn api(args: ApiArgs) -> anyhow::Result<i32> {
    let config = ApiConfig::new(args, |k| std::env::var(k).ok())?;
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {} (is another catty api running?): {e}",
                    config.addr
                )
            })?;
        println!("listening on {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        catty::api::run(config, listener, terminated()).await
    })?;
    Ok(0)
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

/// Logs to stderr: info by default, `CATTY_DEBUG=1` for debug, `CATTY_LOG` for a filter.
fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(log_filter()))
        .with_writer(std::io::stderr)
        .init();
}

fn log_filter() -> String {
    match (std::env::var("CATTY_LOG"), std::env::var("CATTY_DEBUG")) {
        (Ok(filter), _) => filter,
        (_, Ok(debug)) if debug == "1" => "catty=debug,info".to_string(),
        _ => "info".to_string(),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
