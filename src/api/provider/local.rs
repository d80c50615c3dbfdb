//! The local provider: each session is a `catty exec` process on this computer (in bubblewrap
//! when available), in its own process group so it outlives the daemon, with its workspace
//! under `<state_dir>/sessions/<id>/`. A process is named by its pid and start time.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::process::Child;
use tokio::task::JoinSet;

use super::launch::{self, Launch};
use super::sandbox::{Dirs, Sandbox, Spawned};
use super::{Liveness, Machine, MachineSpec, Provider, procfs, runtime_process};
use crate::config::DEFAULT_SHELL;
use crate::net::RuntimeUrl;
use crate::protocol::api::{CreateSession, Ttl};
use crate::protocol::transcript::EXIT_HEADER;
use crate::protocol::{Agent, HEALTHZ_PATH};
use crate::{locks, private_dir};

/// How long a local runtime keeps work not yet pulled after its program exits.
const LOCAL_RETAIN_SEC: u64 = 24 * 3600;

/// How long a runtime may take to print its address: it binds a port, nothing more.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// One `/healthz` probe; loopback answers in microseconds.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Between two looks at a starting or stopping process.
const POLL: Duration = Duration::from_millis(20);

/// The runtime's stderr.
const LOG_FILE: &str = "runtime.log";
/// The runtime's stdout: its first line is `listening on ADDR`.
const OUT_FILE: &str = "runtime.out";

/// What the local provider needs from the daemon's configuration.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub state_dir: PathBuf,
    /// This binary, started as `catty exec`.
    pub exe: PathBuf,
    /// Use bubblewrap when it works here.
    pub sandbox: bool,
    /// The variables of the daemon's environment that sessions see.
    pub session_env: Vec<(String, String)>,
    /// The gateway's URL, when sessions go through one (`CATTY_GATEWAY_URL`).
    pub gateway_url: Option<String>,
}

pub struct Local {
    sessions_dir: PathBuf,
    exe: PathBuf,
    session_env: Vec<(String, String)>,
    sandbox: Sandbox,
    /// One waiter per runtime this daemon started: it reaps the runtime when it exits, so no
    /// zombie is left while the daemon lives.
    reapers: Mutex<JoinSet<()>>,
}

/// What the store keeps about a local machine.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct LocalPrivate {
    pid: i32,
    start_time: u64,
}

impl Local {
    pub async fn new(options: LocalOptions) -> anyhow::Result<Local> {
        let sessions_dir = options.state_dir.join("sessions");
        private_dir::create(&sessions_dir)?;
        let sandbox = Sandbox::detect(options.sandbox, &options.exe, &sessions_dir).await;
        if let Some(url) = &options.gateway_url
            && sandbox.own_network()
            && is_loopback(url)
        {
            tracing::warn!(
                "CATTY_GATEWAY_URL {url} is this computer's loopback, which sandboxed sessions \
                 cannot reach (their network is their own): let the gateway listen on another \
                 address of this computer and name that one"
            );
        }
        Ok(Local {
            sandbox,
            sessions_dir,
            exe: options.exe,
            session_env: options.session_env,
            reapers: Mutex::new(JoinSet::new()),
        })
    }

    fn session_dir(&self, session_id: &str) -> anyhow::Result<PathBuf> {
        // Ids are ours (`s-` and hex), but they end up in paths: be sure.
        let safe = !session_id.is_empty()
            && session_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !safe {
            bail!("bad session id {session_id:?}");
        }
        Ok(self.sessions_dir.join(session_id))
    }

    fn log_path(&self, session_id: &str) -> PathBuf {
        self.sessions_dir.join(session_id).join(LOG_FILE)
    }

