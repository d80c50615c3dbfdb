//! Talking to the daemon: JSON over HTTP on loopback with the token from the state directory,
//! and starting the daemon in the background when nothing answers. Or, when the configuration
//! names a hosted API (`CATTY_API_URL` or `catty login`), JSON over HTTPS to it with the
//! user's token: no daemon is ever started, restarted or asked then.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::ClientConfig;
use crate::net::TlsRoots;
use crate::protocol::HEALTHZ_PATH;
use crate::protocol::api::{
    DAEMON_GATEWAY_HEADER, DAEMON_PID_HEADER, DAEMON_PROVIDER_HEADER, DAEMON_VERSION_HEADER,
    ErrorBody,
};

/// How long a freshly started daemon may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The largest answer read: a listing of many sessions is a few MiB at most.
const ANSWER_LIMIT_BYTES: usize = 16 * 1024 * 1024;

pub(super) struct DaemonClient {
    endpoint: Endpoint,
    /// Empty for the login's public endpoints.
    token: String,
    /// Whether a create may bring the agent's credentials: not to a hosted API, nor to a
    /// daemon whose sessions go through a gateway (its `/healthz` says so).
    pub takes_credentials: bool,
}

enum Endpoint {
    /// The local daemon, and its state directory (where its log is).
    Local {
        addr: SocketAddr,
        state_dir: PathBuf,
    },
    /// A hosted API: `https://HOST[:PORT]` (plain `http://` on loopback), and the roots its
    /// certificate is checked against (Mozilla's; a test's own CA in tests).
    Hosted { url: String, roots: TlsRoots },
}

impl Endpoint {
    /// The authority to connect to, and the roots to check it against when over TLS.
    fn authority(&self) -> (String, Option<&TlsRoots>) {
        match self {
            Endpoint::Local { addr, .. } => (addr.to_string(), None),
            Endpoint::Hosted { url, roots } => match url.strip_prefix("https://") {
                Some(authority) => (authority.to_string(), Some(roots)),
                None => (url.trim_start_matches("http://").to_string(), None),
            },
        }
    }
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
    /// Connects to the daemon, starting it first if nothing answers; or the hosted API with the
    /// user's token.
    pub(super) async fn ensure(config: &ClientConfig) -> anyhow::Result<DaemonClient> {
        if let Some(hosted) = &config.hosted {
            let token = hosted
                .token
                .clone()
                .ok_or_else(|| anyhow!("not logged in to {}: run catty login", hosted.url))?;
            return Ok(DaemonClient::hosted(&hosted.url, &token));
        }
        let found = match health(config.api_addr).await {
            None => start(config).await?,
            Some(found) if found.version.as_deref() != Some(crate::version::this_build()) => {
                restart(config, &found).await?
            }
            Some(found) => {
                found.check_provider(config)?;
                found
            }
        };
        let token_file = config.state_dir.join("api.token");
        let token = std::fs::read_to_string(&token_file).with_context(|| {
            format!(
                "cannot read the daemon's token from {}",
                token_file.display()
            )
        })?;
        Ok(DaemonClient {
            endpoint: Endpoint::Local {
                addr: config.api_addr,
                state_dir: config.state_dir.clone(),
            },
            token: token.trim().to_string(),
            takes_credentials: !found.gateway,
        })
    }

    /// The daemon that answers, if one does, without starting one or checking its build; or
    /// the hosted API, when logged in to one.
    pub(super) async fn running(config: &ClientConfig) -> Option<DaemonClient> {
        if let Some(hosted) = &config.hosted {
            return Some(DaemonClient::hosted(&hosted.url, hosted.token.as_deref()?));
        }
        let found = health(config.api_addr).await?;
        let token = std::fs::read_to_string(config.state_dir.join("api.token")).ok()?;
        Some(DaemonClient {
            endpoint: Endpoint::Local {
                addr: config.api_addr,
                state_dir: config.state_dir.clone(),
            },
            token: token.trim().to_string(),
            takes_credentials: !found.gateway,
        })
    }

    /// A client of the hosted API at `url` with `token` (empty: none, for the login).
    pub(super) fn hosted(url: &str, token: &str) -> DaemonClient {
        DaemonClient::hosted_with(url, token, TlsRoots::webpki())
    }

    fn hosted_with(url: &str, token: &str, roots: TlsRoots) -> DaemonClient {
        DaemonClient {
            endpoint: Endpoint::Hosted {
                url: url.to_string(),
                roots,
            },
            token: token.to_string(),
            takes_credentials: false,
        }
    }

