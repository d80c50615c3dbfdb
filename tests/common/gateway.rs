//! The gateway as its tests need it: a database of its own (`common::pg`), the real binary as
//! `catty gateway --listen 127.0.0.1:0` in front of a fake upstream (`common::upstream`) for
//! all three providers, its log in a file (debug level), users and sessions inserted straight
//! into the tables, tokens minted with the test's gateway key, and an HTTP client whose
//! answers are read frame by frame.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use catty::llm_token::LlmKey;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use super::DEADLINE;
use super::launch::healthz;
use super::listen::listening_addr;
use super::pg::{self, TestDb};
use super::upstream::FakeUpstream;

pub const GATEWAY_KEY: &str = "test-gateway-key-0123456789abcdef-0123";

pub struct Gateway {
    pub addr: SocketAddr,
    child: Child,
    log: tempfile::NamedTempFile,
    _db: TestDb,
    pg: tokio_postgres::Client,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `catty gateway`, or the build `CATTY_BENCH_BIN` names (a release build, for numbers).
fn gateway_command() -> Command {
    let bin = std::env::var_os("CATTY_BENCH_BIN");
    let mut cmd = Command::new(
        bin.as_deref()
            .unwrap_or(env!("CARGO_BIN_EXE_catty").as_ref()),
    );
    cmd.arg("gateway").stdin(Stdio::null()).env_clear();
    cmd
}

impl Gateway {
    /// A gateway whose three providers are `upstream`, each with `keys`; `env` adds to its
    /// environment (`CATTY_GATEWAY_IDLE`).
    pub async fn start(upstream: &FakeUpstream, keys: &[&str], env: &[(&str, &str)]) -> Gateway {
        Gateway::start_on(pg::database().await, upstream, keys, env).await
    }

    /// [`Gateway::start`] on `db`, a database the test shares with others (the hosted API).
    pub async fn start_on(
        db: TestDb,
        upstream: &FakeUpstream,
        keys: &[&str],
        env: &[(&str, &str)],
    ) -> Gateway {
        let log = tempfile::NamedTempFile::new().unwrap();
        let (url, keys) = (upstream.url(), keys.join(","));
        let mut cmd = gateway_command();
        cmd.args(["--listen", "127.0.0.1:0"])
            .env("CATTY_DATABASE_URL", &db.url)
            .env("CATTY_GATEWAY_KEY", GATEWAY_KEY)
            .env("CATTY_LOG", "catty=debug,info")
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap());
        for provider in ["ANTHROPIC", "OPENAI", "GEMINI"] {
            cmd.env(format!("CATTY_{provider}_UPSTREAM"), &url);
            cmd.env(format!("CATTY_{provider}_KEYS"), &keys);
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().expect("start catty gateway");
        let addr = listening_addr(&mut child);
        let deadline = Instant::now() + DEADLINE;
        while !tokio::task::spawn_blocking(move || healthz(addr))
            .await
            .unwrap()
        {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(log.path()).unwrap_or_default();
                panic!("catty gateway exited at start: {status}\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "catty gateway did not answer in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pg = pg::cluster().connect(&db.name).await;
        Gateway {
            addr,
            child,
            log,
            _db: db,
            pg,
        }
    }

    /// A new live session of a new user: its id and its token.
    pub async fn session(&self) -> (String, String) {
        let (user, id) = (
            format!("u-{}", super::client_id()),
            format!("s-{}", super::client_id()),
        );
        self.pg
            .execute(
                "INSERT INTO users (id, issuer, subject) VALUES ($1, 'test', $1)",
                &[&user],
            )
            .await
            .unwrap();
        self.pg
            .execute(
                "INSERT INTO sessions (id, owner, label, live, destroy_pending, expires_at,
                     created_at, record)
                 VALUES ($1, $2, $1, true, false, now() + interval '1 hour', now(), '{}'::jsonb)",
                &[&id, &user],
            )
            .await
            .unwrap();
        let token = LlmKey::new(GATEWAY_KEY.as_bytes()).mint(&id);
        (id, token)
    }

    /// Ends session `id`, as the API does when it stops.
    pub async fn end(&self, id: &str) {
        let sql = "UPDATE sessions SET live = false, ended_at = now() WHERE id = $1";
        assert_eq!(self.pg.execute(sql, &[&id]).await.unwrap(), 1);
    }

    /// SIGTERM, as a machine is stopped; then waits for the process to exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the gateway did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap()
    }

    /// A request to the gateway: `POST path` with `headers` and `body`.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Request<Full<Bytes>> {
        let mut req = Request::post(path).header("host", self.addr.to_string());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .unwrap()
    }
}

/// Sends `req` to `addr` on a connection of its own: the answer's head, its body to come.
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    tokio::time::timeout(DEADLINE, sender.send_request(req))
        .await
        .expect("an answer within the deadline")
        .unwrap()
}

/// The whole body, or the bytes that came before it broke off and whether it did.
pub async fn read_all(resp: Response<Incoming>) -> (Vec<u8>, bool) {
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    loop {
        match tokio::time::timeout(DEADLINE, body.frame())
            .await
            .expect("within the deadline")
        {
            None => return (bytes, false),
            Some(Err(_)) => return (bytes, true),
            Some(Ok(frame)) => bytes.extend_from_slice(frame.data_ref().map_or(&[][..], |d| d)),
        }
    }
}
