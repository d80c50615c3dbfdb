//! The runtime's HTTP endpoints over real TCP: health, auth, 409 and the JSON error shape here;
//! what uploads leave (`archives.rs`) and the size limit (`limits.rs`). The archives come from
//! tests/support/hostile_zips.py (`fixtures.rs`), cached under target/tmp.

mod archives;
mod fixtures;
mod limits;

use std::net::SocketAddr;
use std::path::Path;

use crate::common::{Client, DEADLINE, HttpReply, Runtime, TOKEN, http_send, sized};
use bytes::Bytes;
use catty::protocol::api::UploadDone;
use fixtures::zips;
use http_body_util::Full;
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A runtime whose workspace is `root/a/b/ws…` and whose TMPDIR (where it spools uploads) is
/// `root/tmp`: anything written outside the workspace, or left behind, shows up under `root`.
struct Sandbox {
    rt: Runtime,
    root: tempfile::TempDir,
}

impl Sandbox {
    fn start(argv: &[&str]) -> Sandbox {
        let root = tempfile::tempdir().unwrap();
        let (parent, tmp) = (root.path().join("a/b"), root.path().join("tmp"));
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::create_dir(&tmp).unwrap();
        let ws = tempfile::Builder::new()
            .prefix("ws")
            .tempdir_in(&parent)
            .unwrap();
        let rt = Runtime::start_in(ws, argv, &[("TMPDIR", tmp.to_str().unwrap())]);
        Sandbox { rt, root }
    }

    fn ws(&self) -> &Path {
        self.rt.workspace.path()
    }

    /// The workspace is empty, nothing appeared beside it, and no spooled body is left.
    fn assert_untouched(&self, what: &str) {
        let ws = self.ws().file_name().unwrap().to_str().unwrap();
        let expected = ["a", "a/b", &format!("a/b/{ws}"), "tmp"];
        assert_eq!(listing(self.root.path()), expected, "{what}");
    }

    async fn upload(&self, zip: &str) -> HttpReply {
        let body = std::fs::read(zips().dir.join(zip)).unwrap();
        http_send(self.rt.addr, upload_request(Some(&bearer()), body.into())).await
    }

    async fn upload_ok(&self, zip: &str) -> UploadDone {
        self.upload(zip).await.json(StatusCode::OK)
    }
}

/// Every path below `dir`, relative and sorted; symlinks are listed, not followed.
fn listing(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let entry = entry.unwrap();
            let rel = entry.path().strip_prefix(dir).unwrap().to_owned();
            found.push(rel.to_str().unwrap().to_string());
            if entry.file_type().unwrap().is_dir() {
                todo.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn upload_request(auth: Option<&str>, body: Bytes) -> Request<Full<Bytes>> {
    let mut req = Request::post("/upload").header("content-type", "application/zip");
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    req.body(Full::new(body)).unwrap()
}

fn get(path: &str, auth: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = Request::get(path);
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    req.body(Full::default()).unwrap()
}

/// A complete WebSocket handshake request, so only auth or the query can make it fail.
fn websocket(path: &str, auth: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = get(path, auth);
    let headers = [
        ("upgrade", "websocket"),
        ("connection", "upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];
    for (name, value) in headers {
        req.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    req
}

/// The head of an upload request with extra header lines `extra` (each ending in CRLF).
fn upload_head(addr: SocketAddr, extra: &str) -> String {
    format!(
        "POST /upload HTTP/1.1\r\nhost: {addr}\r\nauthorization: {}\r\n\
         content-type: application/zip\r\n{extra}\r\n",
        bearer()
    )
}

/// Writes `head` and nothing else, then reads until the server closes the connection.
async fn head_only(addr: SocketAddr, head: &str) -> Vec<u8> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        // A reset after the answer counts as closed too.
        let _ = stream.read_to_end(&mut raw).await;
        raw
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("the server answers and closes without the body")
}

#[tokio::test]
async fn healthz_is_ok_without_auth() {
    let rt = Runtime::start(&["sleep", "100"], &[]);
    let reply = http_send(rt.addr, get("/healthz", None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "ok");
}

#[tokio::test]
async fn upload_and_connect_need_the_exact_token() {
    let s = Sandbox::start(&["sleep", "100"]);
    let good = Bytes::from(std::fs::read(zips().dir.join("good.zip")).unwrap());
    let prefix = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let longer = format!("Bearer {TOKEN}0");
    let wrong = [
        None,
        Some("Bearer wrong"),
        Some(prefix.as_str()),
        Some(longer.as_str()),
        Some(TOKEN),
    ];
    for auth in wrong {
        let reply = http_send(s.rt.addr, upload_request(auth, good.clone())).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "upload with {auth:?}"
        );
        let err = reply.error(StatusCode::UNAUTHORIZED);
        assert_eq!(err.code, "unauthorized", "upload with {auth:?}");
        let reply = http_send(s.rt.addr, websocket("/connect?cols=80&rows=24", auth)).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "connect with {auth:?}"
        );
        let err = reply.error(StatusCode::UNAUTHORIZED);
        assert_eq!(err.code, "unauthorized", "connect with {auth:?}");
    }
    s.assert_untouched("after the refused requests");
    // The refusals took no upload slot and started nothing; the right token does both.
    s.upload_ok("good.zip").await;
    Client::connect(s.rt.addr, &sized(80, 24)).await.unwrap();
}

#[tokio::test]
async fn upload_after_an_interactive_attach_is_409() {
    let s = Sandbox::start(&["sleep", "100"]);
    let _attached = Client::connect(s.rt.addr, &sized(80, 24)).await.unwrap();
    let err = s.upload("good.zip").await.error(StatusCode::CONFLICT);
    assert_eq!(err.code, "conflict");
    s.assert_untouched("upload after the attach");
}

#[tokio::test]
async fn wrong_methods_paths_and_handshakes_get_json_errors() {
    let s = Sandbox::start(&["sleep", "100"]);
    let (addr, auth) = (s.rt.addr, bearer());
    let auth = Some(auth.as_str());
    let reply = http_send(addr, get("/upload", auth)).await;
    reply.error(StatusCode::METHOD_NOT_ALLOWED);
    http_send(addr, get("/nope", None))
        .await
        .error(StatusCode::NOT_FOUND);
    let reply = http_send(addr, get("/connect?cols=80&rows=24", auth)).await;
    reply.error(StatusCode::BAD_REQUEST);
    let reply = http_send(addr, websocket("/connect?cols=0&rows=5", auth)).await;
    let err = reply.error(StatusCode::BAD_REQUEST);
    assert!(err.message.contains("cols"), "{}", err.message);
    // None of them started the session.
    s.upload_ok("good.zip").await;
}
