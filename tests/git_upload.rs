//! The git-aware upload: a workspace uploaded from the top of a git work tree becomes a git
//! repository in the session, with git itself as the judge (log, status, diff, commit); the
//! shallow cut past the budget; directories that get no history. The endpoint's own rules
//! (auth, 409, bad bundles, 413) are in `http.rs`.

mod http;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::repo::{git, write_file};
use crate::common::tmux::{Tmux, at_prompt};
use crate::common::{Runtime, TOKEN};
use catty::client::upload::{self, History, HistoryOutcome, Uploaded};

/// `git ARGS` in `dir`, its output as text.
fn git_text(dir: &Path, args: &[&str]) -> String {
    String::from_utf8(git(dir, args)).unwrap()
}

/// Sorted lines of `git status --porcelain`.
fn status(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = git_text(dir, &["status", "--porcelain"])
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// A repository on branch `topic/naïve` with two commits, then a modified tracked file, a
/// staged change, an untracked file and an ignored one.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q", "-b", "topic/naïve"]);
    git(root, &["config", "user.name", "Test Person"]);
    git(root, &["config", "user.email", "test@example.com"]);
    write_file(root, ".gitignore", "*.ignored\n");
    write_file(root, "tracked.txt", "one\n");
    write_file(root, "staged.txt", "s\n");
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "first"]);
    write_file(root, "tracked.txt", "one\ntwo\n");
    git(root, &["commit", "-q", "-am", "second"]);
    write_file(root, "tracked.txt", "one\ntwo\nlocal edit\n");
    write_file(root, "staged.txt", "s\nstaged\n");
    git(root, &["add", "staged.txt"]);
    write_file(root, "untracked.txt", "new\n");
    write_file(root, "build.ignored", "output\n");
    dir
}

/// `catty new`'s upload of `root` to a fresh runtime: the zip, then the history.
async fn upload_to(rt: &Runtime, root: &Path) -> Uploaded {
    let ws = upload::scan(root).unwrap();
    let history = History::start(root);
    let (url, headers) = (rt.http(), BTreeMap::new());
    let sent = upload::upload_with_history(&ws, history, root, &url, TOKEN, &headers, false);
    sent.await.unwrap()
}

/// A runtime whose program never starts, with the fixture uploaded.
async fn uploaded_fixture() -> (tempfile::TempDir, Runtime) {
    let repo = fixture();
    let rt = Runtime::start(&["true"], &[]);
    let sent = upload_to(&rt, repo.path()).await;
    assert!(
        matches!(sent.history, HistoryOutcome::Sent { depth: None, .. }),
        "{:?}",
        sent.history
    );
    (repo, rt)
}

#[tokio::test]
async fn the_session_log_is_the_local_log() {
    let (repo, rt) = uploaded_fixture().await;
    let log = ["log", "--format=%H %s"];
    assert_eq!(
        git_text(rt.workspace.path(), &log),
        git_text(repo.path(), &log)
    );
}

#[tokio::test]
async fn uncommitted_changes_show_as_uncommitted() {
    let (_repo, rt) = uploaded_fixture().await;
    // The staged change arrives unstaged: the session's index is HEAD.
    let expected = [" M staged.txt", " M tracked.txt", "?? untracked.txt"];
    assert_eq!(status(rt.workspace.path()), expected);
}

#[tokio::test]
async fn the_session_diff_is_the_local_diff_against_head() {
    let (repo, rt) = uploaded_fixture().await;
    let local = git_text(repo.path(), &["diff", "HEAD"]);
    assert!(local.contains("+local edit") && local.contains("+staged"));
    assert_eq!(git_text(rt.workspace.path(), &["diff"]), local);
}

#[tokio::test]
async fn a_commit_in_the_session_follows_the_local_head() {
    let (repo, rt) = uploaded_fixture().await;
    let ws = rt.workspace.path();
    git(ws, &["commit", "-q", "-am", "in the session"]);
    let parent = git_text(ws, &["rev-parse", "HEAD^"]);
    assert_eq!(parent, git_text(repo.path(), &["rev-parse", "HEAD"]));
    assert_eq!(status(ws), ["?? untracked.txt"]);
}

