//! Talking to the daemon: JSON over HTTP on loopback with the token from the state directory,
//! and starting the daemon in the background when nothing answers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use crate::config::ClientConfig;
use crate::protocol::HEALTHZ_PATH;
use crate::protocol::api::ErrorBody;

/// How long a freshly started daemon may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(15);

pub(super) struct DaemonClient {
    addr: SocketAddr,
    state_dir: PathBuf,
    token: String,
}

/// An answer that was not a success.
#[derive(Debug)]
pub(super) struct DaemonError {
    pub status: StatusCode,
    pub message: String,
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DaemonError {}

/// The daemon did not answer at all (not running, or it died mid-request): the request may or
/// may not have been carried out.
#[derive(Debug)]
pub(super) struct Unanswered(String);

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl DaemonClient {
    /// Connects to the daemon, starting it first if nothing answers.
    pub(super) async fn ensure(config: &ClientConfig) -> anyhow::Result<DaemonClient> {
        if !healthy(config.api_addr).await {
            start(config).await?;
        }
        let token_file = config.state_dir.join("api.token");
        let token = std::fs::read_to_string(&token_file).with_context(|| {
            format!(
                "cannot read the daemon's token from {}",
                token_file.display()
            )
        })?;
        Ok(DaemonClient {
            addr: config.api_addr,
            state_dir: config.state_dir.clone(),
            token: token.trim().to_string(),
        })
    }

    pub(super) async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub(super) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        let body = match body {
            Some(body) => Bytes::from(serde_json::to_vec(body)?),
            None => Bytes::new(),
        };
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(body))?;
        let (status, bytes) = send(self.addr, req)
            .await
            .with_context(|| Unanswered(self.unreachable()))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .context("the daemon's answer is not what this catty expects");
        }
        let message = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => body.error.message,
            Err(_) => format!("the daemon answered {status}"),
        };
        Err(DaemonError { status, message }.into())
    }

    fn unreachable(&self) -> String {
        format!(
            "the catty daemon on {} did not answer (its log: {})",
            self.addr,
            log_path(&self.state_dir).display()
        )
    }
}

fn log_path(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("api.log")
}

async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> anyhow::Result<(StatusCode, Bytes)> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let exchange = async {
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>((status, bytes))
    };
    tokio::select! {
        result = exchange => Ok(result?),
        result = conn => Err(anyhow!("the connection closed early: {:?}", result.err())),
    }
}

async fn healthy(addr: SocketAddr) -> bool {
    let req = Request::get(HEALTHZ_PATH)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let check = tokio::time::timeout(Duration::from_secs(2), send(addr, req));
    matches!(check.await, Ok(Ok((StatusCode::OK, _))))
}

/// Starts `catty api` detached from this terminal, logging to the state directory, and waits
/// until it answers.
async fn start(config: &ClientConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.state_dir).with_context(|| {
        format!(
            "cannot create the state directory {}",
            config.state_dir.display()
        )
    })?;
    let log = log_path(&config.state_dir);
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let mut child = std::process::Command::new(&config.exe);
    child
        .arg("api")
        .arg("--addr")
        .arg(config.api_addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    // Its own process group: Ctrl-C here or closing this terminal must not reach it.
    std::os::unix::process::CommandExt::process_group(&mut child, 0);
    let mut child = child
        .spawn()
        .with_context(|| format!("cannot start {}", config.exe.display()))?;
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if healthy(config.api_addr).await {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "the catty daemon exited at start ({status}); see {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!(
        "the catty daemon did not start within {} s; see {}",
        START_TIMEOUT.as_secs(),
        log.display()
    )
}
