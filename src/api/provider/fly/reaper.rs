//! The backstop: every minute, session machines past their `expires_at` (a lost
//! runtime, a record lost with its daemon, another computer's session) and machines stuck
//! before `started` are destroyed. One pass runs as the daemon starts.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::watch;

use super::machine_config::{META_EXPIRES_AT, META_SESSION};
use super::machines_api::FlyMachine;
use super::{Inner, is_gone};
use crate::clock::parse_rfc3339;
use crate::clock::unix_now;
use crate::locks;

/// The reaper's period. It is the last line: the runtime ends itself at its TTL and the
/// daemon's sweep destroys the machines of the sessions it knows.
const REAP_INTERVAL: Duration = Duration::from_secs(60);
/// The runtime's head start (it ends its own session at the deadline) before the reaper acts.
const EXPIRY_SLACK_SEC: u64 = 30;
/// How much longer than a create's own deadline a machine may stay `created` or `starting`.
const STUCK_SLACK_SEC: u64 = 60;

impl Inner {
    /// One pass of the backstop: destroys session machines past their `expires_at` (a lost
    /// runtime, a record lost with its daemon) and ones stuck before `started`.
    async fn reap(&self) {
        let machines = match self.api.list(&[]).await {
            Ok(machines) => machines,
            Err(e) => return tracing::warn!("reaper: cannot list machines: {e}"),
        };
        let now = unix_now();
        let doomed: Vec<(&FlyMachine, &str)> = (machines.iter())
            .filter_map(|m| Some((m, self.doomed(m, now)?)))
            .collect();
        join_all(doomed.into_iter().map(|(m, why)| async move {
            let session = m.meta(META_SESSION).unwrap_or_default();
            tracing::info!(machine = %m.id, session, "reaper: destroying a machine {why}");
            if let Err(e) = self.destroy(&m.id, &m.instance_id).await {
                tracing::warn!("reaper: {e:#}");
            }
        }))
        .await;
    }

    fn doomed(&self, m: &FlyMachine, now: u64) -> Option<&'static str> {
        let session = m.meta(META_SESSION)?;
        if is_gone(&m.state) {
            return None;
        }
        let expires_at = m.meta(META_EXPIRES_AT).and_then(parse_rfc3339);
        if expires_at.is_some_and(|t| t + EXPIRY_SLACK_SEC <= now) {
            return Some("past its expires_at");
        }
        let limit = self.start_timeout.as_secs() + STUCK_SLACK_SEC;
        let stuck = matches!(m.state.as_str(), "created" | "starting")
            && parse_rfc3339(&m.created_at).is_some_and(|t| t + limit <= now)
            && !locks::lock(&self.creating).contains(session);
        stuck.then_some("that never started")
    }
}

pub(super) async fn reap_loop(inner: Arc<Inner>, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            () = inner.reap() => {}
        }
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(REAP_INTERVAL) => {}
        }
    }
}
