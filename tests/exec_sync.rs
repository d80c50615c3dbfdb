//! Sync-back, the runtime's side: `/sync/manifest`, `/sync/file` and `/sync/bundle` of a real
//! `catty exec` over TCP, with `sha256sum` and real git as the oracles.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use catty::protocol::sync::{EntryKind, Manifest, file_query};
use http_body_util::Full;
use hyper::{Request, StatusCode};

use crate::common::repo::{git, write_file};
use crate::common::{Client, HttpReply, Runtime, TOKEN, http_send, sized};

/// A runtime whose program has not started (no client attached), so the workspace is the
/// test's alone.
fn runtime() -> Runtime {
    Runtime::start(&["/bin/sh"], &[])
}

async fn get(rt: &Runtime, path: &str) -> HttpReply {
    let req = Request::get(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Full::<Bytes>::default())
        .unwrap();
    http_send(rt.addr, req).await
}

async fn manifest(rt: &Runtime) -> Manifest {
    get(rt, "/sync/manifest").await.json(StatusCode::OK)
}

async fn manifest_after(rt: &Runtime, generation: u64) -> Manifest {
    get(rt, &format!("/sync/manifest?after={generation}"))
        .await
        .json(StatusCode::OK)
}

async fn file(rt: &Runtime, path: &str) -> HttpReply {
    get(rt, &format!("/sync/file?{}", file_query(path))).await
}

#[track_caller]
fn entry<'a>(manifest: &'a Manifest, path: &str) -> &'a EntryKind {
    let found = manifest.entries.iter().find(|e| e.path == path);
    &found
        .unwrap_or_else(|| panic!("{path} not in {:?}", paths(manifest)))
        .kind
}

fn paths(manifest: &Manifest) -> Vec<&str> {
    manifest.entries.iter().map(|e| e.path.as_str()).collect()
}

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// A commit of everything in `dir`, by a fixed author.
fn commit(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    let who = ["-c", "user.name=t", "-c", "user.email=t@example.com"];
    git(dir, &[&who[..], &["commit", "-q", "-m", message]].concat());
}

fn head_log(dir: &Path, rev: &str) -> String {
    String::from_utf8(git(dir, &["log", "--format=%H %P %s", rev])).unwrap()
}

