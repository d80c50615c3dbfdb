//! `catty logs` against a real daemon and its local runtimes: the exited program's output
//! byte for byte (`--raw`), as text, its last lines, followed while it runs, and quiet on
//! a closed pipe.

use std::process::Output;

use crate::common::api::Daemon;
use crate::common::{Client, DEADLINE};
use catty::protocol::api::SessionCreated;

const LINES: u64 = 1_200_000;
/// Colour, then more lines than the 8 MiB ring holds.
const PROGRAM: &str = "printf '\\033[1;32mgreen\\033[0m\\n'; seq 1 1200000";

fn expected_raw() -> Vec<u8> {
    let mut out = b"\x1b[1;32mgreen\x1b[0m\r\n".to_vec();
    out.extend((1..=LINES).flat_map(|i| format!("{i}\r\n").into_bytes()));
    out
}

fn catty(d: &Daemon, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_catty"));
    cmd.args(args)
        .env("CATTY_API_ADDR", d.addr.to_string())
        .env("XDG_STATE_HOME", d.root().join("state"))
        .env("HOME", d.root().join("home"))
        .kill_on_drop(true);
    cmd
}

async fn output(d: &Daemon, args: &[&str]) -> Output {
    let run = catty(d, args).output();
    let out = tokio::time::timeout(DEADLINE, run).await.expect("in time");
    out.unwrap()
}

/// A session whose program ran to its end (attached, so it started); its runtime stays.
async fn exited(d: &Daemon, script: &str) -> SessionCreated {
    let created = d
        .create(serde_json::json!({"agent": "shell", "cmd": ["sh", "-c", script]}))
        .await;
    let mut c = Client::attach(&created.connect_url, &created.connect_token).await;
    c.read_until("exit", |c| c.exit.is_some()).await;
    created
}

#[tokio::test]
async fn logs_of_an_exited_session_are_its_output_byte_for_byte() {
    let d = Daemon::start(true);
    let s = exited(&d, PROGRAM).await;
    let out = output(&d, &["logs", &s.label, "--raw"]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout == expected_raw(), "the raw transcript differs");
}

#[tokio::test]
async fn logs_as_text_strip_escapes_and_carriage_returns() {
    let d = Daemon::start(false);
    let s = exited(
        &d,
        "printf '\\033[1;32mgreen\\033[0m\\n\\033]0;title\\007plain\\n'",
    )
    .await;
    let out = output(&d, &["logs", &s.label]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "green\nplain\n");
}

#[tokio::test]
async fn logs_tail_prints_the_last_lines() {
    let d = Daemon::start(false);
    let s = exited(&d, "seq 1 1000").await;
    let out = output(&d, &["logs", &s.session_id, "--tail", "3"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "998\n999\n1000\n");
}

#[tokio::test]
async fn logs_follow_a_running_program_until_it_exits() {
    let d = Daemon::start(false);
    let script = "echo started; read line; echo \"got $line\"";
    let created = d
        .create(serde_json::json!({"agent": "shell", "cmd": ["sh", "-c", script]}))
        .await;
    let mut c = Client::attach(&created.connect_url, &created.connect_token).await;
    c.read_until_contains("started").await;
    let mut follower = catty(&d, &["logs", &created.label, "-f"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = follower.stdout.take().unwrap();
    let mut seen = Vec::new();
    read_until(&mut stdout, &mut seen, "started\n").await;
    c.send(b"hello\r").await;
    read_until(&mut stdout, &mut seen, "got hello\n").await;
    let status = tokio::time::timeout(DEADLINE, follower.wait()).await;
    assert!(
        status
            .expect("logs -f ends with the program")
            .unwrap()
            .success()
    );
}

async fn read_until(stdout: &mut tokio::process::ChildStdout, seen: &mut Vec<u8>, what: &str) {
    use tokio::io::AsyncReadExt;
    let reading = async {
        while !String::from_utf8_lossy(seen).contains(what) {
            let mut buf = [0; 4096];
            let n = stdout.read(&mut buf).await.unwrap();
            assert!(n > 0, "logs -f ended before {what:?}: {seen:?}");
            seen.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(DEADLINE, reading)
        .await
        .unwrap_or_else(|_| panic!("no {what:?} in time: {:?}", String::from_utf8_lossy(seen)));
}

/// `catty logs x | head` exits 0 without a word when `head` has had enough.
#[tokio::test]
async fn logs_into_a_closed_pipe_exit_quietly() {
    let d = Daemon::start(false);
    let s = exited(&d, PROGRAM).await;
    let catty_path = env!("CARGO_BIN_EXE_catty");
    let line = format!(
        "set -o pipefail; '{catty_path}' logs {} --raw | head -c 10",
        s.label
    );
    let mut cmd = catty(&d, &["-c", &line]);
    let cmd = cmd.as_std_mut();
    let mut bash = tokio::process::Command::new("bash");
    bash.args(cmd.get_args())
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))));
    let out = tokio::time::timeout(DEADLINE, bash.output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"\x1b[1;32mgre");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
