//! Test support for the daemon: a real `catty api --provider local` on a free loopback port
//! with its own state directory and `HOME` (killed on drop, with every runtime it started), a
//! small HTTP client, and `/proc` helpers to find and signal session runtimes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use catty::net::DialError;
use catty::protocol::ConnectParams;
use catty::protocol::api::{SessionCreated, SessionInfo, SessionList};
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;

use super::{Client, DEADLINE, sized};

pub mod proc;

use proc::{runtimes, signal};

/// A `catty api` child process and the directories it lives in.
pub struct Daemon {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// Holds `state/` (XDG_STATE_HOME), `home/` (HOME) and `api.log` (the daemon's stderr).
    pub root: tempfile::TempDir,
    pub sandbox: bool,
    pub token: String,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    /// The `error.code` of an error answer.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Daemon {
    /// Starts a daemon on a free port; `sandbox` false passes `--no-sandbox`.
    pub fn start(sandbox: bool) -> Daemon {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("home")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = port.local_addr().unwrap();
        drop(port);
        let mut daemon = Daemon {
            child: None,
            addr,
            root,
            sandbox,
            token: String::new(),
        };
        daemon.spawn();
        daemon
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.path().join("state/catty")
    }

    pub fn workspace(&self, session_id: &str) -> PathBuf {
        self.state_dir()
            .join("sessions")
            .join(session_id)
            .join("workspace")
    }

    /// Starts the binary (again, after a kill: same state, same port) and waits until it
    /// prints its address and answers `/healthz`.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "the daemon already runs");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("api.log"))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_catty"));
        cmd.args(["api", "--provider", "local", "--addr"])
            .arg(self.addr.to_string())
            .env("CATTY_API_ADDR", self.addr.to_string())
            .env("XDG_STATE_HOME", self.root.path().join("state"))
            .env("HOME", self.root.path().join("home"))
            .env("PS1", "$ ")
            .env("CATTY_LOG", "catty=debug,info")
            .env_remove("FLY_API_TOKEN")
            .env_remove("CATTY_CMD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            // Its own process group, as in a terminal, so a test can Ctrl-C the group.
            .process_group(0);
        if !self.sandbox {
            cmd.arg("--no-sandbox");
        }
        let mut child = cmd.spawn().expect("start catty api");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            format!("listening on {}", self.addr),
            "{}",
            self.log()
        );
        self.child = Some(child);
        let deadline = Instant::now() + DEADLINE;
        while healthz(self.addr).as_deref() != Some("ok") {
            assert!(
                Instant::now() < deadline,
                "no healthz; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.token = std::fs::read_to_string(self.state_dir().join("api.token"))
            .unwrap()
            .trim()
            .to_string();
    }

    /// `kill -9` the daemon.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the daemon runs");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM the daemon and wait for it to exit; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.as_ref().expect("the daemon runs").id() as i32;
        self.signal_and_wait(&pid.to_string(), "TERM")
    }

    /// Ctrl-C as a terminal sends it: SIGINT to the daemon's whole process group.
    pub fn interrupt_group(&mut self) -> Option<i32> {
        let pid = self.child.as_ref().expect("the daemon runs").id() as i32;
        self.signal_and_wait(&format!("-{pid}"), "INT")
    }

    fn signal_and_wait(&mut self, target: &str, sig: &str) -> Option<i32> {
        let mut child = self.child.take().expect("the daemon runs");
        let sent = Command::new("kill")
            .args([format!("-{sig}").as_str(), "--", target])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{sig} -- {target}");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the daemon ignores SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("api.log")).unwrap_or_default()
    }

    /// An HTTP client for this daemon that a spawned task can own.
    pub fn client(&self) -> ApiClient {
        ApiClient {
            addr: self.addr,
            token: self.token.clone(),
        }
    }