/// The whole path as a user meets it: `catty new` in a tmux pane, then git in the session.
#[test]
fn catty_new_in_a_repository_gives_the_session_its_history() {
    let repo = fixture();
    let t = Tmux::start(repo.path(), 100, 30);
    t.run("clear; catty new -- bash --norc --noprofile");
    t.wait_for("the session's prompt", |s| {
        s.contains("catty connect") && at_prompt(s)
    });
    t.run("git log --format=%s | tr '\\n' ,; git status --porcelain | wc -l");
    let screen = t.wait_for_text("second,first,3");
    assert!(!screen.contains("warning"), "{screen}");
}

#[tokio::test]
async fn the_session_is_on_the_local_branch() {
    let (_repo, rt) = uploaded_fixture().await;
    let head = git_text(rt.workspace.path(), &["symbolic-ref", "HEAD"]);
    assert_eq!(head.trim(), "refs/heads/topic/naïve");
}

#[tokio::test]
async fn a_detached_head_stays_detached() {
    let repo = fixture();
    git(repo.path(), &["checkout", "-q", "--detach"]);
    let rt = Runtime::start(&["true"], &[]);
    upload_to(&rt, repo.path()).await;
    let ws = rt.workspace.path();
    let mut symbolic = Command::new("git");
    symbolic
        .args(["symbolic-ref", "-q", "HEAD"])
        .current_dir(ws);
    assert!(!symbolic.status().unwrap().success(), "HEAD is on a branch");
    let head = ["rev-parse", "HEAD"];
    assert_eq!(git_text(ws, &head), git_text(repo.path(), &head));
}

#[tokio::test]
async fn tracked_files_the_upload_leaves_out_do_not_show_as_deleted() {
    let repo = fixture();
    let root = repo.path();
    write_file(root, ".env", "KEY=1\n");
    write_file(root, "logs/app.log", "log\n");
    git(root, &["add", "-f", ".env", "logs/app.log"]);
    git(root, &["commit", "-q", "-m", "tracked defaults"]);
    let rt = Runtime::start(&["true"], &[]);
    upload_to(&rt, root).await;
    let ws = rt.workspace.path();
    assert!(!ws.join(".env").exists(), "the defaults still skip .env");
    // The commit took the staged change along.
    let expected = [" M tracked.txt", "?? untracked.txt"];
    assert_eq!(status(ws), expected);
    git(ws, &["commit", "-q", "-am", "everything"]);
    let tree = git_text(ws, &["ls-tree", "-r", "--name-only", "HEAD"]);
    assert!(
        tree.contains(".env\n") && tree.contains("logs/app.log\n"),
        "{tree}"
    );
}

#[tokio::test]
async fn a_directory_outside_git_gets_no_repository() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "a.txt", "a\n");
    let rt = Runtime::start(&["true"], &[]);
    let sent = upload_to(&rt, dir.path()).await;
    assert!(
        matches!(sent.history, HistoryOutcome::NotGit),
        "{:?}",
        sent.history
    );
    assert!(!rt.workspace.path().join(".git").exists());
}

#[tokio::test]
async fn a_subdirectory_of_a_repository_gets_files_without_git() {
    let repo = fixture();
    write_file(repo.path(), "sub/inner.txt", "inner\n");
    let rt = Runtime::start(&["true"], &[]);
    let sent = upload_to(&rt, &repo.path().join("sub")).await;
    let note = sent.history.note().unwrap();
    assert!(note.contains("not at its top"), "{note}");
    assert!(rt.workspace.path().join("inner.txt").exists());
    assert!(!rt.workspace.path().join(".git").exists());
}