#[tokio::test]
async fn the_manifest_lists_files_with_sizes_hashes_and_modes() {
    let rt = runtime();
    let ws = rt.workspace.path();
    write_file(ws, "src/deep/er/main.rs", "fn main() {}\n");
    write_file(ws, "data.bin", [0u8, 255, 1, 254]);
    write_file(ws, "bin/run", "#!/bin/sh\n");
    std::fs::set_permissions(
        ws.join("bin/run"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let m = manifest(&rt).await;
    assert_eq!(paths(&m), ["bin/run", "data.bin", "src/deep/er/main.rs"]);
    for (path, executable) in [
        ("bin/run", true),
        ("data.bin", false),
        ("src/deep/er/main.rs", false),
    ] {
        let expected = EntryKind::File {
            executable,
            size: std::fs::metadata(ws.join(path)).unwrap().len(),
            sha256: sha256sum(&ws.join(path)),
        };
        assert_eq!(entry(&m, path), &expected, "{path}");
    }
}

#[tokio::test]
async fn the_manifest_lists_symlinks_with_their_targets_unfollowed() {
    let rt = runtime();
    let ws = rt.workspace.path();
    write_file(ws, "src/a.txt", "a");
    std::os::unix::fs::symlink("src/a.txt", ws.join("link")).unwrap();
    std::os::unix::fs::symlink("src", ws.join("dir-link")).unwrap();
    std::os::unix::fs::symlink("../nowhere", ws.join("dangling")).unwrap();
    let m = manifest(&rt).await;
    assert_eq!(paths(&m), ["dangling", "dir-link", "link", "src/a.txt"]);
    let target = |t: &str| EntryKind::Symlink { target: t.into() };
    assert_eq!(entry(&m, "link"), &target("src/a.txt"));
    assert_eq!(entry(&m, "dir-link"), &target("src"));
    assert_eq!(entry(&m, "dangling"), &target("../nowhere"));
}

#[tokio::test]
async fn the_manifest_leaves_out_ignored_paths_the_defaults_and_git() {
    let rt = runtime();
    let ws = rt.workspace.path();
    git(ws, &["init", "-q"]);
    write_file(ws, ".gitignore", "build/\n*.tmp\n");
    for rel in [
        "keep.txt",
        "build/out.o",
        "x.tmp",
        "node_modules/m/index.js",
        "sub/app.log",
    ] {
        write_file(ws, rel, "x");
    }
    commit(ws, "one");
    let m = manifest(&rt).await;
    assert_eq!(paths(&m), [".gitignore", "keep.txt"]);
    assert!(m.head.is_some(), "a repository with a commit has a head");
}

#[tokio::test]
async fn a_tracked_file_is_listed_even_when_ignored() {
    let rt = runtime();
    let ws = rt.workspace.path();
    git(ws, &["init", "-q"]);
    write_file(ws, ".gitignore", "build/\n");
    write_file(ws, "build/keep.cfg", "tracked");
    write_file(ws, "build/out.o", "not tracked");
    git(ws, &["add", "-f", "build/keep.cfg"]);
    let m = manifest(&rt).await;
    assert_eq!(paths(&m), [".gitignore", "build/keep.cfg"]);
}

#[tokio::test]
async fn a_manifest_after_g_answers_soon_after_a_write() {
    let rt = runtime();
    write_file(rt.workspace.path(), "a.txt", "a");
    let before = manifest(&rt).await;
    let waiting = manifest_after(&rt, before.generation);
    let writer = async {
        write_file(rt.workspace.path(), "dir/new.txt", "new");
    };
    let started = Instant::now();
    let (after, ()) = tokio::join!(waiting, writer);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(after.generation > before.generation);
    assert_eq!(paths(&after), ["a.txt", "dir/new.txt"]);
}

#[tokio::test]
async fn a_manifest_after_g_waits_while_nothing_changes() {
    let rt = runtime();
    write_file(rt.workspace.path(), "a.txt", "a");
    let current = manifest(&rt).await;
    let waiting = manifest_after(&rt, current.generation);
    let answered = tokio::time::timeout(Duration::from_secs(1), waiting).await;
    assert!(
        answered.is_err(),
        "answered before any change: {:?}",
        answered.ok()
    );
}

#[tokio::test]
async fn a_file_comes_with_its_bytes_and_sha256() {
    let rt = runtime();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    write_file(rt.workspace.path(), "dir/a b.bin", &data);
    manifest(&rt).await;
    let reply = file(&rt, "dir/a b.bin").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, data);
    let expected = sha256sum(&rt.workspace.path().join("dir/a b.bin"));
    assert_eq!(reply.header("x-catty-sha256"), Some(expected.as_str()));
}

#[tokio::test]
async fn a_file_request_refuses_dotdot_and_absolute_paths() {
    let rt = runtime();
    write_file(rt.workspace.path(), "a.txt", "a");
    manifest(&rt).await;
    for path in ["../a.txt", "x/../a.txt", "/etc/passwd", "./a.txt", "a.txt/"] {
        let reply = file(&rt, path).await;
        assert_eq!(
            reply.error(StatusCode::BAD_REQUEST).code,
            "bad_path",
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_file_request_refuses_a_symlink() {
    let rt = runtime();
    write_file(rt.workspace.path(), "a.txt", "a");
    std::os::unix::fs::symlink("/etc/passwd", rt.workspace.path().join("link")).unwrap();
    manifest(&rt).await;
    assert_eq!(
        file(&rt, "link").await.error(StatusCode::NOT_FOUND).code,
        "not_found"
    );
}

#[tokio::test]
async fn a_file_request_refuses_a_path_not_in_the_listing() {
    let rt = runtime();
    write_file(rt.workspace.path(), "node_modules/m.js", "ignored");
    write_file(rt.workspace.path(), "a.txt", "a");
    manifest(&rt).await;
    for path in ["node_modules/m.js", "missing.txt"] {
        assert_eq!(
            file(&rt, path).await.error(StatusCode::NOT_FOUND).code,
            "not_found"
        );
    }
}

#[tokio::test]
async fn sync_requests_need_the_token() {
    let rt = runtime();
    for path in ["/sync/manifest", "/sync/file?path=a.txt", "/sync/bundle"] {
        let req = Request::get(path).body(Full::<Bytes>::default()).unwrap();
        let reply = http_send(rt.addr, req).await;
        assert_eq!(
            reply.error(StatusCode::UNAUTHORIZED).code,
            "unauthorized",
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_bundle_carries_the_commits_made_after_the_base() {
    let rt = runtime();
    let ws = rt.workspace.path();
    git(ws, &["init", "-q"]);
    write_file(ws, "a.txt", "one");
    commit(ws, "uploaded");
    let local = tempfile::tempdir().unwrap();
    git(local.path(), &["clone", "-q", ws.to_str().unwrap(), "."]);
    let base = String::from_utf8(git(ws, &["rev-parse", "HEAD"])).unwrap();
    write_file(ws, "a.txt", "two");
    commit(ws, "by the agent");
    write_file(ws, "b.txt", "three");
    commit(ws, "by the agent again");

    let reply = get(&rt, &format!("/sync/bundle?base={}", base.trim())).await;
    assert_eq!(reply.status, StatusCode::OK);
    let bundle = local.path().join("session.bundle");
    std::fs::write(&bundle, &reply.body).unwrap();
    git(
        local.path(),
        &[
            "fetch",
            "-q",
            bundle.to_str().unwrap(),
            "HEAD:refs/heads/catty/x",
        ],
    );
    assert_eq!(head_log(local.path(), "catty/x"), head_log(ws, "HEAD"));
}

#[tokio::test]
async fn a_bundle_without_base_carries_the_whole_history() {
    let rt = runtime();
    let ws = rt.workspace.path();
    git(ws, &["init", "-q"]);
    write_file(ws, "a.txt", "one");
    commit(ws, "first");
    let reply = get(&rt, "/sync/bundle").await;
    assert_eq!(reply.status, StatusCode::OK);
    let local = tempfile::tempdir().unwrap();
    git(local.path(), &["init", "-q"]);
    let bundle = local.path().join("session.bundle");
    std::fs::write(&bundle, &reply.body).unwrap();
    git(
        local.path(),
        &[
            "fetch",
            "-q",
            bundle.to_str().unwrap(),
            "HEAD:refs/heads/catty/x",
        ],
    );
    assert_eq!(head_log(local.path(), "catty/x"), head_log(ws, "HEAD"));
}

#[tokio::test]
async fn the_bundle_is_204_without_a_repository() {
    let rt = runtime();
    write_file(rt.workspace.path(), "a.txt", "a");
    let reply = get(&rt, "/sync/bundle").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn the_bundle_is_204_when_head_is_the_base() {
    let rt = runtime();
    let ws = rt.workspace.path();
    git(ws, &["init", "-q"]);
    write_file(ws, "a.txt", "one");
    commit(ws, "uploaded");
    let head = String::from_utf8(git(ws, &["rev-parse", "HEAD"])).unwrap();
    let reply = get(&rt, &format!("/sync/bundle?base={}", head.trim())).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
}

/// A codemod: 1,000 files written at once all show in the first manifest that follows (any
/// computation behind it starts after the last write).
#[tokio::test]
async fn a_thousand_file_change_shows_in_one_manifest() {
    let rt = runtime();
    let ws = rt.workspace.path().to_owned();
    write_file(&ws, "README", "x");
    let before = manifest(&rt).await;
    let write = tokio::task::spawn_blocking(move || {
        for i in 0..1000 {
            write_file(&ws, format!("src/m{}/f{i}.rs", i % 20), format!("// {i}\n"));
        }
    });
    write.await.unwrap();
    let after = manifest_after(&rt, before.generation).await;
    let files = after.entries.iter().filter(|e| e.path.starts_with("src/m"));
    assert_eq!(files.count(), 1000);
}

/// The runtime stays for its grace period after the program exits, and so does sync-back.
#[tokio::test]
async fn the_manifest_is_served_after_the_program_exits() {
    let rt = Runtime::start(&["sh", "-c", "echo done > out.txt"], &[]);
    let mut client = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    client.read_until("exit", |c| c.exit.is_some()).await;
    let m = manifest(&rt).await;
    assert_eq!(paths(&m), ["out.txt"]);
    assert_eq!(file(&rt, "out.txt").await.body, "done\n");
}
