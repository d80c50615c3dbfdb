//! Test support: a real `catty exec` process on a loopback port (killed on drop), a
//! WebSocket client that tracks output offsets, and a TCP proxy whose links can be cut or
//! stalled (`proxy`); the daemon's harness (`api`), the Fly.io fake (`fly`) a real terminal
//! (`tmux`), a daemon that only looks sessions up (`lookup`) and a session for sync-back
//! (`sync_server`) beside.

/// The daemon's harness (`api_*` tests and `fly_provider`).
pub mod api;
pub mod fly;
pub mod gateway;
pub mod hosted;
mod http;
pub mod launch;
mod listen;
pub mod localstripe;
pub mod lookup;
pub mod oidc;
pub mod pg;
mod proxy;
pub mod repo;
pub mod stripe;
pub mod sync_server;
pub mod tmux;
pub mod upstream;

pub use http::{HttpReply, http_send, parse_http_reply};
pub use listen::listening_addr;
pub use proxy::{Cut, CutKind, Proxy, Schedule};

use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use catty::net::{ClientSocket, DialError, dial};
use catty::protocol::{ClientMsg, ConnectParams, ExitStatus, PING_INTERVAL, ServerMsg};
use fastwebsockets::{Frame, OpCode, Payload};

/// Every wait in the tests ends by this deadline at the latest.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// Tests that write or compress hundreds of MiB take turns, so memory measurements and the
/// disk stay quiet; they would crowd each other past their deadlines on a small machine.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running local session as a daemon describes it, its runtime at `runtime`.
pub fn running_session(
    session_id: &str,
    label: &str,
    runtime: SocketAddr,
) -> catty::protocol::api::SessionInfo {
    use catty::protocol::api::{SessionInfo, SessionState};
    SessionInfo {
        session_id: session_id.into(),
        label: label.into(),
        state: SessionState::Running,
        agent: catty::protocol::Agent::Shell,
        provider: "local".into(),
        region: None,
        machine_id: "m-1".into(),
        created_at: 0,
        expires_at: u64::MAX / 2,
        connect_url: format!("http://{runtime}"),
        connect_token: TOKEN.into(),
        headers: Default::default(),
        cmd: None,
        exit_code: None,
        ended_at: None,
    }
}

/// `out` of a program that must have succeeded; its stderr is the failure message.
pub fn succeeded(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The first `program` on this process's `PATH`.
pub fn which(program: &str) -> std::path::PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} is not on the PATH"))
}

/// Runs the ignored test `name` (its path in this crate, `module::test`) alone in a new
/// process of this test binary, set up by `setup` (its environment); panics unless it passed.
/// For what is per process: a measurement of the process itself, `git`'s global config.
pub fn run_alone(name: &str, setup: impl FnOnce(&mut Command)) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--ignored", "--quiet", "--test-threads=1"]);
    setup(&mut cmd);
    let Output { status, stdout, .. } = cmd.output().unwrap();
    let output = String::from_utf8_lossy(&stdout);
    assert!(
        status.success(),
        "{name} failed in its own process:\n{output}"
    );
    assert!(output.contains("1 passed"), "{name} did not run: {output}");
}

/// Where a runtime's log goes: nowhere, or the tests' stderr with `CATTY_TEST_LOG` set.
pub fn runtime_log() -> Stdio {
    match std::env::var_os("CATTY_TEST_LOG") {
        Some(_) => Stdio::inherit(),
        None => Stdio::null(),
    }
}

/// A `catty exec` child process serving one session.
pub struct Runtime {
    pub child: Child,
    pub addr: SocketAddr,
    pub workspace: tempfile::TempDir,
    /// The output transcript's directory (`CATTY_TRANSCRIPT`), apart from the workspace.
    pub transcript: tempfile::TempDir,
}

