//! `catty extend <label> DURATION`: more time for a live session, through the daemon (which
//! moves its own deadline, the provider's backstop and the runtime's).

use std::io::Write;

use super::daemon_client::DaemonClient;
use super::{deadline, find};
use crate::config::{ClientConfig, ExtendOptions};
use crate::protocol::api::{ExtendSession, SessionInfo};

pub async fn extend(config: &ClientConfig, options: ExtendOptions) -> anyhow::Result<i32> {
    let daemon = DaemonClient::ensure(config).await?;
    let info = find(&daemon, &options.session).await?;
    let path = format!("/v1/sessions/{}/extend", info.session_id);
    let body = ExtendSession {
        by_sec: options.by_sec,
    };
    let extended: SessionInfo = daemon.post(&path, &body).await?;
    let now = crate::clock::unix_now();
    let line = deadline::extended(&extended.label, extended.expires_at, now);
    writeln!(std::io::stdout(), "{line}")?;
    Ok(0)
}
