//! The runtime's HTTP endpoints over real TCP: health, auth, uploads (round trip, 409, 413,
//! hostile archives, clients hanging up) and the JSON error shape. The archives come from
//! tests/support/hostile_zips.py, cached under target/tmp.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::common::{
    self, Client, DEADLINE, HttpReply, Runtime, TOKEN, http_send, parse_http_reply, sized,
};
use bytes::Bytes;
use catty::protocol::UPLOAD_LIMIT_BYTES;
use catty::protocol::api::UploadDone;
use http_body_util::Full;
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

const MIB: u64 = 1024 * 1024;
/// Keeps the client's unsent bytes out of the count of what the server read.
const CLIENT_SEND_BUFFER_BYTES: u32 = 256 * 1024;
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// The archives of hostile_zips.py, and good.zip as Python's zipfile reads it.
struct Zips {
    dir: PathBuf,
    cases: Vec<Case>,
    good: Vec<Entry>,
}

#[derive(Deserialize)]
struct Case {
    file: String,
    bad_entry: Option<String>,
}

/// One entry as stored in the archive; `mtime` is its DOS time read as UTC.
#[derive(Deserialize)]
struct Entry {
    name: String,
    mode: u32,
    mtime: i64,
    data: Vec<u8>,
}

/// Python's zipfile is the oracle for what good.zip holds, independent of the runtime's reader.
const DESCRIBE_ZIP: &str = "import calendar, json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
print(json.dumps([{'name': i.filename, 'mode': i.external_attr >> 16,
    'mtime': calendar.timegm(i.date_time + (0, 0, 0)), 'data': list(z.read(i))}
    for i in z.infolist()]))";

/// An archive that takes a while to extract: one file of zeros, `BIG_FILE_MIB` inflated.
const BIG_ZIP: &str = "big.zip";
const BIG_FILE: &str = "big.bin";
const BIG_FILE_MIB: u64 = 128;
const WRITE_BIG_ZIP: &str = "import sys, zipfile
i = zipfile.ZipInfo('big.bin', date_time=(2024, 5, 17, 12, 30, 0))
i.create_system, i.external_attr, i.compress_type = 3, 0o100644 << 16, zipfile.ZIP_DEFLATED
with zipfile.ZipFile(sys.argv[1], 'w') as z, z.open(i, 'w') as out:
    for _ in range(int(sys.argv[2])):
        out.write(bytes(1 << 20))";

const HOSTILE_ZIPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/hostile_zips.py");

fn zips() -> &'static Zips {
    static ZIPS: OnceLock<Zips> = OnceLock::new();
    ZIPS.get_or_init(|| {
        let dir = generate_zips();
        let cases = std::fs::read(dir.join("cases.json")).unwrap();
        let good = dir.join("good.zip");
        let good = python(&["-c".as_ref(), DESCRIBE_ZIP.as_ref(), good.as_os_str()]);
        Zips {
            cases: serde_json::from_slice(&cases).unwrap(),
            good: serde_json::from_slice(&good).unwrap(),
            dir,
        }
    })
}

/// Writes the archives under target/tmp once per version of their generators, into a
/// directory that appears complete or not at all: other `cargo test` runs may share it.
fn generate_zips() -> PathBuf {
    let mut version = DefaultHasher::new();
    (
        std::fs::read(HOSTILE_ZIPS).unwrap(),
        WRITE_BIG_ZIP,
        BIG_FILE_MIB,
    )
        .hash(&mut version);
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = parent.join(format!("exec_http_zips-{:016x}", version.finish()));
    if !dir.exists() {
        let fresh = tempfile::tempdir_in(parent).unwrap();
        python(&[HOSTILE_ZIPS.as_ref(), fresh.path().as_os_str()]);
        let big = fresh.path().join(BIG_ZIP);
        let mib = BIG_FILE_MIB.to_string();
        python(&[
            "-c".as_ref(),
            WRITE_BIG_ZIP.as_ref(),
            big.as_os_str(),
            mib.as_ref(),
        ]);
        // Fails if a concurrent run got there first; its archives are the same.
        let _ = std::fs::rename(fresh.path(), &dir);
    }
    dir
}

fn python(args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let out = std::process::Command::new("python3")
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python3 {args:?}: {err}");
    out.stdout
}

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

