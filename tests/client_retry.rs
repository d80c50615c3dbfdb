//! `catty new` when the daemon's answer to its create is lost (the daemon crashed after
//! recording the session, or the link failed): the real client asks again with the same
//! request id, through a proxy in front of a real daemon that loses the first answer, and
//! gets the session the first try made, never a second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::DEADLINE;
use crate::common::api::Daemon;

/// Forwards to the daemon, counting creates and answers that name a session, and drops the
/// connection that carries the first such answer instead of delivering it.
struct LosesFirstAnswer {
    addr: SocketAddr,
    creates: Arc<AtomicUsize>,
    answers: Arc<AtomicUsize>,
    _task: catty::task::AbortOnDrop<()>,
}

impl LosesFirstAnswer {
    async fn start(daemon: SocketAddr) -> LosesFirstAnswer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (creates, answers) = (Arc::default(), Arc::default());
        let counts = (Arc::clone(&creates), Arc::clone(&answers));
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counts = (Arc::clone(&counts.0), Arc::clone(&counts.1));
                tokio::spawn(async move {
                    let Ok(upstream) = TcpStream::connect(daemon).await else {
                        return;
                    };
                    link(client, upstream, counts.0, counts.1).await;
                });
            }
        });
        LosesFirstAnswer {
            addr,
            creates,
            answers,
            _task: catty::task::AbortOnDrop(task),
        }
    }
}

async fn link(
    client: TcpStream,
    upstream: TcpStream,
    creates: Arc<AtomicUsize>,
    answers: Arc<AtomicUsize>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut up_read, mut up_write) = upstream.into_split();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = client_read.read(&mut buf).await {
            if buf[..n].starts_with(b"POST /v1/sessions ") {
                creates.fetch_add(1, Ordering::SeqCst);
            }
            if up_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = up_read.read(&mut buf).await {
            let answer = &buf[..n];
            let has_session = answer.windows(12).any(|w| w == b"\"session_id\"");
            if has_session && answers.fetch_add(1, Ordering::SeqCst) == 0 {
                // Lost on the way: the client's connection closes without an answer.
                return;
            }
            if client_write.write_all(answer).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

#[tokio::test]
async fn a_lost_create_answer_is_asked_again_and_makes_one_session() {
    let d = Daemon::start(false);
    let proxy = LosesFirstAnswer::start(d.addr).await;
    let project = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_catty"))
        .args(["new", "--no-upload", "--", "sh", "-c", "echo made-$((6*7))"])
        .current_dir(project.path())
        .env("CATTY_API_ADDR", proxy.addr.to_string())
        .env("XDG_STATE_HOME", d.root().join("state"))
        .env("HOME", d.root().join("home"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, run)
        .await
        .expect("catty new in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("made-42"), "{stdout}");
    assert!(
        proxy.answers.load(Ordering::SeqCst) >= 2,
        "no answer was lost"
    );
    assert_eq!(proxy.creates.load(Ordering::SeqCst), 2, "asked once more");
    let sessions = d.list().await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
}