    /// Where the session's program is and what its sandbox must show for it: the program the
    /// user's shell would run (`path`, or ours for a request that brought none).
    fn launch(
        &self,
        agent: Agent,
        cmd: Option<&[String]>,
        path: Option<&str>,
    ) -> Result<Launch, String> {
        let var = |name: &str| {
            self.session_env
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let program = match (cmd.and_then(|c| c.first()), agent.program()) {
            (Some(program), _) => program.as_str(),
            (None, Some(program)) => program,
            (None, None) => var("SHELL")
                .filter(|s| !s.is_empty())
                .unwrap_or(DEFAULT_SHELL),
        };
        let path = path.or_else(|| var("PATH")).unwrap_or_default();
        launch::plan(program, agent, path, &self.sandbox.shown())
    }

    /// Starts the runtime for `spec` on `listener`, its output going to files in `dir`.
    async fn spawn(
        &self,
        spec: &MachineSpec,
        dir: &Path,
        listener: &std::net::TcpListener,
    ) -> anyhow::Result<Spawned> {
        let launch = self
            .launch(spec.agent, spec.cmd.as_deref(), spec.path.as_deref())
            .map_err(anyhow::Error::msg)?;
        let workspace = dir.join("workspace");
        let home = dir.join("home");
        let transcript = dir.join("transcript");
        for d in [&workspace, &home, &transcript] {
            private_dir::create(d)?;
        }
        let log = open(&dir.join(LOG_FILE), false)?;
        let out = open(&dir.join(OUT_FILE), true)?;
        let args: Vec<OsString> = vec![
            "exec".into(),
            "--listen-fd".into(),
            listener.as_raw_fd().to_string().into(),
            "--workspace".into(),
            workspace.clone().into(),
            "--transcript".into(),
            transcript.clone().into(),
        ];
        let dirs = Dirs {
            workspace: &workspace,
            transcript: &transcript,
            home: &home,
            binds: &launch.binds,
            links: &launch.links,
        };
        let env = self.env(spec, launch.path)?;
        self.sandbox
            .spawn(&self.exe, &args, &dirs, &env, listener.as_fd(), (out, log))
            .await
            .with_context(|| {
                format!(
                    "cannot start the runtime ({}); its log: {}",
                    self.exe.display(),
                    dir.join(LOG_FILE).display()
                )
            })
    }

    /// The runtime's whole environment: ours that sessions may see, the `PATH` the launch
    /// found the program on, catty's own, and the credential the request brought or the
    /// gateway's URL and the session's token. `HOME` is set where the private home is.
    fn env(&self, spec: &MachineSpec, path: String) -> anyhow::Result<Vec<(String, String)>> {
        let mut env: Vec<_> = (self.session_env.iter())
            .filter(|(k, _)| k != "PATH")
            .cloned()
            .collect();
        env.extend([
            ("PATH".into(), path),
            ("CONNECT_TOKEN".into(), spec.connect_token.clone()),
            ("CATTY_AGENT".into(), spec.agent.as_str().into()),
            ("CATTY_TTL_SEC".into(), spec.ttl_sec.to_string()),
            // The workspace is on this computer: unpulled work may wait for a day.
            ("CATTY_RETAIN_SEC".into(), LOCAL_RETAIN_SEC.to_string()),
        ]);
        env.extend(spec.credentials.iter().map(|(k, v)| (k.into(), v.into())));
        env.extend(spec.llm.iter().flat_map(|llm| llm.env()));
        if let Some(argv) = &spec.cmd {
            env.push(("CATTY_CMD".into(), serde_json::to_string(argv)?));
        }
        Ok(env)
    }

    /// Waits for the runtime's address and finds the process to signal later (inside
    /// bubblewrap, the runtime is a grandchild: signals to bwrap are not passed on).
    async fn started(
        &self,
        child: &mut Child,
        session_id: &str,
        dir: &Path,
    ) -> anyhow::Result<Machine> {
        let log = dir.join(LOG_FILE);
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            if let Some(addr) = read_addr(&dir.join(OUT_FILE))? {
                break addr;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the runtime exited at start ({status}); its log: {}",
                    log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the runtime did not start within {} s; its log: {}",
                    START_TIMEOUT.as_secs(),
                    log.display()
                );
            }
            tokio::time::sleep(POLL).await;
        };
        let (pid, start_time) = if self.sandbox.is_on() {
            let found = procfs::runtimes(&self.sessions_dir)?
                .into_iter()
                .find(|r| r.session_id == session_id)
                .with_context(|| {
                    format!("the runtime is not in /proc; its log: {}", log.display())
                })?;
            (found.pid, found.start_time)
        } else {
            let pid = child.id().context("the runtime exited at start")? as i32;
            (pid, procfs::stat(pid)?.start_time)
        };
        Ok(machine(
            session_id,
            pid,
            start_time,
            RuntimeUrl::from(addr).to_string(),
        ))
    }

    /// Hands `child` to a waiter that reaps it when it exits.
    fn reap(&self, mut child: Child) {
        let mut reapers = locks::lock(&self.reapers);
        while reapers.try_join_next().is_some() {}
        reapers.spawn(async move {
            match child.wait().await {
                Ok(status) => tracing::debug!("runtime process exited: {status}"),
                Err(e) => tracing::warn!("cannot wait for a runtime process: {e}"),
            }
        });
    }

    /// Kills whatever a failed create left of `session_id`.
    async fn abandon(&self, mut child: Child, session_id: &str) {
        let _ = child.start_kill();
        if let Ok(runtimes) = procfs::runtimes(&self.sessions_dir) {
            for r in runtimes.iter().filter(|r| r.session_id == session_id) {
                let _ = signal::kill(Pid::from_raw(r.pid), Signal::SIGKILL);
            }
        }
        self.reap(child);
        if let Ok(dir) = self.session_dir(session_id) {
            remove_session_dirs(&dir).await;
        }
    }
}