    /// Sends a request with exactly `headers` (no Host or token added).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Answer, String> {
        self.client().raw(method, path, headers, body).await
    }

    /// A request as the client makes it: loopback Host and the token.
    pub async fn call(&self, method: &str, path: &str, body: &str) -> Answer {
        self.client()
            .call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}; log:\n{}", self.log()))
    }

    pub async fn try_create(&self, body: &serde_json::Value) -> Result<SessionCreated, String> {
        self.client().try_create(body).await
    }

    /// Creates a session and checks it was.
    pub async fn create(&self, body: serde_json::Value) -> SessionCreated {
        self.try_create(&body)
            .await
            .unwrap_or_else(|e| panic!("create failed: {e}; log:\n{}", self.log()))
    }

    /// A session running an interactive bash.
    pub async fn create_bash(&self) -> SessionCreated {
        self.create(serde_json::json!({"agent": "shell", "cmd": ["bash", "--norc", "-i"]}))
            .await
    }

    pub async fn list(&self) -> Vec<SessionInfo> {
        let answer = self.call("GET", "/v1/sessions", "").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        serde_json::from_str::<SessionList>(&answer.body)
            .unwrap()
            .sessions
    }

    pub async fn session(&self, key: &str) -> SessionInfo {
        let answer = self.call("GET", &format!("/v1/sessions/{key}"), "").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        serde_json::from_str(&answer.body).unwrap()
    }

    pub async fn stop(&self, key: &str) -> SessionInfo {
        let answer = self
            .call("POST", &format!("/v1/sessions/{key}/stop"), "")
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        serde_json::from_str(&answer.body).unwrap()
    }

    /// The pid of the runtime serving `session_id`, from `/proc`.
    pub fn runtime_pid(&self, session_id: &str) -> Option<i32> {
        runtimes(&self.state_dir())
            .into_iter()
            .find(|(_, id)| id == session_id)
            .map(|(pid, _)| pid)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for (pid, _) in runtimes(&self.state_dir()) {
            signal(pid, "KILL");
        }
        if std::thread::panicking() {
            eprintln!("--- catty api log ---\n{}", self.log());
        }
    }
}

/// The daemon's address and token: enough to talk to it.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub addr: SocketAddr,
    pub token: String,
}

impl ApiClient {
    /// Sends a request with exactly `headers` (no Host or token added).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Answer, String> {
        let mut req = hyper::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(self.addr).await?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            let reply = async {
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                let bytes = resp.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>(Answer {
                    status,
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                })
            };
            tokio::select! {
                answer = reply => Ok(answer?),
                done = conn => Err(format!("connection closed: {done:?}").into()),
            }
        };
        let answer: Result<Answer, Box<dyn std::error::Error + Send + Sync>> =
            match tokio::time::timeout(DEADLINE, exchange).await {
                Ok(answer) => answer,
                Err(_) => return Err(format!("{method} {path}: no answer in time")),
            };
        answer.map_err(|e| format!("{method} {path}: {e}"))
    }

    /// A request as the client makes it: loopback Host and the token.
    pub async fn call(&self, method: &str, path: &str, body: &str) -> Result<Answer, String> {
        let auth = format!("Bearer {}", self.token);
        let host = self.addr.to_string();
        let headers = [("host", host.as_str()), ("authorization", auth.as_str())];
        self.raw(method, path, &headers, body).await
    }

    pub async fn try_create(&self, body: &serde_json::Value) -> Result<SessionCreated, String> {
        let answer = self.call("POST", "/v1/sessions", &body.to_string()).await?;
        if answer.status != StatusCode::OK {
            return Err(format!("{}: {}", answer.status, answer.body));
        }
        serde_json::from_str(&answer.body).map_err(|e| format!("{e}: {}", answer.body))
    }
}

/// `GET /healthz` over a plain socket: the body of a 200 answer.
fn healthz(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// Async flavour of [`wait_until`] for conditions that ask the daemon.
pub async fn wait_for_state(daemon: &Daemon, key: &str, state: &str) -> SessionInfo {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let info = daemon.session(key).await;
        if serde_json::to_value(info.state).unwrap() == state {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "session {key} is still {:?}, not {state}",
            info.state
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Client {
    /// Attaches to a session the daemon made, with that session's own token.
    pub async fn connect_with_token(
        connect_url: &str,
        token: &str,
        params: &ConnectParams,
    ) -> Result<Client, DialError> {
        let base = connect_url.replacen("http://", "ws://", 1);
        let url = format!("{base}/connect?{}", params.to_query());
        Client::dial(&url, token).await
    }

    /// Attaches interactively (80x24) to a session; panics if it cannot.
    pub async fn attach(connect_url: &str, token: &str) -> Client {
        Client::connect_with_token(connect_url, token, &sized(80, 24))
            .await
            .unwrap_or_else(|e| panic!("cannot attach to {connect_url}: {e}"))
    }

    /// Types `command` and waits for `expect` in the output.
    pub async fn run(&mut self, command: &str, expect: &str) {
        self.send(format!("{command}\n").as_bytes()).await;
        self.read_until_contains(expect).await;
    }
}
