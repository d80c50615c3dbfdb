//! `catty extend` on Fly.io: the machine's `expires_at` metadata first (the reaper destroys a
//! machine past it), then the runtime's own deadline through the edge.

use anyhow::Context;

use super::machine_config::META_EXPIRES_AT;
use super::{FORCE_INSTANCE_HEADER, Inner};
use crate::api::provider::Machine;
use crate::clock::rfc3339;
use crate::protocol::api::Ttl;

impl Inner {
    pub(super) async fn extend(
        &self,
        machine: &Machine,
        token: &str,
        expires_at: u64,
    ) -> anyhow::Result<Ttl> {
        let stamp = rfc3339(expires_at);
        self.api
            .set_metadata(&machine.id, META_EXPIRES_AT, &stamp)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| {
                format!("cannot move machine {}'s expires_at to {stamp}", machine.id)
            })?;
        let base = match machine.connect_url.is_empty() {
            true => &self.exec_url,
            false => &machine.connect_url,
        };
        let mut headers = machine.headers.clone();
        headers.insert(FORCE_INSTANCE_HEADER.to_string(), machine.id.clone());
        super::super::tell_runtime(base, &headers, token, expires_at).await
    }
}