impl Provider for Local {
    const NAME: &'static str = "local";
    const AUTHORITATIVE: bool = true;

    fn check(&self, req: &CreateSession) -> Result<(), String> {
        if req.region.is_some() {
            return Err(crate::protocol::api::NO_LOCAL_REGIONS.to_string());
        }
        self.launch(req.agent, req.cmd.as_deref(), req.path.as_deref())
            .map(drop)
    }

    async fn create(&self, spec: &MachineSpec) -> anyhow::Result<Machine> {
        let dir = self.session_dir(&spec.session_id)?;
        private_dir::create(&dir)?;
        // Bound here, in this computer's network, and inherited: the sandbox's network is
        // its own, where nobody could reach a port the runtime bound.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .context("cannot bind a port on 127.0.0.1 for the runtime")?;
        let Spawned { mut child, network } = match self.spawn(spec, &dir, &listener).await {
            Ok(spawned) => spawned,
            Err(e) => {
                remove_session_dirs(&dir).await;
                return Err(e);
            }
        };
        // The runtime holds the socket now.
        drop(listener);
        if let Some(network) = network {
            self.reap(network);
        }
        match self.started(&mut child, &spec.session_id, &dir).await {
            Ok(machine) => {
                tracing::info!(machine = %machine.id, url = %machine.connect_url, sandboxed = self.sandbox.is_on(), "runtime started");
                self.reap(child);
                Ok(machine)
            }
            Err(e) => {
                self.abandon(child, &spec.session_id).await;
                Err(e)
            }
        }
    }

