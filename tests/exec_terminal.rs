//! The runtime's terminal over a real socket: sizes, TERM, vim, signals, exit codes.

use crate::common::{self, Client, Runtime, sized};
use catty::protocol::{ClientMsg, ConnectParams, ExitStatus};

#[tokio::test]
async fn stty_size_follows_the_client_and_resizes() {
    let rt = Runtime::start(&["bash", "--norc", "--noprofile", "-i"], &[]);
    let mut c = Client::connect(rt.addr, &sized(101, 37)).await.unwrap();
    c.send(b"stty size; echo TERM=$TERM\r").await;
    c.read_until_contains("37 101").await;
    c.read_until_contains("TERM=xterm-256color").await;
    c.control(&ClientMsg::Resize {
        cols: 132,
        rows: 50,
    })
    .await;
    c.send(b"stty size\r").await;
    c.read_until_contains("50 132").await;
}

#[tokio::test]
async fn vim_starts_and_quits() {
    let rt = Runtime::start(&["vim", "-N", "-u", "NONE", "-i", "NONE", "notes.txt"], &[]);
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    // vim switches to the alternate screen and shows the file name once it is up.
    c.read_until_contains("notes.txt").await;
    c.send(b"ihello from vim\x1b:wq\r").await;
    c.read_until("exit", |c| c.exit.is_some()).await;
    assert_eq!(
        c.exit,
        Some(ExitStatus {
            code: 0,
            signal: None
        })
    );
    let saved = std::fs::read_to_string(rt.workspace.path().join("notes.txt")).unwrap();
    assert_eq!(saved, "hello from vim\n");
}

#[tokio::test]
async fn signal_message_stops_sleep() {
    let rt = Runtime::start(&["sleep", "100"], &[]);
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    c.control(&ClientMsg::Signal {
        name: catty::protocol::Signal::Int,
    })
    .await;
    c.read_until("exit", |c| c.exit.is_some()).await;
    assert_eq!(
        c.exit,
        Some(ExitStatus {
            code: 130,
            signal: Some("SIGINT".into())
        })
    );
}

#[tokio::test]
async fn signal_message_goes_to_the_foreground_job() {
    let rt = Runtime::start(&["bash", "--norc", "--noprofile", "-i"], &[]);
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    c.read_until_contains("$ ").await;
    c.send(b"sleep 100\r").await;
    // Once sleep is the terminal's foreground job, the shell has printed nothing more.
    c.read_until_contains("sleep 100\r\n").await;
    wait_for_foreground(rt.pid(), "sleep");
    c.control(&ClientMsg::Signal {
        name: catty::protocol::Signal::Int,
    })
    .await;
    c.send(b"echo status=$?\r").await;
    // 130 = 128 + SIGINT: sleep was interrupted and the shell lives on.
    c.read_until_contains("status=130").await;
}

/// Waits until a process named `name` runs somewhere below `runtime_pid`.
fn wait_for_foreground(runtime_pid: i32, name: &str) {
    let deadline = std::time::Instant::now() + common::DEADLINE;
    while std::time::Instant::now() < deadline {
        let out = std::process::Command::new("pgrep")
            .args(["-f", name])
            .output()
            .unwrap();
        let found = String::from_utf8_lossy(&out.stdout).lines().any(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The sleep's grandparent is the runtime (runtime -> bash -> sleep).
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().nth(1))
                .unwrap_or("0");
            let gp = std::fs::read_to_string(format!("/proc/{ppid}/stat")).unwrap_or_default();
            gp.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().nth(1))
                == Some(&runtime_pid.to_string())
        });
        if found {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("{name} never started");
}

#[tokio::test]
async fn exit_code_comes_after_every_output_byte() {
    let rt = Runtime::start(&["sh", "-c", "seq 1 20000; exit 7"], &[]);
    let mut c = Client::connect(rt.addr, &sized(80, 24)).await.unwrap();
    c.read_until("exit", |c| c.exit.is_some()).await;
    assert_eq!(
        c.exit,
        Some(ExitStatus {
            code: 7,
            signal: None
        })
    );
    let expected: String = (1..=20000).map(|i| format!("{i}\r\n")).collect();
    assert_eq!(c.text(), expected);
}

#[tokio::test]
async fn bad_signal_and_unknown_messages_get_an_error_and_the_stream_carries_on() {
    let rt = Runtime::start(&["bash", "--norc", "--noprofile", "-i"], &[]);
    let mut c = Client::connect(rt.addr, &ConnectParams::default())
        .await
        .unwrap();
    // A name outside the set cannot be built as a `Signal`: send the raw message.
    c.send_text(r#"{"type":"signal","name":"SIGSEGV"}"#).await;
    c.send_text(r#"{"type":"teleport"}"#).await;
    c.send_text("not json").await;
    c.read_until("three errors", |c| c.errors.len() == 3).await;
    assert!(c.errors[0].contains("SIGSEGV"), "{:?}", c.errors);
    assert!(c.errors[1].contains("teleport"), "{:?}", c.errors);
    c.send(b"echo still-here\r").await;
    c.read_until_contains("still-here\r\n").await;
}