    pub(super) async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub(super) async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(Method::DELETE, path, None::<&()>).await
    }

    pub(super) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// A request whose every answer the caller reads itself: its status and body.
    pub(super) async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let body = match body {
            Some(body) => Bytes::from(serde_json::to_vec(body)?),
            None => Bytes::new(),
        };
        let (authority, roots) = self.endpoint.authority();
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &authority)
            .header("content-type", "application/json");
        if !self.token.is_empty() {
            req = req.header("authorization", format!("Bearer {}", self.token));
        }
        let (status, _, bytes) = send(&authority, roots, req.body(Full::new(body))?)
            .await
            .with_context(|| Unanswered(self.unreachable()))?;
        Ok((status, bytes))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        let (status, bytes) = self.exchange(method, path, body).await?;
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
        match &self.endpoint {
            Endpoint::Local { addr, state_dir } => format!(
                "the catty daemon on {addr} did not answer (its log: {})",
                log_path(state_dir).display()
            ),
            Endpoint::Hosted { url, .. } => format!("the catty API at {url} did not answer"),
        }
    }
}

fn log_path(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("api.log")
}

/// One request on a connection of its own to `authority` (over TLS checked against `roots`
/// when given), its answer read whole up to [`ANSWER_LIMIT_BYTES`].
async fn send(
    authority: &str,
    roots: Option<&TlsRoots>,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, HeaderMap, Bytes)> {
    let stream = crate::net::connect_with(authority, roots).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let exchange = async {
        let resp = sender.send_request(req).await?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = Limited::new(resp.into_body(), ANSWER_LIMIT_BYTES);
        let bytes = body.collect().await?.to_bytes();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, headers, bytes))
    };
    tokio::pin!(exchange, conn);
    tokio::select! {
        result = &mut exchange => result.map_err(|e| anyhow!(e)),
        // A server may close right after its answer (a proxy's `Connection: close`): what
        // it sent is still read; a connection that failed fails the exchange too.
        _ = &mut conn => exchange.await.map_err(|e| anyhow!(e)),
    }
}

/// Who answers `/healthz` on the daemon's address (protocol::api): its build, provider, pid,
/// and whether its sessions go through a gateway.
struct Health {
    version: Option<String>,
    provider: Option<String>,
    pid: Option<i32>,
    gateway: bool,
}

async fn health(addr: SocketAddr) -> Option<Health> {
    let req = Request::get(HEALTHZ_PATH)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .ok()?;
    let authority = addr.to_string();
    let check = tokio::time::timeout(Duration::from_secs(2), send(&authority, None, req));
    let (status, headers, _) = check.await.ok()?.ok()?;
    let said = |name: &str| Some(headers.get(name)?.to_str().ok()?.to_string());
    (status == StatusCode::OK).then(|| Health {
        version: said(DAEMON_VERSION_HEADER),
        provider: said(DAEMON_PROVIDER_HEADER),
        pid: said(DAEMON_PID_HEADER).and_then(|p| p.parse().ok()),
        gateway: said(DAEMON_GATEWAY_HEADER).is_some(),
    })
}

impl Health {
    /// How to stop this daemon, for a message.
    fn stop_hint(&self) -> String {
        match self.pid {
            Some(pid) => format!("kill {pid}"),
            None => "pkill -f 'catty api'".to_string(),
        }
    }

    /// A daemon of the other provider than this environment would start is refused, with the
    /// fix: sessions would silently go where the user did not mean them to.
    fn check_provider(&self, config: &ClientConfig) -> anyhow::Result<()> {
        let (theirs, ours) = (self.provider.as_deref(), config.provider);
        if theirs.is_none_or(|theirs| theirs == ours) {
            return Ok(());
        }
        let token = match ours {
            "fly" => "FLY_API_TOKEN is set here",
            _ => "FLY_API_TOKEN is not set here",
        };
        bail!(
            "the catty daemon on {} uses the {} provider, but {token}: stop it with `{}` \
             (its sessions keep running) and run this again",
            config.api_addr,
            theirs.unwrap_or_default(),
            self.stop_hint()
        )
    }
}

