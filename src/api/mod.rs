//! The control daemon (`catty api`): creates one machine per session through a provider,
//! keeps a durable session store, and serves the local HTTP API.

// Placeholder so the binary builds while the daemon is being written; replace freely.
pub async fn run(
    _config: crate::config::ApiConfig,
    _listener: tokio::net::TcpListener,
    _shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    anyhow::bail!("the daemon is not built yet")
}
