//! The gateway as its tests need it: a database of its own (`common::pg`), the real binary as
//! `catty gateway --listen 127.0.0.1:0` in front of a fake upstream (`common::upstream`) for
//! all three providers, its log in a file (debug level), users and sessions inserted straight
//! into the tables, tokens minted with the test's gateway key, the books (`quota`,
//! `reservations`, `usage_events`) read back, a second instance on the same database, and an
//! HTTP client whose answers are read frame by frame.

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
    db: TestDb,
    pg: tokio_postgres::Client,
}

/// A user's quota this month as the gateway's database has it (all periods together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Books {
    pub used: i64,
    pub reserved: i64,
    /// `reservations` rows: holds in flight.
    pub holds: i64,
}

/// One `usage_events` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub provider: String,
    pub model: Option<String>,
    pub upstream_request_id: String,
    /// input, cache write, cache read, output
    pub tokens: (i64, i64, i64, i64),
    pub reported: bool,
    pub units: i64,
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

    /// Another instance on this one's database (the quota, sessions and instances shared).
    pub async fn beside(
        &self,
        upstream: &FakeUpstream,
        keys: &[&str],
        env: &[(&str, &str)],
    ) -> Gateway {
        let db = TestDb {
            name: self.db.name.clone(),
            url: self.db.url.clone(),
        };
        Gateway::start_on(db, upstream, keys, env).await
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
            db,
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

    /// The user who owns session `id`.
    pub async fn owner(&self, id: &str) -> String {
        let sql = "SELECT owner FROM sessions WHERE id = $1";
        self.pg.query_one(sql, &[&id]).await.unwrap().get(0)
    }

    /// Sets `user`'s `used` this month (making the row), as if spent already.
    pub async fn spent(&self, user: &str, used: i64) {
        let sql = "INSERT INTO quota (user_id, period_start, used)
                   VALUES ($1, date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', $2)
                   ON CONFLICT (user_id, period_start) DO UPDATE SET used = $2";
        self.pg.execute(sql, &[&user, &used]).await.unwrap();
    }

    /// Puts `user` on the paid plan: an active subscription, as Stripe's webhook stores it.
    pub async fn subscribe(&self, user: &str) {
        let sql = "INSERT INTO subscriptions (user_id, status) VALUES ($1, 'active')";
        self.pg.execute(sql, &[&user]).await.unwrap();
    }

    /// `user`'s books now.
    pub async fn books(&self, user: &str) -> Books {
        let row = (self.pg)
            .query_one(
                "SELECT COALESCE(sum(used), 0)::bigint, COALESCE(sum(reserved), 0)::bigint,
                        (SELECT count(*) FROM reservations WHERE user_id = $1)
                 FROM quota WHERE user_id = $1",
                &[&user],
            )
            .await
            .unwrap();
        Books {
            used: row.get(0),
            reserved: row.get(1),
            holds: row.get(2),
        }
    }

    /// `user`'s books once nothing is held any more (every request settled or swept).
    pub async fn settled(&self, user: &str) -> Books {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let books = self.books(user).await;
            if books.reserved == 0 && books.holds == 0 {
                return books;
            }
            assert!(Instant::now() < deadline, "still held: {books:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `usage_events` rows of `user`, oldest first.
    pub async fn usage(&self, user: &str) -> Vec<UsageRow> {
        let rows = (self.pg)
            .query(
                "SELECT provider, model, upstream_request_id, input_tokens, cache_write_tokens,
                        cache_read_tokens, output_tokens, reported, units
                 FROM usage_events WHERE user_id = $1 ORDER BY id",
                &[&user],
            )
            .await
            .unwrap();
        (rows.iter())
            .map(|r| UsageRow {
                provider: r.get(0),
                model: r.get(1),
                upstream_request_id: r.get(2),
                tokens: (r.get(3), r.get(4), r.get(5), r.get(6)),
                reported: r.get(7),
                units: r.get(8),
            })
            .collect()
    }

    /// SIGKILL, as a crash: no drain, no settling.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
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
