//! The hosted API's queries on the shared database (`crate::db`): the accounts (users and the
//! tokens catty mints for them, `accounts.rs`), the login broker's polls (`device_polls.rs`),
//! the sessions (`sessions.rs`) and billing's Stripe rows (`subscriptions.rs`).
//! the sessions (`sessions.rs`) and what each user spent (`usage.rs`).

pub(super) mod accounts;
pub(super) mod device_polls;
pub(super) mod sessions;
pub(super) mod subscriptions;
pub(super) mod usage;

use std::ops::Deref;
use std::sync::Arc;

use crate::db::Database;

/// The database, and the key connect tokens are derived with.
#[derive(Clone)]
pub(super) struct Db {
    database: Database,
    connect_key: Arc<ring::hmac::Key>,
}

impl Db {
    /// Connects to `url` and migrates (`Database::connect`). `connect_key` is the deployment's
    /// secret the connect tokens are derived from.
    pub(super) async fn connect(url: &str, connect_key: &[u8]) -> anyhow::Result<Db> {
        Ok(Db {
            database: Database::connect(url).await?,
            connect_key: Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, connect_key)),
        })
    }

    /// The token that opens session `id`'s terminal: an HMAC of its id, so the database holds
    /// nothing that opens a session.
    pub(super) fn connect_token(&self, id: &str) -> String {
        let tag = ring::hmac::sign(&self.connect_key, format!("connect\0{id}").as_bytes());
        crate::hex::encode(tag.as_ref())
    }
}

impl Deref for Db {
    type Target = Database;

    fn deref(&self) -> &Database {
        &self.database
    }
}
