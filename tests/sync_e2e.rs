//! Sync-back end to end: the real `catty new` in a tmux terminal, the real daemon and runtime
//! (local provider), real git on both sides as the oracle. The session's workspace is on disk
//! under the test's state directory, so its tree is read there directly.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::repo::{git, write_file};
use crate::common::tmux::Tmux;

/// `git ARGS` in `dir`, its output as text.
fn git_text(dir: &Path, args: &[&str]) -> String {
    String::from_utf8(git(dir, args)).unwrap()
}

/// A repository with two commits (`first`, `second`) and a clean work tree.
fn two_commits() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["config", "user.name", "Test Person"]);
    git(root, &["config", "user.email", "test@example.com"]);
    write_file(root, ".gitignore", "node_modules/\n");
    write_file(root, "edit.txt", "one\n");
    write_file(root, "gone.txt", "to be deleted\n");
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "first"]);
    write_file(root, "edit.txt", "one\ntwo\n");
    write_file(root, "keep/deep.txt", "kept\n");
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "second"]);
    dir
}

/// Starts `catty new ARGS` in the pane, followed by a marker with its exit code, and waits
/// for the session's prompt; returns the label.
fn new_session(t: &Tmux, args: &str) -> String {
    t.start_session(&format!("catty new {args}; echo CLIENT-EXITED-$?"))
}

/// `catty new` of a shell with a plain prompt.
const SHELL: &str = "-- bash --norc --noprofile";

/// Runs `line` in the session's shell and waits until it has finished (a marker it prints,
/// computed so the typed line itself does not contain it).
fn run_in_session(t: &Tmux, line: &str) {
    let n = crate::common::random_below(1_000_000);
    t.run(&format!("{line}; echo DONE-$(({n}+1))"));
    t.wait_for_text(&format!("DONE-{}", n + 1));
}

/// Ends the session's program and waits for `catty new` to return.
fn exit_session(t: &Tmux) {
    t.run("exit 0");
    t.wait_for_text("CLIENT-EXITED-0");
}