/// Streams a chunked upload body of 1 MiB chunks until the server answers. Returns the bytes
/// the client wrote by then and the raw answer, read until the server closed the connection.
async fn stream_until_answered(addr: SocketAddr) -> (u64, Vec<u8>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small send buffer, so that what counts as written is close to what the server took.
    socket
        .set_send_buffer_size(CLIENT_SEND_BUFFER_BYTES)
        .unwrap();
    let (mut rd, mut wr) = socket.connect(addr).await.unwrap().into_split();
    let head = upload_head(addr, "transfer-encoding: chunked\r\n");
    wr.write_all(head.as_bytes()).await.unwrap();
    let (answered, mut on_answer) = tokio::sync::oneshot::channel::<()>();
    let read = async move {
        let (mut raw, mut answered) = (Vec::new(), Some(answered));
        let mut buf = vec![0; 64 * 1024];
        // Until EOF or a reset: either way the server closed the connection.
        while let Ok(n @ 1..) = rd.read(&mut buf).await {
            raw.extend_from_slice(&buf[..n]);
            if let Some(tx) = answered.take_if(|_| parse_http_reply(&raw).is_some()) {
                let _ = tx.send(());
            }
        }
        raw
    };
    let write = async move {
        let mut chunk = format!("{:x}\r\n", MIB).into_bytes();
        chunk.extend(std::iter::repeat_n(b'z', MIB as usize));
        chunk.extend_from_slice(b"\r\n");
        let (mut written, mut at) = (0u64, 0);
        loop {
            tokio::select! {
                biased;
                _ = &mut on_answer => return written,
                n = wr.write(&chunk[at..]) => match n {
                    Ok(n) => (written, at) = (written + n as u64, (at + n) % chunk.len()),
                    Err(_) => return written,
                },
            }
        }
    };
    let both = async { tokio::join!(write, read) };
    tokio::time::timeout(DEADLINE, both)
        .await
        .expect("the server answers and closes in time")
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
async fn a_good_archive_arrives_intact_and_only_once() {
    let s = Sandbox::start(&["sleep", "100"]);
    let good = &zips().good;
    let files: Vec<&Entry> = good.iter().filter(|e| e.mode & S_IFMT == S_IFREG).collect();
    // The fixture has what this test is about.
    let perms: Vec<u32> = files.iter().map(|e| e.mode & 0o777).collect();
    assert!(
        perms.contains(&0o755) && perms.contains(&0o644),
        "{perms:?}"
    );
    assert!(good.iter().any(|e| e.mode & S_IFMT == S_IFLNK));

    let done = s.upload_ok("good.zip").await;
    let bytes = files.iter().map(|e| e.data.len() as u64).sum();
    let files = files.len() as u64;
    assert_eq!(done, UploadDone { files, bytes });
    for entry in good {
        assert_arrived(s.ws(), entry);
    }

    let before = listing(s.ws());
    let err = s.upload("good.zip").await.error(StatusCode::CONFLICT);
    assert_eq!(err.code, "conflict");
    assert_eq!(listing(s.ws()), before);
}

/// `entry` is in `ws` with its content (or link target), permissions and mtime.
fn assert_arrived(ws: &Path, entry: &Entry) {
    let path = ws.join(entry.name.trim_end_matches('/'));
    let meta = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let name = &entry.name;
    match entry.mode & S_IFMT {
        S_IFLNK => {
            assert!(meta.file_type().is_symlink(), "{name} is a symlink");
            let target = std::fs::read_link(&path).unwrap();
            assert_eq!(target.as_os_str().as_bytes(), entry.data, "{name}");
            let resolved = path.canonicalize().unwrap();
            assert!(resolved.starts_with(ws.canonicalize().unwrap()), "{name}");
            return;
        }
        S_IFDIR => assert!(meta.is_dir(), "{name} is a directory"),
        _ => {
            assert!(meta.is_file(), "{name} is a file");
            assert_eq!(std::fs::read(&path).unwrap(), entry.data, "{name}");
        }
    }
    let mode = meta.permissions().mode() & 0o777;
    assert_eq!(mode, entry.mode & 0o777, "{name}: mode {mode:o}");
    assert_eq!(meta.mtime(), entry.mtime, "{name}: mtime");
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
async fn a_declared_length_over_the_limit_is_413_without_reading_the_body() {
    let s = Sandbox::start(&["sleep", "100"]);
    let length = format!("content-length: {}\r\n", UPLOAD_LIMIT_BYTES + 1);
    // With `Expect: 100-continue`, reading the body would first send `100 Continue`.
    for expect in ["", "expect: 100-continue\r\n"] {
        let head = upload_head(s.rt.addr, &format!("{length}{expect}"));
        let raw = head_only(s.rt.addr, &head).await;
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 413 "), "{expect:?}: {text}");
        let reply = parse_http_reply(&raw).unwrap_or_else(|| panic!("incomplete: {text}"));
        assert_eq!(reply.error(StatusCode::PAYLOAD_TOO_LARGE).code, "too_large");
        assert_eq!(reply.header("connection"), Some("close"));
    }
    s.assert_untouched("after the 413s");
    s.upload_ok("good.zip").await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_cut_near_it_in_bounded_memory() {
    let s = Sandbox::start(&["sleep", "100"]);
    let (written, raw) = stream_until_answered(s.rt.addr).await;
    let text = String::from_utf8_lossy(&raw);
    let reply = parse_http_reply(&raw).unwrap_or_else(|| panic!("after {written} bytes: {text:?}"));
    assert_eq!(reply.error(StatusCode::PAYLOAD_TOO_LARGE).code, "too_large");
    // Without a length the server must read past the limit to know; what it did not read
    // sits in the two socket buffers, a few MiB on loopback.
    assert!(
        written > UPLOAD_LIMIT_BYTES,
        "413 after only {written} bytes"
    );
    let most = UPLOAD_LIMIT_BYTES + 16 * MIB;
    assert!(written < most, "the client wrote {written} bytes");
    let peak = common::peak_rss_bytes(s.rt.pid());
    assert!(
        peak < 64 * MIB,
        "the runtime's peak RSS was {} MiB",
        peak / MIB
    );
    s.assert_untouched("after the 413");
    s.upload_ok("good.zip").await;
}

#[tokio::test]
async fn hostile_archives_are_400_naming_the_entry_and_leave_nothing() {
    let (mut checks, mut names) = (JoinSet::new(), HashMap::new());
    for case in &zips().cases {
        if let Some(bad) = &case.bad_entry {
            let check = checks.spawn(reject_hostile(case.file.clone(), bad.clone()));
            names.insert(check.id(), &case.file);
        }
    }
    assert!(names.len() >= 10, "only {} hostile cases", names.len());
    let mut failures = Vec::new();
    while let Some(done) = checks.join_next_with_id().await {
        if let Err(err) = done {
            let name = names[&err.id()];
            let panic = err.into_panic();
            let msg = panic
                .downcast_ref::<String>()
                .map_or("panicked", String::as_str);
            failures.push(format!("{name}: {msg}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A fresh runtime refuses `file` naming `bad`, writes nothing, and then takes a good upload.
async fn reject_hostile(file: String, bad: String) {
    let s = Sandbox::start(&["sleep", "100"]);
    let err = s.upload(&file).await.error(StatusCode::BAD_REQUEST);
    assert_eq!(err.code, "bad_archive", "{file}");
    let quoted = format!("\"{bad}\"");
    assert!(err.message.contains(&quoted), "{file}: {}", err.message);
    if bad.starts_with('/') {
        assert!(!Path::new(&bad).exists(), "{file} wrote {bad}");
    }
    s.assert_untouched(&file);
    s.upload_ok("good.zip").await;
}

#[tokio::test]
async fn a_client_hanging_up_mid_body_leaves_nothing_and_the_slot_open() {
    let s = Sandbox::start(&["sleep", "100"]);
    let zip = std::fs::read(zips().dir.join(BIG_ZIP)).unwrap();
    let conn = start_upload(s.rt.addr, &zip[..zip.len() / 2], zip.len()).await;
    drop(conn);
    let _: UploadDone = upload_when_free(&s).await.json(StatusCode::OK);
    assert_eq!(listing(s.ws()), good_listing());
    assert!(
        listing(&s.root.path().join("tmp")).is_empty(),
        "the spool is gone"
    );
}

#[tokio::test]
async fn a_client_hanging_up_during_extraction_leaves_all_or_nothing() {
    let s = Sandbox::start(&["sleep", "100"]);
    let zip = std::fs::read(zips().dir.join(BIG_ZIP)).unwrap();
    let conn = start_upload(s.rt.addr, &zip, zip.len()).await;
    let big = s.ws().join(BIG_FILE);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !big.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "extraction never began"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    drop(conn);
    let reply = upload_when_free(&s).await;
    if reply.status == StatusCode::OK {
        // Cancelled: the partial upload is gone and good.zip went into an empty workspace.
        assert_eq!(listing(s.ws()), good_listing());
    } else {
        // Finished before the hang-up was noticed: then it is complete.
        assert_eq!(reply.error(StatusCode::CONFLICT).code, "conflict");
        assert_eq!(std::fs::metadata(&big).unwrap().len(), BIG_FILE_MIB * MIB);
    }
}

/// What `listing` shows of a workspace holding good.zip.
fn good_listing() -> Vec<String> {
    let names = zips().good.iter().map(|e| e.name.trim_end_matches('/'));
    let mut names: Vec<String> = names.map(String::from).collect();
    names.sort();
    names
}

/// Sends an upload head declaring `declared` body bytes and then `body`; leaves the
/// connection open and unanswered.
async fn start_upload(addr: SocketAddr, body: &[u8], declared: usize) -> TcpStream {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let head = upload_head(addr, &format!("content-length: {declared}\r\n"));
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    conn
}

/// Uploads good.zip once the upload slot is free again. Only the runtime's message tells
/// "another upload is in progress" from "already uploaded"; both are 409 `conflict`.
async fn upload_when_free(s: &Sandbox) -> HttpReply {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let reply = s.upload("good.zip").await;
        let text = String::from_utf8_lossy(&reply.body);
        let busy = reply.status == StatusCode::CONFLICT && text.contains("in progress");
        if !busy || tokio::time::Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
