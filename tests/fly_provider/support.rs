//! What the Fly.io provider tests share: the fake with a deployed image, what it recorded,
//! machines made behind the daemon's back, and a terminal through Fly's edge.

use catty::protocol::api::SessionCreated;
use catty::protocol::control::ServerMsg;
use fastwebsockets::{Frame, OpCode, Payload};
use hyper::StatusCode;
use serde_json::json;

use crate::common::api::proc::wait_until;
use crate::common::api::{Answer, ApiClient};
use crate::common::fly::{FakeFly, FakeFlyOptions, MachineView, RecordedRequest};
use crate::common::{DEADLINE, sized};

/// What `fly deploy` pushed: the app's one (stopped) machine runs it, and catty finds it there.
pub const SEED_IMAGE: &str = "registry.fly.io/catty-exec:deployment-01JTESTSEED";

pub fn fake() -> FakeFly {
    FakeFly::start(FakeFlyOptions {
        seed_image: Some(SEED_IMAGE.into()),
        image_env: vec![("PS1".into(), "$ ".into())],
        ..Default::default()
    })
}

/// The machines catty made (the seeded `fly deploy` machine left out).
pub fn made(fake: &FakeFly) -> Vec<MachineView> {
    fake.machines().into_iter().filter(|m| !m.seeded).collect()
}

pub fn requests(fake: &FakeFly, method: &str, path_end: &str) -> Vec<RecordedRequest> {
    let requests = fake.requests().into_iter();
    requests
        .filter(|r| r.method == method && r.path.ends_with(path_end))
        .collect()
}

/// Waits for the reaper's first pass (a list at the daemon's start), so that faults set
/// afterwards hit the calls a test means.
pub fn reaper_listed(fake: &FakeFly) {
    let path = format!("/apps/{}/machines", fake.app());
    wait_until("the reaper's first list", || {
        let mut requests = fake.requests().into_iter();
        requests.any(|r| r.method == "GET" && r.path.ends_with(&path) && r.query.is_empty())
    });
}

pub fn creates(fake: &FakeFly) -> Vec<RecordedRequest> {
    requests(fake, "POST", &format!("/apps/{}/machines", fake.app()))
}

/// A machine created straight on the fake, as another daemon (or a lost record) left it.
pub async fn foreign_machine(fake: &FakeFly, session: &str, expires_at: &str) -> String {
    let body = json!({"config": {
        "image": SEED_IMAGE,
        "env": {"CONNECT_TOKEN": "foreign", "CATTY_CMD": "[\"sleep\",\"600\"]"},
        "restart": {"policy": "no"},
        "auto_destroy": true,
        "services": [{"protocol": "tcp", "internal_port": 8080, "autostart": false,
            "ports": [{"port": 443, "handlers": ["tls", "http"]}]}],
        "metadata": {"catty_session": session, "label": "lost-otter-0001", "agent": "shell",
            "expires_at": expires_at},
    }});
    let raw = ApiClient {
        addr: fake.api_addr(),
        token: String::new(),
    };
    let (host, auth) = (fake.api_addr().to_string(), fake.auth_header());
    let headers = [("host", host.as_str()), ("authorization", auth.as_str())];
    let path = format!("/v1/apps/{}/machines", fake.app());
    let answer = raw
        .raw("POST", &path, &headers, &body.to_string())
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let id = answer.json()["id"].as_str().unwrap().to_string();
    assert!(fake.wait_for_state(&id, "started", DEADLINE));
    id
}

/// A WebSocket to the session through the edge, with the headers the daemon gave.
pub struct Terminal {
    ws: catty::net::ClientSocket,
    output: Vec<u8>,
}

impl Terminal {
    pub async fn attach(created: &SessionCreated) -> Terminal {
        let url = format!(
            "{}/connect?{}",
            created.connect_url,
            sized(80, 24).to_query()
        );
        let auth = format!("Bearer {}", created.connect_token);
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend(
            created
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let mut ws = catty::net::dial(&url, &headers).await.unwrap();
        ws.set_auto_pong(true);
        Terminal {
            ws,
            output: Vec::new(),
        }
    }

    pub async fn run(&mut self, command: &str, expect: &str) {
        let input = Payload::Owned(format!("{command}\n").into_bytes());
        self.ws.write_frame(Frame::binary(input)).await.unwrap();
        let read = tokio::time::timeout(DEADLINE, async {
            while !String::from_utf8_lossy(&self.output).contains(expect) {
                let frame = self.ws.read_frame().await.unwrap();
                match frame.opcode {
                    OpCode::Binary => self.output.extend_from_slice(&frame.payload),
                    OpCode::Close => panic!("closed while waiting for {expect:?}"),
                    _ => {}
                }
            }
        });
        if read.await.is_err() {
            panic!(
                "no {expect:?} in {:?}",
                String::from_utf8_lossy(&self.output)
            );
        }
    }

    /// Types `exit` and waits for the runtime to report the program's exit; returns when
    /// it was heard.
    pub async fn exit(&mut self) -> std::time::Instant {
        let input = Payload::Owned(b"exit\n".to_vec());
        self.ws.write_frame(Frame::binary(input)).await.unwrap();
        let read = tokio::time::timeout(DEADLINE, async {
            loop {
                let frame = self.ws.read_frame().await.unwrap();
                match frame.opcode {
                    OpCode::Text => {
                        let msg = serde_json::from_slice::<ServerMsg>(&frame.payload);
                        if let Ok(ServerMsg::Exit(_)) = msg {
                            return std::time::Instant::now();
                        }
                    }
                    OpCode::Close => panic!("closed before the program's exit"),
                    _ => {}
                }
            }
        });
        read.await.expect("the program's exit")
    }
}

pub fn one_line_error(answer: &Answer) -> String {
    let message = answer.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !message.contains('\n') && !message.contains('{'),
        "{message}"
    );
    message
}
