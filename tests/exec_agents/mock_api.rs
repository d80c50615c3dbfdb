//! A stand-in for a provider's API (or catty's gateway) on loopback: records each request's
//! target and credential headers, and answers every request whose target contains a marker
//! with one canned reply, any other with another. Agents are pointed at it by their base URL.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::common::DEADLINE;

/// The credential headers of one request that reached the stand-in.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `POST /v1/messages?beta=true`.
    pub target: String,
    pub api_key: Option<String>,
    pub authorization: Option<String>,
    pub goog_api_key: Option<String>,
}

/// One canned answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: String,
}

impl Reply {
    /// A 400 in the shape of `error`: every agent shows it and waits at its prompt.
    pub fn bad_request(error: serde_json::Value) -> Reply {
        Reply {
            status: 400,
            headers: Vec::new(),
            body: error.to_string(),
        }
    }
}

pub struct MockApi {
    pub addr: std::net::SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    /// Every request taken from `seen` so far.
    pub taken: Vec<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl MockApi {
    /// Answers requests whose target contains `on` with `reply`, others with `other`.
    pub async fn start(on: &'static str, reply: Reply, other: Reply) -> MockApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (reply, other) = (reply.clone(), other.clone());
                tokio::spawn(answer(stream, tx.clone(), on, reply, other));
            }
        });
        MockApi {
            addr,
            seen,
            taken: Vec::new(),
            task,
        }
    }

    /// Answers everything with `reply`.
    pub async fn always(reply: Reply) -> MockApi {
        MockApi::start("", reply.clone(), reply).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next request whose target starts with `prefix` (`POST /v1/messages`).
    pub async fn next(&mut self, prefix: &str) -> Seen {
        let wait = tokio::time::timeout(DEADLINE + Duration::from_secs(30), async {
            loop {
                let seen = self.seen.recv().await.expect("the stand-in runs");
                self.taken.push(seen.clone());
                if seen.target.starts_with(prefix) {
                    return seen;
                }
            }
        });
        wait.await
            .unwrap_or_else(|_| panic!("no {prefix} reached the stand-in"))
    }

    /// How many requests so far had a target starting with `prefix`.
    pub fn count(&mut self, prefix: &str) -> usize {
        while let Ok(seen) = self.seen.try_recv() {
            self.taken.push(seen);
        }
        let taken = self.taken.iter();
        taken.filter(|s| s.target.starts_with(prefix)).count()
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    mut stream: tokio::net::TcpStream,
    tx: mpsc::UnboundedSender<Seen>,
    on: &str,
    reply: Reply,
    other: Reply,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let target = head.lines().next().unwrap_or_default();
    let target = target
        .rsplit_once(' ')
        .map_or(target, |(t, _)| t)
        .to_string();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let length: usize = header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = buf.len() - head_end - 4;
    while body < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body += n,
        }
    }
    let reply = if target.contains(on) { reply } else { other };
    let _ = tx.send(Seen {
        target,
        api_key: header("x-api-key"),
        authorization: header("authorization"),
        goog_api_key: header("x-goog-api-key"),
    });
    let mut head = format!(
        "HTTP/1.1 {} Stand-in\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let _ = stream
        .write_all(format!("{head}\r\n{}", reply.body).as_bytes())
        .await;
}
