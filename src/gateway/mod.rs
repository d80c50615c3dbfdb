//! The gateway (`catty gateway`, issue 18): the one process that holds the providers' keys.
//! Sessions' agents call it with their session token instead of a key (`routes.rs`); it checks
//! the token and that its session is live (`sessions.rs`), holds an estimate against the
//! user's quota (`ledger.rs`, `prices.rs`), forwards to the provider with one of its keys
//! (`upstream.rs`, `headers.rs`), streams the answer back untouched while metering it
//! (`answer.rs`, `usage.rs` over `sse.rs`) and settles the hold when it ends (`tab.rs`).

mod answer;
mod errors;
mod headers;
mod ledger;
mod prices;
mod routes;
mod sessions;
mod sse;
mod tab;
mod upstream;
pub mod usage;

/// The ledger for the integration tests (`tests/gateway_ledger.rs`); not an API.
#[doc(hidden)]
pub use ledger::testing as ledger_testing;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::GatewayConfig;
use crate::db::Database;
use crate::llm_token::LlmKey;
use ledger::{Hold, Ledger, Refusal};
use sessions::Sessions;
use tab::Settlements;
use upstream::{Upstream, Upstreams};
use usage::Provider;

/// How long the settling of answers that ended gets after shutdown.
const SETTLE_DRAIN: Duration = Duration::from_secs(10);

/// What every request shares.
pub(super) struct Gateway {
    key: LlmKey,
    /// The raw gateway key, for upgrade links.
    gateway_key: Vec<u8>,
    public_url: Option<String>,
    sessions: Sessions,
    ledger: Ledger,
    upstreams: Upstreams,
    anthropic: Upstream,
    openai: Upstream,
    gemini: Upstream,
    idle: Duration,
    settle: Settlements,
}

impl Gateway {
    fn upstream(&self, provider: Provider) -> &Upstream {
        match provider {
            Provider::Anthropic => &self.anthropic,
            Provider::OpenAi => &self.openai,
            Provider::Gemini => &self.gemini,
        }
    }

    /// Holds the estimate of a request of `provider` with `body` against `user`'s quota.
    async fn hold(
        &self,
        provider: Provider,
        user: &str,
        session: &str,
        model: Option<&str>,
        body: &[u8],
    ) -> anyhow::Result<Result<Hold, Refusal>> {
        let estimate = prices::estimate(provider, model, body);
        self.ledger.hold(user, session, estimate).await
    }

    /// The link a 402 offers `user`, when the API's public URL is known.
    fn upgrade_link(&self, user: &str) -> Option<String> {
        let url = self.public_url.as_deref()?;
        let now = crate::clock::unix_now();
        Some(crate::upgrade_link::make(&self.gateway_key, url, user, now))
    }
}

/// Serves the gateway on `listener` until `shutdown`; then drains the connections and
/// settles every answer that ended.
pub async fn run(
    config: GatewayConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let db = Database::connect(&config.database_url).await?;
    // This instance's presence: the holds it takes name it, and survivors give them back
    // when it dies.
    let presence = db.announce().await?;
    tracing::info!(instance = presence.number, "announced this instance");
    let ledger = Ledger::new(db.clone(), config.allowances, presence);
    let (settle, settlements) = mpsc::unbounded_channel();
    let settler = tokio::spawn(tab::settler(ledger.clone(), settlements));
    let (stop, stopped) = watch::channel(false);
    let sweeper = tokio::spawn(ledger::sweep(
        ledger.clone(),
        config.sweep_every,
        until(stopped.clone()),
    ));
    let gateway = Arc::new(Gateway {
        key: LlmKey::new(&config.gateway_key),
        gateway_key: config.gateway_key,
        public_url: config.public_url,
        sessions: Sessions::new(db.clone()),
        ledger,
        upstreams: Upstreams::new(),
        anthropic: Upstream::new(Provider::Anthropic, &config.anthropic),
        openai: Upstream::new(Provider::OpenAi, &config.openai),
        gemini: Upstream::new(Provider::Gemini, &config.gemini),
        idle: config.idle,
        settle,
    });
    tracing::info!(
        anthropic_keys = config.anthropic.keys.len(),
        openai_keys = config.openai.keys.len(),
        gemini_keys = config.gemini.keys.len(),
        idle = ?config.idle,
        "gateway ready"
    );
    let server = crate::net::serve(listener, until(stopped), {
        let gateway = gateway.clone();
        move |stream, proven| routes::connection(gateway.clone(), stream, proven)
    });
    let signal = async {
        shutdown.await;
        tracing::info!("shutting down: draining connections");
        let _ = stop.send(true);
    };
    tokio::join!(signal, server);
    // Every connection is gone, and with it every tab: the last sender goes with the gateway.
    drop(gateway);
    if tokio::time::timeout(SETTLE_DRAIN, settler).await.is_err() {
        tracing::warn!("settling took too long: the sweeper releases what is left");
    }
    let _ = sweeper.await;
    Ok(())
}

/// Resolves once the shutdown flag is up.
async fn until(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}
