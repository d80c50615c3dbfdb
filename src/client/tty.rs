//! The user's terminal: raw mode behind a guard that restores it on every path, its size, and
//! stdin read on a plain thread (tokio's stdin would block the runtime's shutdown).

use std::io::{self, IsTerminal, Read, Write};

use bytes::Bytes;
use termion::raw::{IntoRawMode, RawTerminal};
use tokio::sync::mpsc;

/// Size used when stdout is not a terminal (or reports 0x0, as under `script`).
const FALLBACK_SIZE: (u16, u16) = (80, 24);

/// Raw mode for as long as this lives. Dropping it (normally, on error, or while a panic
/// unwinds) puts the terminal back as it was.
pub struct RawGuard {
    _raw: Option<RawTerminal<io::Stdout>>,
}

impl RawGuard {
    /// Enters raw mode when stdin and stdout are terminals; otherwise does nothing.
    pub fn enter() -> io::Result<RawGuard> {
        if !io::stdin().is_terminal() || !io::stdout().is_terminal() {
            return Ok(RawGuard { _raw: None });
        }
        Ok(RawGuard {
            _raw: Some(io::stdout().into_raw_mode()?),
        })
    }
}

/// The terminal's size as (cols, rows).
pub fn size() -> (u16, u16) {
    match termion::terminal_size() {
        Ok((cols, rows)) if cols > 0 && rows > 0 => (cols, rows),
        _ => FALLBACK_SIZE,
    }
}

/// Reads stdin on its own thread into a channel. The thread is never joined: it may sit in
/// `read` forever, and the process exits without waiting for it.
pub fn stdin_reader() -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = [0u8; 4096];
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
    });
    rx
}

/// Writes session output to the terminal.
pub fn write_output(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// A line of our own on stderr, correct in raw mode too (raw mode turns off `\n` → `\r\n`).
pub fn note(message: &str) {
    let mut err = io::stderr().lock();
    let _ = write!(err, "\r\x1b[K{}\r\n", message.replace('\n', "\r\n"));
    let _ = err.flush();
}

/// The one status line shown while reconnecting: on the bottom row, cut to the terminal's
/// width, with the cursor put back where the session left it.
pub fn status(message: &str) {
    let (cols, rows) = size();
    let line: String = message
        .chars()
        .take(usize::from(cols).saturating_sub(1))
        .collect();
    let mut err = io::stderr().lock();
    let _ = write!(err, "\x1b7\x1b[{rows};1H\x1b[0m\x1b[K{line}\x1b8");
    let _ = err.flush();
}

/// Removes the status line.
pub fn clear_status() {
    let (_, rows) = size();
    let mut err = io::stderr().lock();
    let _ = write!(err, "\x1b7\x1b[{rows};1H\x1b[K\x1b8");
    let _ = err.flush();
}
