//! Work kept until it is pulled: what the client has acknowledged (`POST /sync/pulled`), the
//! generation the workspace had when the program started, and whether the current manifest
//! holds anything past both.

use std::sync::{Arc, OnceLock};

use tokio::sync::watch;

use super::manifest::Manifests;

/// What was pulled, and what needed no pull.
pub(super) struct Retention {
    /// The manifest's generation just before the program started: what was uploaded, which
    /// the client has already. Unset when it could not be computed.
    baseline: OnceLock<u64>,
    /// The highest generation a client said it applied (0: none).
    pulled: watch::Sender<u64>,
}

impl Retention {
    pub(super) fn new() -> Retention {
        Retention {
            baseline: OnceLock::new(),
            pulled: watch::Sender::new(0),
        }
    }

    /// Computes the manifest as it stands before the program starts (this starts the
    /// watcher: from here on every change counts).
    pub(super) async fn remember_start(&self, manifests: &Arc<Manifests>) {
        match manifests.fresh().await {
            Ok(snapshot) => {
                let _ = self.baseline.set(snapshot.generation);
            }
            Err(e) => tracing::warn!("no manifest before the program started: {e}"),
        }
    }

    /// A client applied `generation` (or any before it).
    pub(super) fn pulled(&self, generation: u64) {
        self.pulled.send_if_modified(|pulled| {
            let newer = generation > *pulled;
            *pulled = (*pulled).max(generation);
            newer
        });
    }

    /// Whether the workspace holds work not pulled: its manifest's generation is above both
    /// the one acknowledged and the one at the program's start (`acked` when given, else
    /// the highest acknowledged). A workspace whose manifest cannot be made has nothing a
    /// client could pull.
    pub(super) async fn unpulled(&self, manifests: &Arc<Manifests>, acked: Option<u64>) -> bool {
        let pulled = acked.unwrap_or_else(|| *self.pulled.borrow());
        let kept = pulled.max(self.baseline.get().copied().unwrap_or(0));
        match manifests.fresh().await {
            Ok(snapshot) => snapshot.generation > kept,
            Err(e) => {
                tracing::warn!("cannot tell whether work is unpulled: {e}");
                false
            }
        }
    }

    /// Returns once the workspace holds nothing that was not pulled.
    pub(super) async fn until_pulled(&self, manifests: &Arc<Manifests>) {
        let mut acks = self.pulled.subscribe();
        loop {
            // Read before the manifest is made, so an ack that arrives meanwhile wakes us.
            let pulled = *acks.borrow_and_update();
            if !self.unpulled(manifests, Some(pulled)).await {
                return;
            }
            tracing::info!(pulled, "keeping the workspace until its work is pulled");
            // The sender lives as long as `self`: `changed` cannot fail while we hold it.
            if acks.changed().await.is_err() {
                return;
            }
        }
    }
}
