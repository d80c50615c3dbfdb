//! `catty new` in a real terminal (tmux), sandbox on, with each agent installed the way users
//! install it, under the pane's own (temporary) HOME: the session runs the program the pane's
//! shell would, and it opens at its main prompt. The copies are hard links of the packages
//! .ci/run installs, arranged as each installer arranges them.
//!
//! System-wide npm is the copy under `/opt/catty-agents` itself: `/opt` is shown to every
//! sandbox as `/usr` is, so it stands for `/usr/local` without writing there.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::screens::{self, Classify, Verdict};
use super::{Installed, installed, random_chars};
use crate::common::repo::write_file;
use crate::common::tmux::Tmux;
use crate::common::{succeeded, which};

/// The npm prefix of an installed copy (`…/claude-code-2.1.330`, whose `bin` is `dir`).
fn prefix(copy: &Installed) -> &Path {
    copy.dir.parent().unwrap()
}

/// `cp -al`: the tree `from` at `to`, its files hard links (same disk, no copying).
fn hard_copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let out = Command::new("cp")
        .arg("-al")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    succeeded(out);
}

/// An npm prefix at `to` holding `copy`'s package, with its `bin/PROGRAM` link as npm makes
/// it; returns the prefix's bin directory.
fn npm_prefix(copy: &Installed, program: &str, to: &Path) -> PathBuf {
    hard_copy(&prefix(copy).join("lib"), &to.join("lib"));
    let target = std::fs::read_link(copy.dir.join(program)).unwrap();
    std::fs::create_dir_all(to.join("bin")).unwrap();
    std::os::unix::fs::symlink(target, to.join("bin").join(program)).unwrap();
    to.join("bin")
}

/// Claude Code's native binary in a copy (its npm package ships the same executable).
fn claude_binary(copy: &Installed) -> PathBuf {
    std::fs::canonicalize(copy.dir.join("claude")).unwrap()
}

/// Types `export PATH=… KEY=…` and `catty new --agent AGENT` in a fresh pane of a project,
/// and waits for the agent's main prompt.
fn reaches_main(
    what: &str,
    agent: &str,
    setup: impl FnOnce(&Path) -> PathBuf,
    key: (&str, &str),
    classify: Classify,
) {
    let project = tempfile::tempdir().unwrap();
    write_file(project.path(), "README.md", "a project\n");
    let tmux = Tmux::start(project.path(), 140, 40);
    let bin_dir = setup(tmux.dirs.home.path());
    let catty_dir = Path::new(env!("CARGO_BIN_EXE_catty")).parent().unwrap();
    tmux.run(&format!(
        "export PATH={}:{}:/usr/local/bin:/usr/bin:/bin {}={}",
        bin_dir.display(),
        catty_dir.display(),
        key.0,
        key.1
    ));
    tmux.run(&format!("clear; catty new --agent {agent}"));
    let screen = tmux.wait_for(&format!("{what} at its main prompt"), |s| {
        classify(s) != Verdict::Unknown
    });
    assert_eq!(classify(&screen), Verdict::Main, "{what}:\n{screen}");
    report!("{what}: main prompt");
}

fn claude_key() -> (&'static str, String) {
    (
        "ANTHROPIC_API_KEY",
        format!("sk-ant-api03-{}AA", random_chars(92)),
    )
}

#[test]
fn claude_installed_system_wide() {
    for copy in installed("claude", "@anthropic-ai/claude-code")
        .iter()
        .take(1)
    {
        let key = claude_key();
        let what = format!("claude {} under /opt", copy.version);
        reaches_main(
            &what,
            "claude",
            |_| copy.dir.clone(),
            (key.0, &key.1),
            screens::claude,
        );
    }
}

