//! `POST /git`'s own rules over real TCP: the token, its place after the upload and before the
//! program, bodies that are not good bundles (refused, no `.git` left), the shared budget.

use std::collections::BTreeMap;

use bytes::Bytes;
use catty::client::upload;
use catty::protocol::ConnectParams;
use catty::protocol::git::GitParams;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::fixture;
use crate::common::repo::{git, write_file};
use crate::common::{Client, DEADLINE, HttpReply, Runtime, TOKEN, http_send, parse_http_reply};

fn git_request(auth: bool, body: &'static [u8]) -> Request<Full<Bytes>> {
    let mut req =
        Request::post("/git?branch=main").header("content-type", "application/x-git-bundle");
    if auth {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    req.body(Full::new(Bytes::from_static(body))).unwrap()
}

/// A runtime with a one-file workspace uploaded.
async fn uploaded() -> Runtime {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "a.txt", "a\n");
    let rt = Runtime::start(&["sleep", "100"], &[]);
    let ws = upload::scan(dir.path()).unwrap();
    let (url, headers) = (rt.http(), BTreeMap::new());
    let sent = upload::upload(&ws, dir.path(), &url, TOKEN, &headers, false);
    sent.await.unwrap();
    rt
}

async fn post_git(rt: &Runtime, auth: bool, body: &'static [u8]) -> HttpReply {
    http_send(rt.addr, git_request(auth, body)).await
}

#[tokio::test]
async fn git_without_the_token_is_401() {
    let rt = uploaded().await;
    post_git(&rt, false, b"")
        .await
        .error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn git_before_the_upload_is_409() {
    let rt = Runtime::start(&["sleep", "100"], &[]);
    let err = post_git(&rt, true, b"").await.error(StatusCode::CONFLICT);
    assert!(
        err.message.contains("upload the workspace first"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn git_once_the_program_started_is_409() {
    let rt = uploaded().await;
    let _client = Client::connect(rt.addr, &ConnectParams::default())
        .await
        .unwrap();
    let err = post_git(&rt, true, b"").await.error(StatusCode::CONFLICT);
    assert!(err.message.contains("already started"), "{}", err.message);
    assert!(!rt.workspace.path().join(".git").exists());
}

#[tokio::test]
async fn a_second_git_is_409() {
    let rt = uploaded().await;
    post_git(&rt, true, b"")
        .await
        .json::<serde_json::Value>(StatusCode::OK);
    let err = post_git(&rt, true, b"").await.error(StatusCode::CONFLICT);
    assert!(err.message.contains("already"), "{}", err.message);
}

#[tokio::test]
async fn a_body_that_is_not_a_bundle_is_refused() {
    let rt = uploaded().await;
    let err = post_git(&rt, true, b"PK\x03\x04 not a bundle")
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(err.message.contains("not a git bundle"), "{}", err.message);
    assert!(!rt.workspace.path().join(".git").exists());
}

/// The header passes; git refuses what follows; the `.git` made meanwhile is removed.
#[tokio::test]
async fn a_corrupt_bundle_is_refused_and_leaves_no_dot_git() {
    let rt = uploaded().await;
    let corrupt = b"# v2 git bundle\n0123456789abcdef0123456789abcdef01234567 HEAD\n\nPACK garbage";
    let err = post_git(&rt, true, corrupt)
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(
        err.message.contains("the bundle was refused"),
        "{}",
        err.message
    );
    assert!(!rt.workspace.path().join(".git").exists());
    // Refused, not spent: a good history may still follow.
    post_git(&rt, true, b"")
        .await
        .json::<serde_json::Value>(StatusCode::OK);
}

/// The zip and the bundle share the upload budget: a declared length past what is left is
/// refused before the body is read.
#[tokio::test]
async fn a_history_past_what_the_zip_left_is_413() {
    let rt = uploaded().await;
    let mut socket = tokio::net::TcpStream::connect(rt.addr).await.unwrap();
    let head = format!(
        "POST /git HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {TOKEN}\r\n\
         content-length: {}\r\n\r\n",
        rt.addr,
        catty::protocol::UPLOAD_LIMIT_BYTES
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let read = async {
        let (mut raw, mut buf) = (Vec::new(), [0u8; 4096]);
        while let Ok(n @ 1..) = socket.read(&mut buf).await {
            raw.extend_from_slice(&buf[..n]);
        }
        raw
    };
    let raw = tokio::time::timeout(DEADLINE, read).await.unwrap();
    let reply = parse_http_reply(&raw).expect("a whole answer");
    let err = reply.error(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        err.message.contains("left of its budget"),
        "{}",
        err.message
    );
}

/// While `/git` runs (its body half sent), an attach does not start the program: it starts
/// once the repository is in place, and sees it.
#[tokio::test]
async fn the_program_waits_for_the_history() {
    let repo = fixture();
    let argv = ["sh", "-c", "git symbolic-ref --short HEAD 2>&1; sleep 100"];
    let rt = Runtime::start(&argv, &[]);
    let ws = upload::scan(repo.path()).unwrap();
    let (url, headers) = (rt.http(), BTreeMap::new());
    upload::upload(&ws, repo.path(), &url, TOKEN, &headers, false)
        .await
        .unwrap();
    let bundle = git(repo.path(), &["bundle", "create", "-q", "-", "HEAD"]);
    let query = GitParams {
        branch: Some("topic/naïve".into()),
        ..GitParams::default()
    }
    .to_query();
    let mut socket = tokio::net::TcpStream::connect(rt.addr).await.unwrap();
    let head = format!(
        "POST /git?{query} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {TOKEN}\r\n\
         content-length: {}\r\n\r\n",
        rt.addr,
        bundle.len()
    );
    let (first, rest) = bundle.split_at(bundle.len() / 2);
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(first).await.unwrap();
    // Once a second /git says the first is in progress, the slot is held.
    let busy = post_git(&rt, true, b"").await.error(StatusCode::CONFLICT);
    assert!(busy.message.contains("in progress"), "{}", busy.message);
    let mut client = Client::connect(rt.addr, &ConnectParams::default())
        .await
        .unwrap();
    socket.write_all(rest).await.unwrap();
    let mut raw = Vec::new();
    let answer = async {
        let mut buf = [0u8; 4096];
        while parse_http_reply(&raw).is_none() {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before answering");
            raw.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(DEADLINE, answer).await.unwrap();
    parse_http_reply(&raw)
        .unwrap()
        .json::<serde_json::Value>(StatusCode::OK);
    client
        .read_until("the program's first line", |c| c.text().contains('\n'))
        .await;
    assert!(
        client.text().starts_with("topic/naïve"),
        "{}",
        client.text()
    );
}