    async fn wait_ready(&self, machine: &Machine, timeout: Duration) -> anyhow::Result<()> {
        let p = private(machine)?;
        let log = self.log_path(&machine.session_id);
        let addr: SocketAddr = machine
            .connect_url
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("bad runtime address {:?}", machine.connect_url))?;
        let deadline = Instant::now() + timeout;
        loop {
            if healthz(addr).await {
                return Ok(());
            }
            if !procfs::is_alive(p.pid, p.start_time)? {
                bail!(
                    "the runtime exited before it answered; its log: {}",
                    log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the runtime did not answer /healthz within {} s; its log: {}",
                    timeout.as_secs(),
                    log.display()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn destroy(&self, machine: &Machine) -> anyhow::Result<()> {
        let p = private(machine)?;
        runtime_process::stop(p.pid, p.start_time)
            .await
            .with_context(|| format!("cannot stop runtime {}", machine.id))?;
        let dir = self.session_dir(&machine.session_id)?;
        remove_dir(&dir.join("workspace")).await?;
        remove_dir(&dir.join("transcript")).await?;
        remove_dir(&dir.join("home")).await
    }

    async fn list(&self) -> anyhow::Result<Vec<Machine>> {
        let dir = self.sessions_dir.clone();
        let runtimes = tokio::task::spawn_blocking(move || procfs::runtimes(&dir))
            .await?
            .context("cannot scan /proc")?;
        Ok(runtimes
            .into_iter()
            .map(|r| {
                let out = self.sessions_dir.join(&r.session_id).join(OUT_FILE);
                let url = match read_addr(&out) {
                    Ok(Some(addr)) => RuntimeUrl::from(addr).to_string(),
                    _ => String::new(),
                };
                machine(&r.session_id, r.pid, r.start_time, url)
            })
            .collect())
    }

    async fn alive(&self, machine: &Machine) -> anyhow::Result<Liveness> {
        let p = private(machine)?;
        // The pid and its start time are the whole truth; its runtime says whether the
        // program in it exited.
        if !procfs::is_alive(p.pid, p.start_time)? {
            return Ok(Liveness::Dead);
        }
        let addr = machine.connect_url.strip_prefix("http://");
        let exited = match addr.and_then(|a| a.parse().ok()) {
            Some(addr) => probe(addr).await.flatten(),
            None => None,
        };
        Ok(exited.map_or(Liveness::Alive, Liveness::Exited))
    }

    /// A local runtime is its own only deadline (the daemon's sweep is the backstop).
    async fn extend(&self, machine: &Machine, token: &str, expires_at: u64) -> anyhow::Result<Ttl> {
        super::tell_runtime(&machine.connect_url, &machine.headers, token, expires_at).await
    }

    async fn forget(&self, session_id: &str) {
        if let Ok(dir) = self.session_dir(session_id)
            && let Err(e) = remove_dir(&dir).await
        {
            tracing::warn!("{e:#}");
        }
    }

    async fn shutdown(&self) {
        let mut reapers = std::mem::take(&mut *locks::lock(&self.reapers));
        // The runtimes keep running; init adopts and reaps them.
        reapers.shutdown().await;
    }
}

fn machine(session_id: &str, pid: i32, start_time: u64, connect_url: String) -> Machine {
    Machine {
        id: format!("local-{pid}"),
        session_id: session_id.to_string(),
        connect_url,
        headers: Default::default(),
        region: None,
        private: serde_json::to_value(LocalPrivate { pid, start_time }).expect("plain numbers"),
    }
}

fn private(machine: &Machine) -> anyhow::Result<LocalPrivate> {
    serde_json::from_value(machine.private.clone())
        .with_context(|| format!("machine {} has no local process data", machine.id))
}

/// The address in the first line of the runtime's stdout, once that line is complete.
fn read_addr(out: &Path) -> anyhow::Result<Option<SocketAddr>> {
    let text = match std::fs::read_to_string(out) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", out.display())),
    };
    let Some((line, _)) = text.split_once('\n') else {
        return Ok(None);
    };
    let addr = line
        .strip_prefix("listening on ")
        .and_then(|a| a.trim().parse().ok())
        .with_context(|| format!("unexpected runtime output {line:?} in {}", out.display()))?;
    Ok(Some(addr))
}

/// Whether `GET /healthz` answers 200.
async fn healthz(addr: SocketAddr) -> bool {
    probe(addr).await.is_some()
}

/// `GET /healthz`: `None` unless it answers 200, else the program's exit code if it exited
/// (the runtime stays for its grace after that).
async fn probe(addr: SocketAddr) -> Option<Option<i32>> {
    let probe = async {
        let stream = TcpStream::connect(addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let req = hyper::Request::get(HEALTHZ_PATH)
            .header("host", addr.to_string())
            .body(Empty::<Bytes>::new())?;
        let answer = tokio::select! {
            resp = sender.send_request(req) => {
                let resp = resp?;
                let exit = resp.headers().get(EXIT_HEADER).and_then(|v| v.to_str().ok()?.parse().ok());
                (resp.status() == hyper::StatusCode::OK).then_some(exit)
            }
            _ = conn => None,
        };
        anyhow::Ok(answer)
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .ok()?
        .ok()?
}

fn open(path: &Path, truncate: bool) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(!truncate)
        .truncate(truncate)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Removes what `spawn` made in a session's directory, on a failed start.
async fn remove_session_dirs(dir: &Path) {
    let _ = remove_dir(&dir.join("workspace")).await;
    let _ = remove_dir(&dir.join("transcript")).await;
    let _ = remove_dir(&dir.join("home")).await;
}

async fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Whether `url`'s host is a loopback name or address.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_gateways_are_recognised() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:9/x",
        ] {
            assert!(super::is_loopback(url), "{url}");
        }
        for url in [
            "http://192.0.2.2:8080",
            "http://catty-gateway.flycast",
            "http://[fd00::2]",
        ] {
            assert!(!super::is_loopback(url), "{url}");
        }
    }
}