/// The one session of this test's state directory.
fn only_session(t: &Tmux) -> serde_json::Value {
    let out = t.catty(&["list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    all.into_iter().next().unwrap()
}

/// The session's workspace on disk (the local provider's).
fn workspace(t: &Tmux) -> PathBuf {
    let session = only_session(t);
    t.state_dir()
        .join("sessions")
        .join(session["session_id"].as_str().unwrap())
        .join("workspace")
}

#[derive(Debug, PartialEq, Eq)]
enum Entry {
    File { executable: bool, bytes: Vec<u8> },
    Link(PathBuf),
}

/// Every file and symlink under `root` but `.git`, by relative path.
fn tree(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if rel == ".git" {
                continue;
            } else if meta.is_symlink() {
                out.insert(rel, Entry::Link(std::fs::read_link(&path).unwrap()));
            } else if meta.is_dir() {
                walk(root, &path, out);
            } else {
                let executable = meta.permissions().mode() & 0o111 != 0;
                let bytes = std::fs::read(&path).unwrap();
                out.insert(rel, Entry::File { executable, bytes });
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Git's whole view of `dir`'s work tree against `commit`: `git add -A` into a scratch
/// index, then the binary diff of that index against `commit` (new files, modes, symlinks,
/// deletions, binary content included). The real index is not touched.
fn full_diff(dir: &Path, commit: &str) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let index = scratch.path().join("index");
    let run = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_INDEX_FILE", &index)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["add", "-A"]);
    run(&["diff", "--cached", "--binary", commit])
}

/// What must never change in the local repository: branch, HEAD, index, stash.
fn local_repo_state(dir: &Path) -> [String; 4] {
    [
        git_text(dir, &["symbolic-ref", "HEAD"]),
        git_text(dir, &["rev-parse", "HEAD"]),
        git_text(dir, &["ls-files", "--stage"]),
        git_text(dir, &["stash", "list"]),
    ]
}

/// The agent's work in the first test: an edit, text, binary, executable files, a symlink,
/// nested directories, a deletion, two commits, then an uncommitted edit on top.
const AGENT_WORK: &str = "printf 'three\\n' >> edit.txt; mkdir -p a/b/c; \
    printf 'nested\\n' > a/b/c/text.txt; printf '\\000\\001\\377\\376bin' > a/data.bin; \
    printf '#!/bin/sh\\necho hi\\n' > run.sh; chmod +x run.sh; ln -s a/b/c/text.txt link; \
    rm gone.txt; git add -A; git commit -qm third; printf 'more\\n' >> keep/deep.txt; \
    git commit -qam fourth; printf 'uncommitted\\n' >> edit.txt";

/// The session of the first tests: the agent's work done, the program exited.
struct Worked {
    repo: tempfile::TempDir,
    t: Tmux,
    label: String,
    before: [String; 4],
    session: PathBuf,
}

fn agent_worked() -> Worked {
    let repo = two_commits();
    let before = local_repo_state(repo.path());
    let t = Tmux::start(repo.path(), 200, 40);
    let label = new_session(&t, SHELL);
    let session = workspace(&t);
    run_in_session(&t, AGENT_WORK);
    exit_session(&t);
    Worked {
        repo,
        t,
        label,
        before,
        session,
    }
}

#[test]
fn the_sessions_work_comes_back_file_by_file() {
    let w = agent_worked();
    let (local, remote) = (tree(w.repo.path()), tree(&w.session));
    assert!(remote.contains_key("a/data.bin") && !remote.contains_key("gone.txt"));
    assert_eq!(local, remote);
    // Git agrees: the same whole diff against the uploaded commit, and the same uncommitted
    // change against the session's HEAD (now `catty/<label>` here).
    let uploaded = w.before[1].trim();
    assert_eq!(
        full_diff(w.repo.path(), uploaded),
        full_diff(&w.session, uploaded)
    );
    let branch = format!("catty/{}", w.label);
    assert_eq!(
        full_diff(w.repo.path(), &branch),
        git_text(&w.session, &["diff", "--binary", "HEAD"])
    );
    assert_eq!(
        git_text(&w.session, &["status", "--porcelain"]),
        " M edit.txt\n"
    );
    let _ = &w.t;
}

#[test]
fn the_sessions_commits_arrive_as_a_branch_with_their_parents() {
    let w = agent_worked();
    let branch = format!("catty/{}", w.label);
    let chain = |dir: &Path, rev: &str| git_text(dir, &["rev-list", "--parents", rev]);
    assert_eq!(chain(w.repo.path(), &branch), chain(&w.session, "HEAD"));
    let subjects = git_text(w.repo.path(), &["log", "--format=%s", &branch]);
    assert_eq!(subjects, "fourth\nthird\nsecond\nfirst\n");
    let grandparent = git_text(w.repo.path(), &["rev-parse", &format!("{branch}~2")]);
    assert_eq!(grandparent, w.before[1]);
}

#[test]
fn the_local_branch_head_index_and_stash_stay_as_they_were() {
    let w = agent_worked();
    assert_eq!(local_repo_state(w.repo.path()), w.before);
}

#[test]
fn a_file_saved_in_the_session_appears_locally_while_attached() {
    let repo = two_commits();
    let t = Tmux::start(repo.path(), 200, 40);
    new_session(&t, SHELL);
    run_in_session(&t, "printf 'saved remotely\\n' > saved.txt");
    wait_for_file(&repo.path().join("saved.txt"), b"saved remotely\n");
}

#[test]
fn files_under_an_ignored_node_modules_stay_remote() {
    let repo = two_commits();
    let t = Tmux::start(repo.path(), 200, 40);
    new_session(&t, SHELL);
    run_in_session(
        &t,
        "mkdir -p node_modules/pkg && echo x > node_modules/pkg/index.js && echo later > later.txt",
    );
    wait_for_file(&repo.path().join("later.txt"), b"later\n");
    assert!(!repo.path().join("node_modules").exists());
}

#[test]
fn no_sync_brings_nothing_back_until_pull() {
    let repo = two_commits();
    let t = Tmux::start(repo.path(), 200, 40);
    let label = new_session(&t, &format!("--no-sync {SHELL}"));
    run_in_session(&t, "echo made > made.txt");
    exit_session(&t);
    let made = repo.path().join("made.txt");
    assert!(!made.exists(), "--no-sync synced made.txt");
    let out = t.catty(&["pull", &label]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&made).unwrap(), b"made\n");
}

#[test]
fn a_conflict_keeps_the_local_edit_and_names_the_file() {
    let repo = two_commits();
    let t = Tmux::start(repo.path(), 200, 40);
    new_session(&t, SHELL);
    write_file(repo.path(), "edit.txt", "local edit\n");
    run_in_session(&t, "echo remote edit > edit.txt; echo later > later.txt");
    wait_for_file(&repo.path().join("later.txt"), b"later\n");
    t.wait_for_text("conflict: edit.txt");
    assert_eq!(
        std::fs::read(repo.path().join("edit.txt")).unwrap(),
        b"local edit\n"
    );
}

#[test]
fn a_local_delete_survives_a_remote_edit_and_the_file_is_named() {
    let repo = two_commits();
    let t = Tmux::start(repo.path(), 200, 40);
    new_session(&t, SHELL);
    std::fs::remove_file(repo.path().join("edit.txt")).unwrap();
    run_in_session(&t, "echo remote edit > edit.txt; echo later > later.txt");
    wait_for_file(&repo.path().join("later.txt"), b"later\n");
    t.wait_for_text("conflict: edit.txt");
    assert!(!repo.path().join("edit.txt").exists());
}

#[test]
fn a_local_edit_survives_a_remote_delete_and_the_file_is_named() {
    let repo = two_commits();
    let t = Tmux::start(repo.path(), 200, 40);
    new_session(&t, SHELL);
    write_file(repo.path(), "edit.txt", "local edit\n");
    run_in_session(&t, "rm edit.txt; echo later > later.txt");
    wait_for_file(&repo.path().join("later.txt"), b"later\n");
    t.wait_for_text("conflict: edit.txt");
    assert_eq!(
        std::fs::read(repo.path().join("edit.txt")).unwrap(),
        b"local edit\n"
    );
}

#[test]
fn diff_shows_the_sessions_change_without_applying_it() {
    let repo = two_commits();
    let t = Tmux::start(repo.path(), 200, 40);
    let label = new_session(&t, &format!("--no-sync {SHELL}"));
    run_in_session(&t, "echo remote line >> edit.txt");
    exit_session(&t);
    let out = t.catty(&["diff", &label]);
    assert!(out.status.success(), "{out:?}");
    let diff = String::from_utf8(out.stdout).unwrap();
    assert!(
        diff.contains("edit.txt") && diff.contains("+remote line"),
        "{diff}"
    );
    assert_eq!(
        std::fs::read(repo.path().join("edit.txt")).unwrap(),
        b"one\ntwo\n"
    );
}

/// Waits until `path` holds exactly `bytes`.
fn wait_for_file(path: &Path, bytes: &[u8]) {
    let deadline = std::time::Instant::now() + crate::common::DEADLINE;
    while std::fs::read(path).ok().as_deref() != Some(bytes) {
        assert!(
            std::time::Instant::now() < deadline,
            "{} did not arrive",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Files with the executable bit flipped, a file become a directory and a directory a file,
/// a renamed `.gitignore`, a name with a space and a non-ASCII letter, a new symlink.
#[test]
fn type_mode_and_name_changes_come_back() {
    let repo = two_commits();
    let t = Tmux::start(repo.path(), 200, 40);
    new_session(&t, SHELL);
    let session = workspace(&t);
    run_in_session(
        &t,
        "chmod +x edit.txt; rm gone.txt; mkdir gone.txt; echo in > gone.txt/inner; \
         rm -r keep; echo now-a-file > keep; mv .gitignore moved-ignore; \
         echo spaced > 'a b \u{fc}.txt'; ln -s edit.txt edit-link",
    );
    exit_session(&t);
    assert_eq!(tree(repo.path()), tree(&session));
}

/// `catty new`'s client killed (SIGKILL) while 200 new files of 200 KiB come back; `catty
/// pull` then ends equal, with no temp file left.
#[test]
fn a_client_killed_mid_sync_leaves_no_temp_file_and_pull_ends_equal() {
    let repo = two_commits();
    let t = Tmux::start(repo.path(), 200, 40);
    let label = new_session(&t, SHELL);
    let session = workspace(&t);
    let client = t.foreground_pid();
    run_in_session(
        &t,
        "mkdir big; for i in $(seq 200); do head -c 200000 /dev/urandom > big/f$i; done",
    );
    let big = repo.path().join("big");
    let deadline = std::time::Instant::now() + crate::common::DEADLINE;
    while !big.exists() {
        assert!(std::time::Instant::now() < deadline, "nothing came back");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let killed = Command::new("kill")
        .args(["-9", &client.to_string()])
        .status();
    assert!(killed.unwrap().success());
    let arrived = std::fs::read_dir(&big).unwrap().count();
    let out = t.catty(&["pull", &label]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(tree(repo.path()), tree(&session), "{arrived} had arrived");
    assert_eq!(temp_files(repo.path()), Vec::<PathBuf>::new());
}

/// The client's temp files (`.catty-sync-*`) under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(".catty-sync-") {
            found.push(path);
        } else if path.is_dir() && !path.is_symlink() {
            found.extend(temp_files(&path));
        }
    }
    found
}

/// The program deletes a file the moment it starts, before any sync round could have run
/// while attached: the deletion still comes back (the upload is confirmed before the
/// program starts, not taken for a file the session ignores).
#[test]
fn a_file_the_program_deletes_at_its_start_is_deleted_locally() {
    let repo = two_commits();
    let t = Tmux::start(repo.path(), 200, 40);
    t.run("clear; catty new -- sh -c 'rm gone.txt; exit 0'; echo CLIENT-EXITED-$?");
    t.wait_for_text("CLIENT-EXITED-0");
    assert!(!repo.path().join("gone.txt").exists());
}

#[test]
fn pull_after_no_sync_brings_a_deletion_back() {
    let repo = two_commits();
    let t = Tmux::start(repo.path(), 200, 40);
    let label = new_session(&t, &format!("--no-sync {SHELL}"));
    run_in_session(&t, "rm gone.txt");
    exit_session(&t);
    let out = t.catty(&["pull", &label]);
    assert!(out.status.success(), "{out:?}");
    assert!(!repo.path().join("gone.txt").exists(), "{out:?}");
}

/// The program writes a file and exits at once, inside the runtime's debounce: the pull made
/// when it exits still brings the file (a manifest asked for without `after` is computed
/// anew, not the last one counted).
#[test]
fn the_programs_last_write_comes_back_when_it_exits() {
    let repo = two_commits();
    let t = Tmux::start(repo.path(), 200, 40);
    t.run("clear; catty new -- sh -c 'echo last > last.txt; exit 0'; echo CLIENT-EXITED-$?");
    t.wait_for_text("CLIENT-EXITED-0");
    assert_eq!(
        std::fs::read(repo.path().join("last.txt")).unwrap(),
        b"last\n"
    );
}
