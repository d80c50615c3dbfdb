//! PostgreSQL, shared by the hosted modes (`catty api --database-url`, `catty gateway`): the
//! pool, the embedded migrations and which instances live. Each mode keeps its own queries
//! (`api/db/`, `gateway/`), as `impl Database` blocks beside the code that needs them; many
//! instances of each share one database, and nothing here is kept in one instance's memory but
//! the pool.
//!
//! tokio-postgres with deadpool-postgres: the same tokio and ring-only rustls as the rest of
//! catty, no database at build time, and the queries are few and written by hand (sqlx needs
//! Rust 1.94 and a database or generated files at build time; refinery 1.92).

pub(crate) mod instances;
mod migrate;
pub(crate) mod plan;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::net::TlsRoots;

/// Connections one instance holds at most. PostgreSQL's default `max_connections` is 100:
/// four instances fit with room for the operator's own.
const POOL_SIZE: usize = 16;
/// How long a request waits for a connection of the pool, and for a new one to open.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// The pool, migrated.
#[derive(Clone)]
pub(crate) struct Database {
    pool: Pool,
    /// For the connections outside the pool ([`Database::dedicated`]).
    dial: Arc<(tokio_postgres::Config, MakeRustlsConnect)>,
}

impl Database {
    /// Connects to `url` (a `postgres://` URL or `key=value` pairs; `host=/dir` for a Unix
    /// socket) and applies the migrations this build has that the database lacks.
    pub(crate) async fn connect(url: &str) -> anyhow::Result<Database> {
        let config: tokio_postgres::Config = url
            .parse()
            .context("the database URL does not parse (postgres://USER:PASSWORD@HOST/DB)")?;
        let tls = MakeRustlsConnect::new(TlsRoots::webpki().client_config());
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            // No connection of the pool ever holds a session-level lock (those take a
            // connection of their own, `dedicated`), so a quick check is all a reuse needs.
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .context("cannot make the database pool")?;
        let db = Database {
            pool,
            dial: Arc::new((config, tls)),
        };
        let mut client = db.client().await?;
        migrate::run(&mut client).await?;
        Ok(db)
    }

    /// A connection of the pool.
    pub(crate) async fn client(&self) -> anyhow::Result<deadpool_postgres::Object> {
        self.pool.get().await.context("cannot reach the database")
    }

    /// A connection of its own, outside the pool: for a lock held as long as it lives.
    pub(crate) async fn dedicated(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (config, tls) = &*self.dial;
        let (client, connection) = config
            .connect(tls.clone())
            .await
            .context("cannot reach the database")?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("a database connection ended: {e}");
            }
        });
        Ok(client)
    }

    /// Runs `work` unless another instance runs work of the same `key` now (a session-level
    /// advisory lock, dropped by PostgreSQL if this instance dies); `None` when it did.
    pub(crate) async fn exclusively<T>(
        &self,
        key: i64,
        work: impl Future<Output = T>,
    ) -> anyhow::Result<Option<T>> {
        // Its own connection: dropped (and the lock with it) however `work` ends.
        let client = self.dedicated().await?;
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .context("cannot take a lock")?;
        if !row.get::<_, bool>(0) {
            return Ok(None);
        }
        let out = work.await;
        // Dropping the connection ends its session, and the lock with it.
        drop(client);
        Ok(Some(out))
    }
}

/// SHA-256 of a secret: what the database keeps of tokens and device codes, so a read of it
/// gives none of them.
pub(crate) fn digest(secret: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}
