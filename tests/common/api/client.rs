//! A small HTTP client for a daemon under test, local or Fly.io: requests as the catty client
//! makes them (loopback Host, the bearer token) or with exactly the headers a test gives, and
//! the session calls the tests make, each checking the answer's status.

use std::time::{Duration, Instant};

use bytes::Bytes;
use catty::protocol::api::{SessionCreated, SessionInfo, SessionList};
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;

use crate::common::DEADLINE;

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

    /// The body of a 200 answer, parsed.
    #[track_caller]
    fn ok<T: serde::de::DeserializeOwned>(&self) -> T {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A daemon's address and token: enough to talk to it.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub addr: std::net::SocketAddr,
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

    /// A request as the client makes it (loopback Host and the token); `Err` when no answer
    /// came, as when the daemon is killed in the middle.
    pub async fn try_call(&self, method: &str, path: &str, body: &str) -> Result<Answer, String> {
        let auth = format!("Bearer {}", self.token);
        let host = self.addr.to_string();
        let headers = [("host", host.as_str()), ("authorization", auth.as_str())];
        self.raw(method, path, &headers, body).await
    }

    /// A request as the client makes it, which must be answered.
    pub async fn call(&self, method: &str, path: &str, body: &str) -> Answer {
        let answer = self.try_call(method, path, body).await;
        answer.unwrap_or_else(|e| panic!("{e}"))
    }

    /// `POST /v1/sessions`: the session, or why there is none.
    pub async fn try_create(&self, body: &serde_json::Value) -> Result<SessionCreated, String> {
        let answer = self
            .try_call("POST", "/v1/sessions", &body.to_string())
            .await?;
        if answer.status != StatusCode::OK {
            return Err(format!("{}: {}", answer.status, answer.body));
        }
        serde_json::from_str(&answer.body).map_err(|e| format!("{e}: {}", answer.body))
    }

    /// Creates a session and checks it was.
    pub async fn create(&self, body: serde_json::Value) -> SessionCreated {
        let created = self.try_create(&body).await;
        created.unwrap_or_else(|e| panic!("create failed: {e}"))
    }

    /// A create that must be refused: the error answer.
    pub async fn create_refused(&self, body: serde_json::Value) -> Answer {
        let answer = self.call("POST", "/v1/sessions", &body.to_string()).await;
        assert_ne!(answer.status, StatusCode::OK, "created: {}", answer.body);
        answer
    }

    /// A session running an interactive bash.
    pub async fn create_bash(&self) -> SessionCreated {
        self.create(serde_json::json!({"agent": "shell", "cmd": ["bash", "--norc", "-i"]}))
            .await
    }

    pub async fn list(&self) -> Vec<SessionInfo> {
        let list: SessionList = self.call("GET", "/v1/sessions", "").await.ok();
        list.sessions
    }

    pub async fn session(&self, key: &str) -> SessionInfo {
        self.call("GET", &format!("/v1/sessions/{key}"), "")
            .await
            .ok()
    }

    pub async fn stop(&self, key: &str) -> SessionInfo {
        self.call("POST", &format!("/v1/sessions/{key}/stop"), "")
            .await
            .ok()
    }

    /// `POST /v1/sessions/{key}/extend` with `body`, whatever it answers.
    pub async fn extend(&self, key: &str, body: &str) -> Answer {
        self.call("POST", &format!("/v1/sessions/{key}/extend"), body)
            .await
    }

    /// `POST /v1/sessions/{key}/extend` by `by_sec`, which must succeed.
    pub async fn extended(&self, key: &str, by_sec: u64) -> SessionInfo {
        let body = format!(r#"{{"by_sec":{by_sec}}}"#);
        self.extend(key, &body).await.ok()
    }

    /// `POST /v1/sessions/stop-all`: how many it stopped.
    pub async fn stop_all(&self) -> u64 {
        let answer: serde_json::Value = self.call("POST", "/v1/sessions/stop-all", "").await.ok();
        answer["stopped"].as_u64().unwrap()
    }

    /// Waits until the session is in `state` (the daemon checks its machine on every GET).
    pub async fn wait_for_state(&self, key: &str, state: &str) -> SessionInfo {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let info = self.session(key).await;
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
}