impl Runtime {
    /// Like [`Runtime::start`], but in a given workspace (e.g. nested in a directory the test
    /// inspects for stray writes).
    pub fn start_in(workspace: tempfile::TempDir, argv: &[&str], env: &[(&str, &str)]) -> Runtime {
        let transcript = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_catty"));
        cmd.arg("exec")
            .env("CATTY_TRANSCRIPT", transcript.path())
            .args(["--addr", "127.0.0.1:0", "--workspace"])
            .arg(workspace.path())
            .arg("--")
            .args(argv)
            .env("CONNECT_TOKEN", TOKEN)
            .env("CATTY_GRACE_SEC", "10")
            .env("CATTY_LOG", "catty=debug")
            .env("PS1", "$ ")
            .stdout(Stdio::piped())
            .stderr(runtime_log());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start catty exec");
        let addr = listening_addr(&mut child);
        Runtime {
            child,
            addr,
            workspace,
            transcript,
        }
    }

    /// Starts the runtime running `argv` with extra environment `env`.
    pub fn start(argv: &[&str], env: &[(&str, &str)]) -> Runtime {
        Self::start_in(tempfile::tempdir().unwrap(), argv, env)
    }

    pub fn http(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits for the runtime process to exit on its own; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a client received, with the output in stream order.
pub struct Client {
    ws: ClientSocket,
    /// Every numbered output byte received, starting at `first_offset`.
    pub output: Vec<u8>,
    pub first_offset: u64,
    /// The redraw frame, if `ready` announced one.
    pub redraw: Option<Vec<u8>>,
    pub ready: ServerMsg,
    pub exit: Option<ExitStatus>,
    pub errors: Vec<String>,
    pub acks: Vec<u64>,
    /// Every `ending` (seconds left until the session's TTL ends it).
    pub endings: Vec<u64>,
    /// The code of the server's close frame, once it came.
    pub close_code: Option<u16>,
    /// Whether reading also pings now and then, as a real client does: the runtime drops a
    /// client it has not heard from for `DEAD_LINK`. Off for a test of silence itself.
    pub keepalive: bool,
    last_sent: Instant,
    expect_redraw: bool,
}

impl Client {
    pub async fn connect(addr: SocketAddr, params: &ConnectParams) -> Result<Client, DialError> {
        Self::connect_url(&format!("ws://{addr}/connect?{}", params.to_query())).await
    }

    pub async fn connect_url(url: &str) -> Result<Client, DialError> {
        Self::dial(url, TOKEN).await
    }

    /// Opens `url` with `token` as the bearer and reads the `ready` that comes first.
    pub async fn dial(url: &str, token: &str) -> Result<Client, DialError> {
        let auth = format!("Bearer {token}");
        let mut ws = dial(url, &[("authorization", &auth)]).await?;
        ws.set_auto_pong(true);
        let frame = tokio::time::timeout(DEADLINE, ws.read_frame())
            .await
            .expect("ready in time")
            .expect("ready");
        assert_eq!(frame.opcode, OpCode::Text, "the first frame is ready");
        let ready = ServerMsg::parse(std::str::from_utf8(&frame.payload).unwrap()).unwrap();
        let ServerMsg::Ready { offset, redraw, .. } = ready else {
            panic!("first message {ready:?}")
        };
        Ok(Client {
            ws,
            output: Vec::new(),
            first_offset: offset,
            redraw: None,
            ready,
            exit: None,
            errors: Vec::new(),
            acks: Vec::new(),
            endings: Vec::new(),
            close_code: None,
            keepalive: true,
            last_sent: Instant::now(),
            expect_redraw: redraw,
        })
    }

    /// Reads one frame. `Ok(false)` when the connection is closed.
    pub async fn step(&mut self) -> Result<bool, fastwebsockets::WebSocketError> {
        let frame = self.ws.read_frame().await?;
        if self.keepalive && self.last_sent.elapsed() >= PING_INTERVAL {
            let ping = ClientMsg::Ping.to_json().into_bytes();
            self.ws
                .write_frame(Frame::text(Payload::Owned(ping)))
                .await?;
            self.last_sent = Instant::now();
        }
        match frame.opcode {
            OpCode::Binary if std::mem::take(&mut self.expect_redraw) => {
                self.redraw = Some(frame.payload.to_vec())
            }
            OpCode::Binary => self.output.extend_from_slice(&frame.payload),
            OpCode::Text => {
                match ServerMsg::parse(std::str::from_utf8(&frame.payload).unwrap()).unwrap() {
                    ServerMsg::Exit(status) => self.exit = Some(status),
                    ServerMsg::Error { message } => self.errors.push(message),
                    ServerMsg::Ack { input } => self.acks.push(input),
                    ServerMsg::Ending { in_sec } => self.endings.push(in_sec),
                    _ => {}
                }
            }
            OpCode::Close => {
                let code = frame.payload.get(..2);
                self.close_code = code.map(|c| u16::from_be_bytes([c[0], c[1]]));
                return Ok(false);
            }
            _ => {}
        }
        Ok(true)
    }

    /// Reads until `done` holds, failing the test at the deadline.
    pub async fn read_until(&mut self, what: &str, done: impl Fn(&Client) -> bool) {
        let waited = tokio::time::timeout(DEADLINE, async {
            while !done(self) {
                match self.step().await {
                    Ok(true) => {}
                    Ok(false) => panic!("connection closed while waiting for {what}"),
                    Err(e) => panic!("connection failed while waiting for {what}: {e}"),
                }
            }
        });
        if waited.await.is_err() {
            panic!(
                "timed out waiting for {what}; output so far: {:?}",
                self.text()
            );
        }
    }

    pub async fn read_until_contains(&mut self, needle: &str) {
        let n = needle.to_string();
        self.read_until(needle, move |c| c.text().contains(&n))
            .await;
    }

    /// Reads until the server closes the connection; returns whether it closed in time.
    pub async fn read_to_close(&mut self) {
        let closed = tokio::time::timeout(DEADLINE, async {
            loop {
                match self.step().await {
                    Ok(true) => {}
                    _ => return,
                }
            }
        });
        closed
            .await
            .expect("the server closes the connection in time");
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }

    pub async fn send(&mut self, input: &[u8]) {
        self.ws
            .write_frame(Frame::binary(Payload::Owned(input.to_vec())))
            .await
            .unwrap();
    }

    pub async fn control(&mut self, msg: &ClientMsg) {
        self.ws
            .write_frame(Frame::text(Payload::Owned(msg.to_json().into_bytes())))
            .await
            .unwrap();
    }

    /// Sends `frame` as it is (fragments, odd opcodes); an error once the server closed.
    pub async fn send_frame(
        &mut self,
        frame: Frame<'_>,
    ) -> Result<(), fastwebsockets::WebSocketError> {
        self.ws.write_frame(frame).await
    }

    /// Sends `frame` without the mask every client frame must carry (RFC 6455, 5.1).
    pub async fn send_unmasked(
        &mut self,
        frame: Frame<'_>,
    ) -> Result<(), fastwebsockets::WebSocketError> {
        self.ws.set_auto_apply_mask(false);
        let sent = self.ws.write_frame(frame).await;
        self.ws.set_auto_apply_mask(true);
        sent
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .write_frame(Frame::text(Payload::Owned(text.as_bytes().to_vec())))
            .await
            .unwrap();
    }
}

/// Waits until the process `pid` has no child processes left (its program has exited).
pub fn wait_for_no_children(pid: i32) {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        let children: String = tasks
            .map(|t| {
                std::fs::read_to_string(t.unwrap().path().join("children")).unwrap_or_default()
            })
            .collect();
        if children.trim().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("process {pid} still has children");
}

/// A random client id for exactly-once input.
pub fn client_id() -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random number below `n`.
pub fn random_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes) % n
}

/// Interactive connection parameters of a given size.
pub fn sized(cols: u16, rows: u16) -> ConnectParams {
    ConnectParams {
        size: Some((cols, rows)),
        ..Default::default()
    }
}

/// Peak resident memory of process `pid` in bytes (`VmHWM` in /proc/PID/status).
pub fn peak_rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"));
    kib * 1024
}

/// A stand-in daemon's `/healthz`: `200 ok` saying it is of the client's build (the header
/// `catty api` sends), so the client under test neither restarts nor refuses it.
pub fn daemon_healthz() -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_catty"));
    let build = catty::version::build_of(exe).expect("the catty binary");
    hyper::Response::builder()
        .header(catty::protocol::api::DAEMON_VERSION_HEADER, build)
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"ok")))
        .unwrap()
}
