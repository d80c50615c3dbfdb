//! The session's process: started at the first interactive attach, its output pumped into the
//! buffer under flow control, its input written from the queue, its exit recorded after the
//! last output byte, and its hangup when the session is ended from outside.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Child;
use tokio::sync::mpsc;

use super::agents;
use super::command::Command;
use super::pty::{self, Master, Spawn};
use super::session::{Input, Session};
use super::sync::SyncBack;
use crate::protocol::ExitStatus;
use crate::task::AbortOnDrop;

/// Bytes read from the PTY at once, at most and at least.
const READ_CHUNK_BYTES: usize = 64 * 1024;
const MIN_READ_BYTES: usize = 4 * 1024;

/// The output pump lets other tasks run (the input writer above all) after this much.
const YIELD_EVERY_BYTES: usize = 64 * 1024;

/// After the process exits, how long to wait for output still on its way through the PTY.
const DRAIN_WAIT: Duration = Duration::from_millis(100);

/// How long a hung-up process may take before it is killed.
pub(super) const HANGUP_GRACE: Duration = Duration::from_secs(5);

/// Runs the session's process from the first attach to its exit, and tells sync-back of
/// both. Returns its status.
pub(super) async fn run(
    session: Arc<Session>,
    mut command: Command,
    sync: &SyncBack,
) -> io::Result<ExitStatus> {
    let size = session.wait_for_start().await;
    // The upload is done: the workspace as uploaded is noted beside the agent's preparation.
    let (_, prepared) = tokio::join!(sync.remember_start(), async {
        agents::find_program(&command)?;
        Ok::<_, String>(agents::prepare(&mut command).await)
    });
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(missing) => return Err(refuse(&session, missing)),
    };
    // A configuration that could not be written is worth a warning, not a refusal: the
    // agent still starts, it just asks its first-run questions.
    if let Err(e) = prepared {
        tracing::warn!("{e:#}");
        session.say(&format!("catty: {e:#}; it may ask its first-run questions"));
    }
    let spawn = Spawn {
        argv: &command.argv,
        cwd: &command.cwd,
        env: &command.env,
        size,
    };
    let (master, mut child) = match pty::spawn(&spawn) {
        Ok(started) => started,
        Err(e) => return Err(refuse(&session, agents::cannot_start(&command, &e))),
    };
    let master = Arc::new(master);
    let pgid = child.id().map_or(0, |pid| pid as i32);
    session.set_running(master.clone(), pgid);
    tracing::info!(pid = pgid, "process started");

    // Input gets a task of its own: polled alongside a pump that is busy with a flood, it
    // would wait for the pump to run out of coop budget, up to 150 ms for a Ctrl-C.
    let input = session.take_input().expect("the process starts once");
    let writer = AbortOnDrop(tokio::spawn(write_input(master.clone(), input)));
    let status = pump_output(&session, &master, &mut child).await?;
    drop(writer);
    tracing::info!(code = status.code, signal = ?status.signal, "process exited");
    // Before clients hear of the exit: a manifest they ask for next shows all it wrote.
    sync.program_exited();
    session.set_exited(status.clone());
    Ok(status)
}

/// The program cannot start: `message` goes to the terminal, and the session ends with 127
/// (the shell's "command not found").
fn refuse(session: &Session, message: String) -> io::Error {
    session.say(&format!("catty: {message}"));
    session.set_exited(ExitStatus {
        code: 127,
        signal: None,
    });
    io::Error::other(message)
}

/// Moves PTY output into the buffer until the process has exited and its output is drained.
async fn pump_output(
    session: &Session,
    master: &Master,
    child: &mut Child,
) -> io::Result<ExitStatus> {
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut exited = None;
    let mut read_since_yield = 0;
    loop {
        // No more than the window has room for (a small window is a slow terminal's), but
        // not a trickle either.
        let room = session.wait_for_window().await;
        let want = (room as usize).clamp(MIN_READ_BYTES, READ_CHUNK_BYTES);
        let buf = &mut buf[..want];
        let n = match exited {
            // The process is gone: what is still in the PTY is its last output. The kernel
            // hands slave writes to the master a moment later, so wait briefly for them; a
            // descendant still holding the slave must not keep the session open, though.
            Some(_) => match tokio::time::timeout(DRAIN_WAIT, master.read(buf)).await {
                Ok(read) => read.unwrap_or(0),
                Err(_) => 0,
            },
            None => tokio::select! {
                read = master.read(buf) => read.unwrap_or(0),
                status = child.wait() => {
                    exited = Some(status?);
                    continue;
                }
            },
        };
        if n == 0 {
            let status = match exited {
                Some(status) => status,
                None => child.wait().await?,
            };
            return Ok(exit_status(status));
        }
        session.push_output(&buf[..n]);
        // The runtime has one thread: a flood must not keep a Ctrl-C waiting behind it.
        read_since_yield += n;
        if read_since_yield >= YIELD_EVERY_BYTES {
            read_since_yield = 0;
            tokio::task::yield_now().await;
        }
    }
}

async fn write_input(master: Arc<Master>, mut input: mpsc::Receiver<Input>) {
    // The room the bytes took in the queue is given back once they are written.
    while let Some((bytes, _room)) = input.recv().await {
        if let Err(e) = master.write_all(&bytes).await {
            tracing::warn!("writing input to the pty failed: {e}");
        }
    }
}

fn exit_status(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitStatus { code, signal: None },
        (None, Some(sig)) => ExitStatus {
            code: 128 + sig,
            signal: Signal::try_from(sig).ok().map(|s| s.as_str().to_string()),
        },
        (None, None) => ExitStatus {
            code: 1,
            signal: None,
        },
    }
}

/// Ends the process from outside: SIGHUP (and SIGCONT, in case it is stopped), then SIGKILL
/// if it is still there after [`HANGUP_GRACE`]. `done` is the task running [`run`].
pub(super) async fn hang_up<F: Future + Unpin>(session: &Session, done: &mut F) {
    let Some(pgid) = session.running_pgid() else {
        return;
    };
    tracing::info!(pgid, "hanging up the process");
    let _ = pty::signal_group(pgid, Signal::SIGHUP);
    let _ = pty::signal_group(pgid, Signal::SIGCONT);
    if tokio::time::timeout(HANGUP_GRACE, &mut *done)
        .await
        .is_err()
    {
        tracing::warn!(pgid, "process ignored SIGHUP; killing it");
        let _ = pty::signal_group(pgid, Signal::SIGKILL);
        let _ = tokio::time::timeout(Duration::from_secs(1), done).await;
    }
}
