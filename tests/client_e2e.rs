//! `catty` as a user meets it: the real binary in a tmux terminal, its daemon started as the
//! client would start it (`commands.rs` lets the client start it once), local sessions, in
//! temporary git repositories and state directories.

mod commands;
mod completions;
mod daemon;
mod extend;
mod listing;
mod stderr;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::repo::{git, git_oracle, write_file};
use crate::common::tmux::{Tmux, at_prompt};

/// Lists every session (ended ones too) as JSON values, checking that the listing holds no
/// secret: no session's connect token, not the daemon's own token, and times as RFC 3339.
fn sessions(t: &Tmux) -> Vec<serde_json::Value> {
    let out = t.catty(&["list", "--all", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let state = t.state_dir();
    let records = std::fs::read_to_string(state.join("sessions.json")).unwrap_or_default();
    let records: serde_json::Value = serde_json::from_str(&records).unwrap_or_default();
    let mut secrets: Vec<String> = (records["sessions"].as_array().into_iter().flatten())
        .filter_map(|r| Some(r["connect_token"].as_str()?.to_string()))
        .collect();
    assert!(
        !secrets.is_empty() || text.trim() == "[]",
        "no record to check against"
    );
    secrets.extend(std::fs::read_to_string(state.join("api.token")).ok());
    for secret in secrets.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        assert!(
            !text.contains(secret),
            "catty list --json shows a token:\n{text}"
        );
    }
    let lower = text.to_lowercase();
    assert!(
        !lower.contains("token") && !lower.contains("bearer") && !lower.contains("authorization"),
        "{text}"
    );
    let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    for s in &all {
        let created = s["created_at"].as_str().unwrap_or_default();
        assert!(created.ends_with('Z') && created.contains('T'), "{s}");
    }
    all
}

/// The one session of this test.
fn only_session(t: &Tmux) -> serde_json::Value {
    let all = sessions(t);
    assert_eq!(all.len(), 1, "{all:?}");
    all.into_iter().next().unwrap()
}

fn workspace_of(t: &Tmux, session: &serde_json::Value) -> PathBuf {
    t.state_dir()
        .join("sessions")
        .join(session["session_id"].as_str().unwrap())
        .join("workspace")
}

/// Starts `catty new ARGS` in the pane and waits for the session's shell prompt.
fn new_session(t: &Tmux, args: &str) -> String {
    t.start_session(&format!("catty new {args}"))
}

/// A repository that exercises git's ignore rules.
fn tricky_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q"]);
    write_file(
        root,
        ".gitignore",
        "*.tmp\n/root_only.txt\nbuild/\n!keep.tmp\nsecret/\n!secret/allowed.txt\n",
    );
    write_file(root, "sub/.gitignore", "*.md\n!README.md\n/anchored.txt\n");
    write_file(root, ".git/info/exclude", "excluded_by_info/\n");
    for f in [
        "main.rs",
        "a.tmp",
        "keep.tmp",
        "root_only.txt",
        "sub/root_only.txt",
        "build/out.o",
        "lib/build",
        "secret/allowed.txt",
        "sub/notes.md",
        "sub/README.md",
        "sub/anchored.txt",
        "sub/deep/anchored.txt",
        "excluded_by_info/x.txt",
        "node_modules/pkg/index.js",
        ".venv/bin/python",
        ".env",
        "app/.env",
        "__pycache__/m.pyc",
        "x.pyc",
        "debug.log",
        ".DS_Store",
        ".editorconfig",
        "docs/guide.txt",
    ] {
        write_file(root, f, format!("content of {f}\n"));
    }
    dir
}

fn files_under(root: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                found.insert(
                    entry
                        .path()
                        .strip_prefix(root)
                        .unwrap()
                        .display()
                        .to_string(),
                );
            }
        }
    }
    found
}

#[test]
fn new_uploads_exactly_what_git_lists() {
    let repo = tricky_repo();
    let t = Tmux::start(repo.path(), 100, 30);
    new_session(&t, "-- bash --norc --noprofile");
    let uploaded = files_under(&workspace_of(&t, &only_session(&t)));
    // The session's own repository (made by `/git`) is not part of the upload.
    let uploaded: BTreeSet<String> = uploaded
        .into_iter()
        .filter(|p| !p.starts_with(".git/"))
        .collect();
    let expected = git_oracle(repo.path());
    assert!(
        expected.contains("keep.tmp")
            && expected.contains("lib/build")
            && !expected.contains("a.tmp")
    );
    assert_eq!(uploaded, expected);
}

#[test]
fn typing_resize_vim_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    new_session(&t, "--no-upload -- bash --norc --noprofile");
    assert_reads_terminal_itself(t.foreground_pid());
    t.run("echo $((6*7))");
    t.wait_for_text("42");
    t.run("stty size");
    t.wait_for_text("30 100");
    t.resize(120, 40);
    t.run("clear; stty size");
    t.wait_for_text("40 120");
    t.run("vim -N -u NONE -i NONE notes.txt");
    // vim's own status line, not the command line that started it.
    t.wait_for_text("[New");
    t.type_text("ihello from vim");
    t.wait_for("insert mode", |s| {
        s.contains("-- INSERT --") && s.contains("hello from vim")
    });
    // Wait for vim to take the Escape, or it may read Escape and ':' as one Alt key.
    t.keys(&["Escape"]);
    t.wait_for("normal mode", |s| !s.contains("-- INSERT --"));
    t.run(":wq");
    // vim discards pending input as it exits: type on only once the shell is back.
    t.wait_for("the shell after vim", |s| {
        s.contains(" vim -N") && at_prompt(s)
    });
    t.run("clear; cat notes.txt");
    t.wait_for_text("hello from vim");
    t.run("exit 3");
    t.wait_for_text("exit code 3");
    t.run("r=$?; clear; echo rc=$r; stty -a");
    let screen = t.wait_for("stty's report", |s| {
        s.contains("rc=3") && s.contains("icanon")
    });
    assert!(
        screen.contains(" icanon") && screen.contains(" echo "),
        "terminal not restored:\n{screen}"
    );
}

