//! What `catty new` writes on stderr: no panic on a closed pipe, no spinner or progress bytes
//! in a pipe, and in a terminal spinners that are drawn, then erased.

use std::process::{Output, Stdio};

use super::new_session;
use crate::common::repo::write_file;
use crate::common::tmux::Tmux;

/// `catty new ARGS` run from `dir` through `bash -c`, its stdout and stderr into `| head -c 1`;
/// the output is what `head` printed, then `rc=` and catty's exit code.
fn new_into_head(t: &Tmux, dir: &std::path::Path, args: &str) -> Output {
    let line =
        format!("catty new {args} </dev/null 2>&1 | head -c 1; echo \" rc=${{PIPESTATUS[0]}}\"");
    let catty = t.catty_command(&[]);
    let env = catty.get_envs().filter_map(|(k, v)| Some((k, v?)));
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["--norc", "--noprofile", "-c", &line])
        .current_dir(dir)
        .env_clear()
        .envs(env);
    cmd.output().unwrap()
}

/// `head -c 1` leaves after the first byte: every later line of `catty new` (the label, the
/// exit status) meets a closed pipe, which must not become a panic (exit 101).
#[test]
fn new_into_a_closed_pipe_exits_with_the_program_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    let out = new_into_head(&t, dir.path(), "--no-upload --agent shell -- true");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(said.trim(), "c rc=0", "{said}");
}

/// With stderr a pipe, the stages (starting the daemon, scanning, uploading, creating the
/// session) draw nothing: only whole lines, no carriage return, no escape sequence.
#[test]
fn new_with_stderr_in_a_pipe_draws_no_progress() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..200 {
        write_file(dir.path(), format!("src/file{i}.txt"), "some content\n");
    }
    let t = Tmux::start_without_daemon(dir.path(), 100, 30);
    let out = t
        .catty_command(&["new", "--agent", "shell", "--", "true"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("catty: session "), "{stderr}");
    assert!(
        !stderr.contains(['\r', '\x1b']),
        "progress drawn into a pipe: {stderr:?}"
    );
}

/// In a terminal each stage's spinner is drawn (the pane's recorded bytes show it) and
/// erased when the stage ends: the screen at the session's prompt shows none of them.
#[test]
fn new_in_a_terminal_draws_its_stages_then_clears_them() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "README", "hello\n");
    let t = Tmux::start_without_daemon(dir.path(), 100, 30);
    // Outside the directory, which is uploaded.
    let drawn = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    t.record(&drawn);
    new_session(&t, "--agent shell");
    let screen = t.screen();
    let bytes = String::from_utf8_lossy(&std::fs::read(&drawn).unwrap()).into_owned();
    for stage in [
        "scanning the directory",
        "starting the catty daemon",
        "creating and starting the machine",
    ] {
        assert!(bytes.contains(stage), "{stage} never drawn: {bytes:?}");
        assert!(
            !screen.contains(stage),
            "{stage} left on the screen:\n{screen}"
        );
    }
}