#[tokio::test]
async fn a_repository_without_commits_is_one_in_the_session() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "trunk"]);
    write_file(dir.path(), "a.txt", "a\n");
    let rt = Runtime::start(&["true"], &[]);
    upload_to(&rt, dir.path()).await;
    let ws = rt.workspace.path();
    assert_eq!(status(ws), ["?? a.txt"]);
    assert_eq!(
        git_text(ws, &["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/trunk"
    );
}

/// The client's identity goes into the session's repository only where the program's
/// environment has none (`HOME` with `useConfigOnly` and no user).
#[tokio::test]
async fn the_clients_identity_fills_in_where_the_session_has_none() {
    let repo = fixture();
    let home = tempfile::tempdir().unwrap();
    write_file(
        home.path(),
        ".gitconfig",
        "[user]\n\tuseConfigOnly = true\n",
    );
    let home_var = home.path().to_str().unwrap();
    let env = [("HOME", home_var), ("XDG_CONFIG_HOME", home_var)];
    let rt = Runtime::start(&["true"], &env);
    upload_to(&rt, repo.path()).await;
    let local = ["config", "--local", "user.email"];
    assert_eq!(
        git_text(rt.workspace.path(), &local).trim(),
        "test@example.com"
    );
}

#[tokio::test]
async fn an_identity_of_the_sessions_own_is_left_alone() {
    let repo = fixture();
    let home = tempfile::tempdir().unwrap();
    let config = "[user]\n\tname = Agent\n\temail = agent@example.com\n";
    write_file(home.path(), ".gitconfig", config);
    let home_var = home.path().to_str().unwrap();
    let env = [("HOME", home_var), ("XDG_CONFIG_HOME", home_var)];
    let rt = Runtime::start(&["true"], &env);
    upload_to(&rt, repo.path()).await;
    let local = Command::new("git")
        .args(["config", "--local", "user.email"])
        .current_dir(rt.workspace.path())
        .output()
        .unwrap();
    assert!(!local.status.success(), "set: {:?}", local.stdout);
}

/// `commits` commits on `main`, each rewriting `data.bin` with 16 KiB that do not compress:
/// a history far larger than its last tree. Made with fast-import, in one process.
fn long_history(commits: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q", "-b", "main"]);
    let mut stream = Vec::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for n in 1..=commits {
        let data: Vec<u8> = (0..16 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let message = format!("commit {n}");
        write!(
            stream,
            "commit refs/heads/main\nmark :{n}\ncommitter T <t@example.com> {} +0000\n\
             data {}\n{message}\n",
            1_700_000_000 + n,
            message.len()
        )
        .unwrap();
        if n > 1 {
            writeln!(stream, "from :{}", n - 1).unwrap();
        }
        writeln!(stream, "M 100644 inline data.bin\ndata {}", data.len()).unwrap();
        stream.extend_from_slice(&data);
        stream.push(b'\n');
    }
    let mut import = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    import.stdin.take().unwrap().write_all(&stream).unwrap();
    assert!(import.wait().unwrap().success());
    git(root, &["reset", "-q", "--hard"]);
    dir
}

/// 60 commits of 16 KiB each do not fit in 900 KiB; the last 50 do.
#[tokio::test]
async fn a_history_past_the_budget_goes_shallow() {
    let repo = long_history(60);
    let root = repo.path();
    let rt = Runtime::start(&["true"], &[]);
    let ws = upload::scan(root).unwrap();
    let (url, headers) = (rt.http(), BTreeMap::new());
    let history = History::start(root);
    upload::upload(&ws, root, &url, TOKEN, &headers, false)
        .await
        .unwrap();
    let sent = history.send(&url, TOKEN, &headers, 900 * 1024, false).await;
    assert!(
        matches!(
            sent,
            HistoryOutcome::Sent {
                depth: Some(50),
                ..
            }
        ),
        "{sent:?}"
    );
    let session = rt.workspace.path();
    assert_eq!(
        git_text(session, &["rev-list", "--count", "HEAD"]).trim(),
        "50"
    );
    let head = ["rev-parse", "HEAD"];
    assert_eq!(git_text(session, &head), git_text(root, &head));
    assert!(status(session).is_empty());
}

/// A shallow clone sends its own boundary with its whole (shallow) history.
#[tokio::test]
async fn a_shallow_clone_stays_shallow_in_the_session() {
    let origin = long_history(5);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", origin.path().display());
    git(dir.path(), &["clone", "-q", "--depth", "2", &url, "clone"]);
    let clone = dir.path().join("clone");
    let rt = Runtime::start(&["true"], &[]);
    let sent = upload_to(&rt, &clone).await;
    assert!(
        matches!(sent.history, HistoryOutcome::Sent { depth: None, .. }),
        "{:?}",
        sent.history
    );
    let session = rt.workspace.path();
    assert_eq!(
        git_text(session, &["rev-list", "--count", "HEAD"]).trim(),
        "2"
    );
    assert_eq!(
        git_text(session, &["rev-parse", "--is-shallow-repository"]).trim(),
        "true"
    );
}
