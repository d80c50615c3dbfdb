//! The user's terminal: raw mode behind a guard that restores it on every path, its size, and
//! keystrokes read without blocking the runtime.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;

use bytes::Bytes;
use termion::raw::{IntoRawMode, RawTerminal};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::task::AbortOnDrop;

/// Size used when stdout is not a terminal (or reports 0x0, as under `script`).
const FALLBACK_SIZE: (u16, u16) = (80, 24);

/// Raw mode for as long as this lives. Dropping it (normally, on error, or while a panic
/// unwinds) puts the terminal back as it was.
pub(super) struct RawGuard {
    _raw: Option<RawTerminal<io::Stdout>>,
}

impl RawGuard {
    /// Enters raw mode when stdin and stdout are terminals; otherwise does nothing.
    pub(super) fn enter() -> io::Result<RawGuard> {
        if !io::stdin().is_terminal() || !io::stdout().is_terminal() {
            return Ok(RawGuard { _raw: None });
        }
        Ok(RawGuard {
            _raw: Some(io::stdout().into_raw_mode()?),
        })
    }
}

/// The terminal's size as (cols, rows).
pub(super) fn size() -> (u16, u16) {
    match termion::terminal_size() {
        Ok((cols, rows)) if cols > 0 && rows > 0 => (cols, rows),
        _ => FALLBACK_SIZE,
    }
}

/// The size to give the session: the terminal's, within what a session takes.
pub(super) fn session_size() -> (u16, u16) {
    crate::protocol::control::clamp_size(size())
}

/// Bytes read at once from stdin.
const READ_BYTES: usize = 4096;

/// What the user types. A terminal is read by a task on the runtime, through a file
/// description of our own; anything else by a thread.
pub(super) struct Stdin {
    rx: mpsc::Receiver<Bytes>,
    _task: Option<AbortOnDrop<()>>,
}

impl Stdin {
    pub(super) fn new() -> Stdin {
        let (tx, rx) = mpsc::channel(64);
        let task = match own_terminal() {
            Some(tty) => Some(AbortOnDrop(tokio::spawn(read_terminal(tty, tx)))),
            None => {
                std::thread::spawn(move || read_blocking(tx));
                None
            }
        };
        Stdin { rx, _task: task }
    }

    /// The next bytes typed; `None` once stdin is closed. Cancel-safe.
    pub(super) async fn recv(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }
}

/// The terminal behind `stdio` (stdin or stdout) opened afresh by its name, non-blocking,
/// for reading or writing. A fresh open is its own file description, so `O_NONBLOCK` stays
/// ours: set on stdin or stdout it would be the shell's too. (Not `/dev/tty`: its file is
/// the alias, so it could not be checked against `stdio`.) `None` when `stdio` is not a
/// terminal or cannot be opened again.
pub(super) fn reopen(stdio: impl AsFd + IsTerminal, write: bool) -> Option<File> {
    if !stdio.is_terminal() {
        return None;
    }
    let name = rustix::termios::ttyname(&stdio, Vec::new()).ok()?;
    let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY;
    let tty = std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(flags.bits() as i32)
        .open(std::ffi::OsStr::from_bytes(name.as_bytes()))
        .ok()?;
    let device = |fd: BorrowedFd| rustix::fs::fstat(fd).ok().map(|stat| stat.st_rdev);
    (device(stdio.as_fd())? == device(tty.as_fd())?).then_some(tty)
}

/// Stdin's terminal, reopened (above) and registered with the runtime.
fn own_terminal() -> Option<AsyncFd<File>> {
    let tty = reopen(io::stdin(), false)?;
    // Readable only: the terminal is also where output goes, and a wake-up for every write
    // of ours would cost the runtime a turn of its event loop.
    // SAFETY: the AsyncFd owns the file, so the fd stays open for as long as it is registered.
    #[allow(unsafe_code)]
    unsafe { AsyncFd::register_with_interest(tty, Interest::READABLE) }.ok()
}

/// Keystrokes reach the attach loop in one hop, with no thread to wake in between.
async fn read_terminal(tty: AsyncFd<File>, tx: mpsc::Sender<Bytes>) {
    let mut buf = [0u8; READ_BYTES];
    loop {
        let Ok(mut ready) = tty.readable().await else {
            return;
        };
        // Read on until the terminal is empty before sending. Besides gathering a burst into
        // one frame, the read that finds nothing makes the kernel finish delivering first:
        // its tty worker woke us part-way through, and `n_tty_read` waits for that work
        // before saying "would block". Sent only then, our frame wakes its reader on this
        // core, now free, rather than on an idle one, which a VM takes some 40 µs to wake
        // (measured in BENCHMARKS.md: 77 % of keys woke the runtime across cores, now 4 %).
        let mut n = 0;
        let ended = loop {
            if n == buf.len() {
                break false;
            }
            match ready.get_inner().read(&mut buf[n..]) {
                Ok(0) => break true,
                Ok(m) => n += m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready.clear_ready();
                    break false;
                }
                Err(_) => break true,
            }
        };
        if n > 0 && tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
            return;
        }
        if ended {
            return;
        }
    }
}

/// Reads stdin on a thread of its own (tokio's stdin would block the runtime's shutdown).
/// The thread is never joined: it may sit in `read` forever, and the process exits without
/// waiting for it.
fn read_blocking(tx: mpsc::Sender<Bytes>) {
    let mut stdin = io::stdin().lock();
    let mut buf = [0u8; READ_BYTES];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                    return;
                }
            }
        }
    }
}

/// A line of our own on stderr, correct in raw mode too (raw mode turns off `\n` → `\r\n`).
pub(super) fn note(message: &str) {
    let mut err = io::stderr().lock();
    let _ = write!(err, "\r\x1b[K{}\r\n", message.replace('\n', "\r\n"));
    let _ = err.flush();
}

/// The one status line shown while reconnecting: on the bottom row, cut to the terminal's
/// width, with the cursor put back where the session left it.
pub(super) fn status(message: &str) {
    let (cols, rows) = size();
    let line: String = message
        .chars()
        .take(usize::from(cols).saturating_sub(1))
        .collect();
    let mut err = io::stderr().lock();
    let _ = write!(err, "\x1b7\x1b[{rows};1H\x1b[0m\x1b[K{line}\x1b8");
    let _ = err.flush();
}

/// Removes the status line: the bottom row erased in the default colours, the cursor (and
/// the session's colours) restored.
pub(super) fn clear_status() {
    let (_, rows) = size();
    let mut err = io::stderr().lock();
    let _ = write!(err, "\x1b7\x1b[{rows};1H\x1b[0m\x1b[K\x1b8");
    let _ = err.flush();
}
