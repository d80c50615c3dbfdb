//! The control daemon (`catty api`): creates one machine per session through a provider,
//! keeps a durable session store, and serves the local HTTP API. `run` wires it up: the state
//! directory and token, the store, the reconcile at start, the sweep loop and the server.

mod auth;
mod billing;
mod create;
mod daemon;
mod db;
mod error;
mod extend;
#[cfg(test)]
mod fake_tests;
mod labels;
pub mod provider;
mod reconcile;
mod routes;
mod stop;
mod store;

use std::future::Future;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{ApiConfig, ProviderKind};
use crate::{private_dir, random};
use daemon::{Auth, Daemon};
use db::Db;
use provider::{Fly, Local, LocalOptions, Provider};
use store::{FileStore, Store};

/// Serves the daemon on `listener` until `shutdown` resolves. Sessions keep running after it
/// returns; the next start reconciles with them.
pub async fn run(
    config: ApiConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    private_dir::create(&config.state_dir)?;
    let (store, auth, presence, _lock) = match &config.hosted {
        // Held until we return: one daemon per state directory, whatever port it listens on.
        None => (
            Store::File(FileStore::open(&config.state_dir)?),
            Auth::Local(load_or_create_token(&config.state_dir)?),
            None,
            Some(lock_state_dir(&config.state_dir)?),
        ),
        Some(hosted) => {
            let db = Db::connect(&hosted.database_url, &hosted.connect_key).await?;
            let presence = db.announce().await?;
            tracing::info!(instance = presence.number, "announced this instance");
            let login = hosted
                .oidc
                .clone()
                .map(|oidc| Box::new(auth::Login::new(oidc)));
            if login.is_none() {
                tracing::warn!("no identity provider (CATTY_OIDC_ISSUER): nobody can log in");
            }
            // The gateway key signs the 402's upgrade links; billing verifies them with it.
            let gateway_key = config.gateway.as_ref().map(|g| g.gateway_key.clone());
            let billing = (hosted.billing.clone())
                .map(|config| Box::new(billing::Billing::new(config, gateway_key.clone())));
            match (&billing, &gateway_key) {
                (None, _) => tracing::info!("no Stripe settings (CATTY_STRIPE_*): billing is off"),
                (Some(_), None) => {
                    tracing::warn!("no CATTY_GATEWAY_KEY: the gateway's upgrade links are refused")
                }
                (Some(_), Some(_)) => {}
            }
            (
                Store::Db(db.clone()),
                Auth::Hosted {
                    db,
                    login,
                    billing,
                    allowances: hosted.allowances,
                },
                Some(presence),
                None,
            )
        }
    };
    let limits = config.hosted.as_ref().map(|h| h.limits.clone());
    let gateway = config.gateway.as_ref().map(daemon::Gateway::new);
    let mode = if config.hosted.is_some() {
        "hosted"
    } else {
        "local"
    };
    tracing::info!(state_dir = %config.state_dir.display(), mode, version = crate::version::this_build(), "catty api starting");
    let max = (config.max_sessions, config.keep_ended);
    match (config.provider, config.fly) {
        (ProviderKind::Fly, Some(fly)) => {
            let fly = Fly::new(fly)?;
            let mut daemon = Daemon::new(fly, store, auth, max);
            daemon.presence = presence;
            daemon.limits = limits.clone();
            daemon.gateway = gateway;
            serve(daemon, listener, shutdown).await
        }
        (ProviderKind::Fly, None) => bail!("the fly provider has no configuration"),
        (ProviderKind::Local, _) => {
            let local = Local::new(LocalOptions {
                state_dir: config.state_dir.clone(),
                exe: config.exe.clone(),
                sandbox: config.sandbox,
                session_env: config.session_env.clone(),
                gateway_url: config.gateway.as_ref().map(|g| g.url.clone()),
            })
            .await?;
            let mut daemon = Daemon::new(local, store, auth, max);
            daemon.presence = presence;
            daemon.limits = limits.clone();
            daemon.gateway = gateway;
            serve(daemon, listener, shutdown).await
        }
    }
}

async fn serve<P: Provider>(
    daemon: Daemon<P>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let daemon = Arc::new(daemon);
    // Reconcile before the first request, so every answer reflects what really runs.
    daemon.sweep().await;
    let (stop, stopped) = watch::channel(false);
    let server = crate::net::serve(listener, until(stopped.clone()), |stream, proven| {
        routes::connection(daemon.clone(), stream, proven)
    });
    let signal = async {
        shutdown.await;
        tracing::info!("shutting down; sessions keep running");
        let _ = stop.send(true);
    };
    tokio::join!(signal, server, sweep_loop(&daemon, until(stopped)));
    daemon.provider.shutdown().await;
    Ok(())
}

/// Resolves once the shutdown flag is up.
async fn until(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Sweeps every [`reconcile::SWEEP_INTERVAL`], or at the next deadline if sooner (looking
/// again whenever a session is created).
async fn sweep_loop<P: Provider>(daemon: &Daemon<P>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let wait = daemon.next_sweep_in().await;
        tokio::select! {
            () = &mut shutdown => return,
            () = daemon.new_deadline.notified() => continue,
            () = tokio::time::sleep(wait) => {}
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = daemon.sweep() => {}
        }
    }
}

/// The bearer token in `<state_dir>/api.token`: made once (32 random bytes as hex, mode
/// 0600, written atomically so a client never reads half of it), then reused.
fn load_or_create_token(state_dir: &Path) -> anyhow::Result<String> {
    let path = state_dir.join("api.token");
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 32 && !text.trim().contains(char::is_whitespace) => {
            let mode = std::fs::metadata(&path)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!("{} was readable by others; made it 0600", path.display());
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
            return Ok(text.trim().to_string());
        }
        Ok(_) => tracing::warn!("{} holds no token; writing a new one", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let token = random::hex(32);
    let write = || -> std::io::Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(".api.token.")
            .tempfile_in(state_dir)?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        writeln!(tmp, "{token}")?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        std::fs::File::open(state_dir)?.sync_all()
    };
    write().with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!("created the API token in {}", path.display());
    Ok(token)
}

/// Takes `<state_dir>/api.lock` (an advisory lock the kernel drops when the process dies,
/// even by `kill -9`), or fails when another daemon holds it.
fn lock_state_dir(state_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = state_dir.join("api.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => bail!(
            "another catty api already uses {} (see its api.log)",
            state_dir.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}
