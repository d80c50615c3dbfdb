//! The fake Fly Machines API and edge (`tests/common/fly`) against raw HTTP requests: it
//! rejects what the reference says Fly rejects (`reference/fly-machines.md` §8), its faults
//! fire, its machines are real runtimes, and its edge routes by `fly-force-instance-id`.

mod create;
mod edge;
mod faults;
mod machines;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};

use crate::common::fly::{FakeFly, FakeFlyOptions};
use crate::common::{HttpReply, http_send};

/// The runtime's `CONNECT_TOKEN` in every machine these tests create.
const CONNECT_TOKEN: &str = "connect-token-0123456789";

const IMAGE: &str = "ghcr.io/example/catty-exec:1";

fn fake() -> FakeFly {
    FakeFly::start(FakeFlyOptions::default())
}

async fn send(
    fake: &FakeFly,
    method: &str,
    path: &str,
    body: Option<&Value>,
    auth: Option<&str>,
) -> HttpReply {
    let mut req = hyper::Request::builder().method(method).uri(path);
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(serde_json::to_vec(b).unwrap()));
    http_send(fake.api_addr(), req.body(Full::new(body)).unwrap()).await
}

/// A request with the right token.
async fn call(fake: &FakeFly, method: &str, path: &str, body: Option<Value>) -> HttpReply {
    send(fake, method, path, body.as_ref(), Some(&fake.auth_header())).await
}

#[track_caller]
fn expect(reply: &HttpReply, status: u16) -> Value {
    let text = String::from_utf8_lossy(&reply.body);
    assert_eq!(reply.status.as_u16(), status, "answer {text}");
    serde_json::from_slice(&reply.body).unwrap_or(Value::Null)
}

/// The `error` of an `ErrorResponse` with `status` (reference §1).
#[track_caller]
fn error(reply: &HttpReply, status: u16) -> String {
    let body = expect(reply, status);
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {body}"));
    assert!(!message.is_empty());
    message.to_string()
}

fn machines_path(fake: &FakeFly) -> String {
    format!("/v1/apps/{}/machines", fake.app())
}

fn machine_path(fake: &FakeFly, id: &str) -> String {
    format!("{}/{id}", machines_path(fake))
}

/// A create body shaped like catty's: one session's runtime, destroyed when it exits.
fn session_body(session: &str) -> Value {
    json!({
        "region": "iad",
        "config": {
            "image": IMAGE,
            "env": {
                "CONNECT_TOKEN": CONNECT_TOKEN, "CATTY_CMD": "[\"/bin/sh\"]",
                "CATTY_AGENT": "shell", "CATTY_TTL_SEC": "600", "CATTY_GRACE_SEC": "5",
                "PS1": "$ ",
            },
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
            "restart": {"policy": "no"},
            "auto_destroy": true,
            "stop_config": {"signal": "SIGTERM", "timeout": "5s"},
            "metadata": {"catty_session": session},
            "services": [{
                "protocol": "tcp", "internal_port": 8080, "autostart": false, "autostop": "off",
                "ports": [{"port": 443, "handlers": ["tls", "http"]}],
            }],
        },
    })
}

/// `body` with the value at JSON pointer `at` replaced (or removed when `value` is None).
fn edit(mut body: Value, at: &str, value: Option<Value>) -> Value {
    let (parent, key) = at.rsplit_once('/').unwrap();
    let parent = body.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    match value {
        Some(v) => parent.insert(key.to_string(), v),
        None => parent.remove(key),
    };
    body
}

async fn create(fake: &FakeFly, body: Value) -> Value {
    expect(
        &call(fake, "POST", &machines_path(fake), Some(body)).await,
        200,
    )
}

async fn wait(fake: &FakeFly, id: &str, query: &str) -> HttpReply {
    call(
        fake,
        "GET",
        &format!("{}/wait?{query}", machine_path(fake, id)),
        None,
    )
    .await
}

/// Creates a session machine and waits until it is started.
async fn started(fake: &FakeFly, session: &str) -> String {
    let id = create(fake, session_body(session)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = expect(&wait(fake, &id, "state=started&timeout=30").await, 200);
    assert_eq!(answer, json!({"ok": true, "state": "started"}));
    id
}

async fn list(fake: &FakeFly, query: &str) -> Vec<Value> {
    let reply = call(
        fake,
        "GET",
        &format!("{}?{query}", machines_path(fake)),
        None,
    )
    .await;
    expect(&reply, 200)
        .as_array()
        .expect("a list, never null")
        .clone()
}

fn ids(machines: &[Value]) -> Vec<&str> {
    machines.iter().map(|m| m["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn auth_forms_and_paths() {
    let fake = fake();
    let path = machines_path(&fake);
    assert_eq!(
        error(&send(&fake, "GET", &path, None, None).await, 401),
        "unauthorized"
    );
    error(
        &send(&fake, "GET", &path, None, Some("FlyV1 fm2_wrong")).await,
        401,
    );
    error(
        &send(&fake, "GET", &path, None, Some(fake.token())).await,
        401,
    );
    // A macaroon goes as FlyV1 (fly-go); `Bearer fm2_…` is UNVERIFIED, refused when strict.
    let flyv1 = format!("FlyV1 {}", fake.token());
    expect(&send(&fake, "GET", &path, None, Some(&flyv1)).await, 200);
    let bearer = format!("Bearer {}", fake.token());
    error(&send(&fake, "GET", &path, None, Some(&bearer)).await, 401);

    let plain = FakeFly::start(FakeFlyOptions {
        token: "plain-token".into(),
        ..FakeFlyOptions::default()
    });
    let path = machines_path(&plain);
    expect(
        &send(&plain, "GET", &path, None, Some("Bearer plain-token")).await,
        200,
    );
    error(
        &send(&plain, "GET", &path, None, Some("FlyV1 plain-token")).await,
        401,
    );
    plain.faults().revoke_token(true);
    error(
        &send(&plain, "GET", &path, None, Some("Bearer plain-token")).await,
        401,
    );

    assert_eq!(
        error(
            &call(&fake, "GET", "/v1/apps/nope/machines", None).await,
            404
        ),
        "not_found: app not found"
    );
    let no_v1 = call(
        &fake,
        "GET",
        &format!("/apps/{}/machines", fake.app()),
        None,
    )
    .await;
    assert_eq!(no_v1.status.as_u16(), 404);
    assert_eq!(
        error(
            &call(&fake, "GET", &machine_path(&fake, "0123456789abcd"), None).await,
            404
        ),
        "not_found: machine not found"
    );
    let recorded = fake.requests();
    assert_eq!(recorded[0].status, 401);
    assert_eq!(recorded[3].header("Authorization"), Some(flyv1.as_str()));
}
