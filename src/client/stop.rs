//! `catty stop` and `catty stop-all-sessions-dangerously`. A stop pulls the session's work
//! first (SPEC section 9: work is kept until it is pulled) into the directory recorded for
//! it, unless told to discard it; a stop whose pull fails, or that has nowhere to pull to,
//! stops nothing. Stop-all pulls nothing and names what it discards (asking each running
//! session's runtime, `GET /sync/pulled`).

use std::sync::Arc;

use anyhow::Context;

use super::daemon_client::DaemonClient;
use super::{find, sync};
use crate::config::{ClientConfig, UsageError};
use crate::protocol::api::{SessionInfo, SessionList, SessionState, StopAll};

pub async fn stop(config: &ClientConfig, session: &str, discard: bool) -> anyhow::Result<i32> {
    let daemon = DaemonClient::ensure(config).await?;
    let info = find(&daemon, session).await?;
    let label = info.label.clone();
    // Only a running session has a workspace to pull from.
    if !discard && info.state == SessionState::Running {
        pull_before_stop(config, info.clone()).await?;
    }
    let stopped: SessionInfo = daemon
        .post(&format!("/v1/sessions/{}/stop", info.session_id), &())
        .await?;
    match (info.state.is_live(), discard) {
        (true, true) => out!("stopped {} (its work was not pulled)", stopped.label),
        (true, false) => out!("stopped {label}"),
        // It had ended before: say how, not "stopped".
        (false, _) => out!("{label} had already ended ({})", stopped.state_text()),
    }
    Ok(0)
}

/// Pulls like `catty pull` into the session's directory and says so. Without a record of
/// that directory on this computer it writes nowhere (the current directory may be any):
/// `catty pull` in the right one records it. An incomplete pull is an error that names the
/// way out.
async fn pull_before_stop(config: &ClientConfig, info: SessionInfo) -> anyhow::Result<()> {
    let label = info.label.clone();
    let refuse = || {
        format!(
            "not stopping {label}: its work could not be pulled; retry, or stop it without \
             its work: catty stop --discard {label}"
        )
    };
    let base = sync::Base::load(&config.state_dir, &info.session_id).with_context(refuse)?;
    let Some(base) = base else {
        anyhow::bail!(
            "not stopping {label}: this computer does not know which directory its work \
             belongs in; run catty pull {label} there first, or stop it without its work: \
             catty stop --discard {label}"
        );
    };
    let say: sync::Say = Arc::new(|line| say!("{line}"));
    let summary = sync::pull(&sync::Link::from(info), &config.state_dir, &base.dir, say)
        .await
        .with_context(refuse)?;
    if !summary.complete() {
        say!("{summary}");
        anyhow::bail!(refuse());
    }
    say!("catty: {summary}; stopping");
    Ok(())
}

pub async fn stop_all(config: &ClientConfig, confirmed: bool) -> anyhow::Result<i32> {
    if !confirmed {
        return Err(UsageError(
            "refusing: this stops every session and destroys every catty machine; add --yes-i-mean-it".into(),
        )
        .into());
    }
    let daemon = DaemonClient::ensure(config).await?;
    // What was running may hold work nobody pulled: it is named, never dropped in silence.
    let running: Vec<SessionInfo> = match daemon.get::<SessionList>("/v1/sessions").await {
        Ok(list) => list
            .sessions
            .into_iter()
            .filter(|s| s.state == SessionState::Running)
            .collect(),
        Err(e) => {
            say!("catty: cannot list the sessions ({e:#}); their work is not pulled");
            Vec::new()
        }
    };
    let asked = running.into_iter().map(|info| async move {
        let label = info.label.clone();
        match sync::unpulled(&sync::Link::from(info)).await {
            Some(false) => None,
            Some(true) => Some(format!("{label} without pulling its work")),
            None => Some(format!("{label}, which may hold work not pulled")),
        }
    });
    let unpulled: Vec<String> = futures_util::future::join_all(asked)
        .await
        .into_iter()
        .flatten()
        .collect();
    let done: StopAll = daemon.post("/v1/sessions/stop-all", &()).await?;
    for line in &unpulled {
        say!("catty: stopped {line}");
    }
    out!("stopped {} machine(s)", done.stopped);
    Ok(0)
}