#[test]
fn claude_from_its_native_installer() {
    for copy in installed("claude", "@anthropic-ai/claude-code")
        .iter()
        .take(1)
    {
        let key = claude_key();
        let setup = |home: &Path| {
            let version = home.join(".local/share/claude/versions/2.1.0");
            std::fs::create_dir_all(version.parent().unwrap()).unwrap();
            std::fs::hard_link(claude_binary(copy), &version).unwrap();
            let bin = home.join(".local/bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::os::unix::fs::symlink(&version, bin.join("claude")).unwrap();
            bin
        };
        let what = format!("claude {} in ~/.local/bin", copy.version);
        reaches_main(&what, "claude", setup, (key.0, &key.1), screens::claude);
    }
}

#[test]
fn claude_in_a_directory_under_tmp() {
    let tools = tempfile::tempdir().unwrap();
    for copy in installed("claude", "@anthropic-ai/claude-code")
        .iter()
        .take(1)
    {
        let key = claude_key();
        let setup = |_: &Path| {
            let dir = tools.path().join("tools");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::hard_link(claude_binary(copy), dir.join("claude")).unwrap();
            dir
        };
        let what = format!("claude {} in {}", copy.version, tools.path().display());
        reaches_main(&what, "claude", setup, (key.0, &key.1), screens::claude);
    }
}

/// nvm: the package and the Node that runs it under `~/.nvm/versions/node/VERSION`.
#[test]
fn codex_under_nvm() {
    for codex in installed("codex", "@openai/codex") {
        let key = format!("sk-proj-{}", random_chars(156));
        let setup = |home: &Path| {
            let node_prefix = home.join(".nvm/versions/node/v20.0.0");
            let bin = npm_prefix(&codex, "codex", &node_prefix);
            let node = which("node");
            std::fs::hard_link(std::fs::canonicalize(node).unwrap(), bin.join("node")).unwrap();
            bin
        };
        let what = format!("{} under nvm", codex.version);
        reaches_main(
            &what,
            "codex",
            setup,
            ("OPENAI_API_KEY", &key),
            screens::codex,
        );
    }
}

/// A user npm prefix (`npm config set prefix ~/.npm-global`).
#[test]
fn gemini_in_a_user_npm_prefix() {
    for gemini in installed("gemini", "@google/gemini-cli") {
        let key = format!("AIza{}", random_chars(35));
        let setup = |home: &Path| npm_prefix(&gemini, "gemini", &home.join(".npm-global"));
        let what = format!("gemini {} in ~/.npm-global", gemini.version);
        reaches_main(
            &what,
            "gemini",
            setup,
            ("GEMINI_API_KEY", &key),
            screens::gemini,
        );
    }
}

/// An agent that is not installed, or a command not on the PATH: one line that says what to
/// install, exit 1, and nothing made (no session, no label, no workspace).
#[test]
fn a_missing_program_is_one_line_and_no_session() {
    let project = tempfile::tempdir().unwrap();
    write_file(project.path(), "README.md", "a project\n");
    let tmux = Tmux::start(project.path(), 140, 40);
    let catty_dir = Path::new(env!("CARGO_BIN_EXE_catty")).parent().unwrap();
    tmux.run(&format!(
        "export PATH={}:/usr/bin:/bin",
        catty_dir.display()
    ));
    for (i, (args, line)) in [
        (
            "--agent gemini",
            "catty: Gemini CLI is not installed here (gemini is not on your PATH): \
             install it with `npm install -g @google/gemini-cli`",
        ),
        (
            "-- no-such-tool --flag",
            "catty: no-such-tool is not on your PATH",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        // A mark of its own per try: the screen may still show the last one's.
        let mark = format!("exit-{i}=");
        tmux.run(&format!("clear; catty new {args}; echo {mark}$?"));
        // Not the typed line, which says `{mark}$?`: the line the shell printed.
        let screen = tmux.wait_for("the exit code", |s| s.lines().any(|l| l.starts_with(&mark)));
        // `clear` ran first: the screen is what `catty new` printed, then the exit code.
        let printed: Vec<&str> = screen
            .lines()
            .take_while(|l| !l.starts_with(&mark))
            .collect();
        assert_eq!(printed, [line], "{screen}");
        assert!(screen.contains(&format!("{mark}1")), "{screen}");
    }
    let list = tmux.catty(&["list", "--json"]);
    let sessions: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(sessions, serde_json::json!([]), "catty list --json");
    let made: Vec<_> = std::fs::read_dir(tmux.state_dir().join("sessions"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != "resolv.conf")
        .collect();
    assert!(made.is_empty(), "{made:?}");
}