/// How long an outdated daemon may take to drain and exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Replaces a daemon of another build with this one's: SIGTERM (it drains and exits; its
/// sessions keep running and the new daemon adopts them), then a start. One line says so.
async fn restart(config: &ClientConfig, found: &Health) -> anyhow::Result<Health> {
    let addr = config.api_addr;
    let theirs = found.version.as_deref().unwrap_or("an older catty");
    if crate::version::is_newer(theirs, crate::version::this_build()) {
        // Never a downgrade behind the user's back: an older catty found first on a PATH.
        bail!(
            "the catty daemon on {addr} is a newer catty ({theirs}) than this one ({}): run \
             the newer catty, or stop the daemon with `{}` and run this again",
            crate::version::this_build(),
            found.stop_hint()
        );
    }
    let Some(pid) = found.pid else {
        bail!(
            "the catty daemon on {addr} is {theirs}, not this catty ({}): stop it with `{}` \
             (its sessions keep running) and run this again",
            crate::version::this_build(),
            found.stop_hint()
        );
    };
    say!(
        "catty: restarting the catty daemon ({theirs} → {}); sessions keep running",
        crate::version::this_build()
    );
    let pid = nix::unistd::Pid::from_raw(pid);
    use nix::sys::signal::{Signal, kill};
    kill(pid, Signal::SIGTERM)
        .with_context(|| format!("cannot stop the catty daemon (pid {pid}) on {addr}"))?;
    let deadline = Instant::now() + STOP_TIMEOUT;
    while !exited(pid.as_raw()) {
        if Instant::now() > deadline {
            bail!(
                "the catty daemon (pid {pid}) on {addr} did not exit within {} s; stop it with `kill -9 {pid}` and run this again",
                STOP_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    start(config).await
}

/// Whether process `pid` is gone or a zombie: a zombie holds no port and no lock, and its
/// parent (which may be long-lived: a test, a supervisor) reaps it when it will.
fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's closing parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// Starts `catty api` detached from this terminal, logging to the state directory, and waits
/// until it answers (what it says then). When it cannot, the error carries the last line it
/// logged (its cause: "address already in use"), not only where the log is.
async fn start(config: &ClientConfig) -> anyhow::Result<Health> {
    std::fs::create_dir_all(&config.state_dir).with_context(|| {
        format!(
            "cannot create the state directory {}",
            config.state_dir.display()
        )
    })?;
    let _starting = super::progress::Stage::spinner("starting the catty daemon");
    let log = log_path(&config.state_dir);
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    // What this start logs comes after this: older lines are another start's.
    let logged_before = log_file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut child = std::process::Command::new(&config.exe);
    child
        .arg("api")
        .arg("--addr")
        .arg(config.api_addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    new_session(&mut child);
    let mut child = child
        .spawn()
        .with_context(|| format!("cannot start {}", config.exe.display()))?;
    let deadline = Instant::now() + START_TIMEOUT;
    let failed = |what: String| {
        let cause = last_line(&log, logged_before)
            .map(|line| format!(": {line}"))
            .unwrap_or_default();
        anyhow!("{what}{cause} (its log: {})", log.display())
    };
    while Instant::now() < deadline {
        if let Some(found) = health(config.api_addr).await {
            return Ok(found);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(failed(format!(
                "the catty daemon exited at start ({status})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(failed(format!(
        "the catty daemon did not start within {} s",
        START_TIMEOUT.as_secs()
    )))
}

/// Puts the daemon in a session of its own: no controlling terminal, so closing this
/// terminal (SIGHUP) or Ctrl-C here never reaches it, and it never reads or writes the
/// user's terminal.
fn new_session(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the child only calls setsid, which is async-signal-safe;
    // the closure allocates nothing.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| Ok(rustix::process::setsid().map(drop)?));
    }
}

/// The last line the daemon wrote to its log after `offset`, without `catty: ` (how `main`
/// starts its one error line).
fn last_line(log: &std::path::Path, offset: u64) -> Option<String> {
    let text = std::fs::read(log).ok()?;
    let text = String::from_utf8_lossy(text.get(offset as usize..)?).into_owned();
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?.trim();
    Some(line.strip_prefix("catty: ").unwrap_or(line).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::testing::test_pki;
    use crate::protocol::api::WhoAmI;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A hosted API stand-in over TLS: answers one request with `whoami` and hands back the
    /// request's head.
    async fn tls_api(
        server: std::sync::Arc<rustls::ServerConfig>,
    ) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(server).accept(tcp).await else {
                return String::new();
            };
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8];
                if tls.read(&mut byte).await.unwrap() == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let body = r#"{"email":"a@example.com","subject":"a"}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            tls.write_all(answer.as_bytes()).await.unwrap();
            tls.shutdown().await.unwrap();
            String::from_utf8(head).unwrap()
        });
        (port, served)
    }

    #[tokio::test]
    async fn a_hosted_api_is_asked_over_https_with_the_users_token() {
        let (roots, server) = test_pki();
        let (port, served) = tls_api(server).await;
        let url = format!("https://localhost:{port}");
        let api = DaemonClient::hosted_with(&url, "cat_t0ken", roots);
        let who: WhoAmI = api.get("/v1/auth/whoami").await.unwrap();
        assert_eq!(who.email.as_deref(), Some("a@example.com"));
        let head = served.await.unwrap().to_ascii_lowercase();
        assert!(head.starts_with("get /v1/auth/whoami http/1.1"), "{head}");
        assert!(head.contains("authorization: bearer cat_t0ken"), "{head}");
        assert!(head.contains(&format!("host: localhost:{port}")), "{head}");
    }

    #[tokio::test]
    async fn a_hosted_api_whose_certificate_mozilla_does_not_trust_is_refused() {
        let (_, server) = test_pki();
        let (port, served) = tls_api(server).await;
        let api = DaemonClient::hosted(&format!("https://localhost:{port}"), "cat_t0ken");
        let err = api.get::<WhoAmI>("/v1/auth/whoami").await.unwrap_err();
        assert!(format!("{err:#}").contains("UnknownIssuer"), "{err:#}");
        assert_eq!(served.await.unwrap(), "", "no request was sent");
    }
}