/// Keys reach the client's event loop with no thread in between: it holds a file of its own
/// on its terminal (a fd above 2 naming the same device as stdin), opened non-blocking.
fn assert_reads_terminal_itself(client: i32) {
    let link = |fd: &str| std::fs::read_link(format!("/proc/{client}/fd/{fd}")).ok();
    let terminal = link("0").expect("the client's stdin");
    let own = std::fs::read_dir(format!("/proc/{client}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|fd| fd.parse::<u32>().is_ok_and(|n| n > 2))
        .find(|fd| link(fd).as_ref() == Some(&terminal))
        .unwrap_or_else(|| panic!("client {client} has no file of its own on {terminal:?}"));
    let info = std::fs::read_to_string(format!("/proc/{client}/fdinfo/{own}")).unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        .expect("fdinfo has flags");
    const O_NONBLOCK: u32 = 0o4000;
    assert!(flags & O_NONBLOCK != 0, "fd {own} is blocking: {info}");
}

#[test]
fn detach_connect_two_clients_and_watch() {
    let dir = tempfile::tempdir().unwrap();
    let a = Tmux::start(dir.path(), 100, 30);
    let label = new_session(&a, "--no-upload -- bash --norc --noprofile");
    a.run("echo first-$((1+1))");
    a.wait_for_text("first-2");
    a.keys(&["Enter"]);
    a.type_text("~?");
    a.wait_for_text("~.  detach");
    a.keys(&["Enter"]);
    a.type_text("~.");
    a.wait_for_text("detached from");
    assert_eq!(only_session(&a)["state"], "running");

    a.run(&format!("clear; catty connect {label}"));
    a.wait_for_text("first-2");
    let b = a.another(dir.path(), 100, 30);
    b.run(&format!("catty connect {label}"));
    b.wait_for_text("first-2");
    let w = a.another(dir.path(), 100, 30);
    w.run(&format!("catty connect --watch {label}"));
    w.wait_for_text("first-2");

    w.run("echo typed-by-watcher");
    b.run("echo from-b-$((2+3))");
    for t in [&a, &b, &w] {
        t.wait_for_text("from-b-5");
    }
    a.run("echo from-a-$((3+4))");
    for t in [&a, &b, &w] {
        let screen = t.wait_for_text("from-a-7");
        assert!(
            !screen.contains("typed-by-watcher"),
            "the watcher's input arrived:\n{screen}"
        );
    }
}

/// Counts to N like `seq 1 N`, in bursts of 1000 lines 10 ms apart, so that a test can act
/// while it runs.
const SLOW_COUNT: &str = "python3 -c 'import sys,time\nfor i in range(1, int(sys.argv[1]) + 1):\n    print(i)\n    if i % 1000 == 0: sys.stdout.flush(); time.sleep(0.01)'";

/// Every line that is a number, in order, must count up by one.
pub fn assert_consecutive(history: &str, last: u64) {
    let numbers: Vec<u64> = history
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(numbers.len() > 10, "too few numbers:\n{history}");
    for pair in numbers.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "a lost or doubled line around {}",
            pair[0]
        );
    }
    assert_eq!(*numbers.last().unwrap(), last);
}

#[test]
fn killed_client_reconnects_without_lost_or_doubled_lines() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 80, 24);
    let label = new_session(&t, "--no-upload -- bash --norc --noprofile");
    t.run(&format!("{SLOW_COUNT} 300000; echo counted-$((40+2))"));
    t.wait_for("counting to start", |s| {
        s.lines().any(|l| l.trim().parse::<u64>().is_ok())
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(t.foreground_pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    t.wait_for("the outer prompt", |s| s.trim_end().ends_with('$'));
    t.reset();
    t.run(&format!("stty sane; clear; catty connect {label}"));
    t.wait_for_text("counted-42");
    let history = t.history();
    let after_connect = history
        .split(&format!("catty connect {label}"))
        .last()
        .unwrap();
    assert_consecutive(after_connect, 300000);
}

#[test]
fn cut_link_reconnects_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 80, 24);
    new_session(&t, "--no-upload -- bash --norc --noprofile");
    let session = only_session(&t);
    let port = session["connect_url"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    t.run(&format!("{SLOW_COUNT} 20000; echo counted-$((40+2))"));
    t.wait_for("counting to start", |s| {
        s.lines().any(|l| l.trim().parse::<u64>().is_ok())
    });
    for _ in 0..3 {
        let out = Command::new("ss")
            .args(["-K", "dst", "127.0.0.1", "dport", "=", &port])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ss -K failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    t.wait_for_text("counted-42");
    assert_consecutive(&t.history(), 20000);
    let log = std::fs::read_to_string(
        workspace_of(&t, &session)
            .parent()
            .unwrap()
            .join("runtime.log"),
    )
    .unwrap();
    assert!(
        log.matches("client attached").count() >= 2,
        "no reconnect happened:\n{log}"
    );
}
