//! The runtime (`catty exec`): hosts one session, a program on a PTY, for clients that attach
//! over WebSocket. It ends when the program has exited, the grace period is over and the
//! workspace's work was pulled (at most the retention time), at the TTL (which `POST /ttl`
//! moves), or on SIGTERM; its exit is what ends the machine.

mod agents;
mod buffer;
mod command;
mod deadline;
mod git;
mod logs;
mod process;
mod pty;
mod reaper;
mod screen;
mod server;
mod session;
mod spool;
mod stream;
mod sync;
mod transcript;
pub mod unpack;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::config::ExecConfig;
use crate::net::Proven;
use server::App;
use session::Session;

/// Serves one session on `listener` until it is over. `terminate` resolving (SIGTERM) ends
/// the session at once: clients get an `error`, the program is hung up.
pub async fn run(
    config: ExecConfig,
    listener: TcpListener,
    terminate: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::fs::create_dir_all(&config.workspace).await?;
    reaper::adopt_orphans();
    // Output must flow even without a disk for it: a transcript that cannot be made is a
    // warning.
    let transcript = match &config.transcript {
        Some(dir) => transcript::Transcript::open(dir, config.transcript_bytes)
            .inspect_err(|e| tracing::warn!("no transcript: {e:#}"))
            .unwrap_or_else(|_| transcript::Transcript::disabled()),
        None => transcript::Transcript::disabled(),
    };
    let session = Session::new(config.buffer_bytes, transcript);
    let app = Arc::new(App {
        session: session.clone(),
        token: config.token.clone(),
        workspace: config.workspace.clone(),
        child_env: config.child_env.clone(),
        sync: sync::SyncBack::new(config.workspace.clone()),
        deadline: deadline::Deadline::new(config.ttl),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let server = crate::net::serve(
        listener,
        async { stopped.await.unwrap_or(()) },
        |stream, proven| connection(app.clone(), stream, proven),
    );
    let lifecycle = async {
        lifecycle(&session, &app, &config, terminate).await;
        let _ = stop.send(());
    };
    tokio::join!(server, lifecycle);
    reaper::kill_descendants();
    Ok(())
}

/// Runs the program and decides when the session is over.
async fn lifecycle(
    session: &Arc<Session>,
    app: &App,
    config: &ExecConfig,
    terminate: impl Future<Output = ()>,
) {
    let sync = &app.sync;
    let command = command::Command {
        agent: config.agent,
        argv: config.command.clone(),
        cwd: config.workspace.clone(),
        env: config.child_env.clone(),
    };
    let process = process::run(session.clone(), command, sync);
    // The deadline moves with `POST /ttl`.
    let expiry = app.deadline.passed();
    tokio::pin!(process, expiry, terminate);
    let reason = tokio::select! {
        result = &mut process => {
            if let Err(e) = result {
                tracing::error!("{e}");
            }
            // Keep the final output and status for clients that reconnect, and the work
            // until it is pulled.
            tokio::select! {
                () = retained(sync, config) => return,
                () = &mut expiry => ttl_message(&app.deadline),
                () = &mut terminate => return,
            }
        }
        () = &mut expiry => ttl_message(&app.deadline),
        () = &mut terminate => "the session's machine is shutting down".to_string(),
    };
    tracing::info!("ending the session: {reason}");
    session.end(reason);
    process::hang_up(session, &mut process).await;
}

/// After the program's exit: the grace period, then as long as the workspace holds work
/// not yet pulled, up to the retention time from the exit.
async fn retained(sync: &sync::SyncBack, config: &ExecConfig) {
    tokio::time::sleep(config.grace).await;
    let rest = config.retain.saturating_sub(config.grace);
    if tokio::time::timeout(rest, sync.until_pulled())
        .await
        .is_err()
    {
        let secs = config.retain.as_secs();
        tracing::warn!("leaving work that was never pulled: the retention of {secs} s is over");
    }
}

fn ttl_message(deadline: &deadline::Deadline) -> String {
    let secs = deadline
        .total()
        .map_or(0, |ttl| ttl.as_secs_f64().round() as u64);
    format!("session expired: its time to live of {secs} s ran out")
}

/// One TCP connection: HTTP requests, then the WebSocket session if `/connect` upgraded it.
/// `proven` is set once a request shows the token.
async fn connection(app: Arc<App>, stream: TcpStream, proven: Proven) {
    let session = app.session.clone();
    // The deadline as it stands when a WebSocket starts (the receiver sees every later move).
    let deadline = app.deadline.subscribe();
    let (upgrades, mut upgraded) = mpsc::channel(1);
    let service = service_fn(move |req| {
        let (app, upgrades, proven) = (app.clone(), upgrades.clone(), proven.clone());
        async move { Ok::<_, Infallible>(server::route(app, req, upgrades, &proven).await) }
    });
    let http = crate::net::http::server().serve_connection(TokioIo::new(stream), service);
    if let Err(e) = http.with_upgrades().await {
        tracing::debug!("http connection ended: {e}");
    }
    if let Ok(upgrade) = upgraded.try_recv() {
        match upgrade.socket.await {
            Ok(ws) => stream::serve(session, deadline, ws, upgrade.params).await,
            Err(e) => tracing::debug!("websocket upgrade failed: {e}"),
        }
    }
}
