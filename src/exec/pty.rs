//! The PTY: `openpty`, the child in its own session with the slave as controlling terminal,
//! and the master as a non-blocking fd in tokio's reactor. The only unsafe code of the runtime.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;

use nix::sys::signal::{self, SigHandler, Signal};
use nix::unistd::Pid;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::process::{Child, Command};

/// What to run and where.
pub(super) struct Spawn<'a> {
    pub argv: &'a [String],
    pub cwd: &'a Path,
    pub env: &'a [(String, String)],
    pub size: (u16, u16),
}

/// The master side of the PTY. Reads and writes take `&self`, so one `Arc` serves the
/// output pump, the input writer and resizes.
pub(super) struct Master {
    fd: AsyncFd<OwnedFd>,
}

/// The most output a read of the master gets while a flood is on: what the kernel's line
/// discipline buffers (4 KiB less one byte).
const LDISC_BYTES: usize = 4095;

/// Signals a parent may have ignored that must not stay ignored in the child: ignored
/// dispositions survive exec, and an ignored SIGINT makes Ctrl-C do nothing.
const RESET_SIGNALS: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGHUP,
];

/// Starts `spawn.argv` on a new PTY of `spawn.size` (cols, rows).
pub(super) fn spawn(spawn: &Spawn) -> io::Result<(Master, Child)> {
    let (program, args) = spawn
        .argv
        .split_first()
        .ok_or_else(|| io::Error::other("empty command"))?;
    let size = winsize(spawn.size);
    let pty = nix::pty::openpty(Some(&size), None)?;
    // glibc's openpty leaves both ends inheritable; only the child's stdio may hold the slave.
    for fd in [&pty.master, &pty.slave] {
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
    }
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(spawn.cwd)
        .env_clear()
        .envs(spawn.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::from(pty.slave.try_clone()?))
        .stdout(Stdio::from(pty.slave.try_clone()?))
        .stderr(Stdio::from(pty.slave));
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (signal, setsid, ioctl); it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            for sig in RESET_SIGNALS {
                signal::signal(sig, SigHandler::SigDfl).map_err(io::Error::from)?;
            }
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // `cmd` holds the slave's dups; dropping it leaves the child the only holder, so the
    // master reports EOF (EIO) once the child and its descendants are gone.
    drop(cmd);
    rustix::fs::fcntl_setfl(&pty.master, rustix::fs::OFlags::NONBLOCK)?;
    // SAFETY: we own the master fd and it stays open as long as the AsyncFd that owns it.
    let fd = unsafe { AsyncFd::register(pty.master)? };
    Ok((Master { fd }, child))
}

fn winsize((cols, rows): (u16, u16)) -> nix::pty::Winsize {
    nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// EIO from the master means every slave end is closed: end of output.
fn eof_on_eio(result: io::Result<usize>) -> io::Result<usize> {
    match result {
        Err(e) if e.raw_os_error() == Some(libc_eio()) => Ok(0),
        other => other,
    }
}

fn libc_eio() -> i32 {
    rustix::io::Errno::IO.raw_os_error()
}

impl Master {
    /// Reads output; `Ok(0)` at end of output.
    pub(super) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut ready = self.fd.readable().await?;
            match rustix::io::read(ready.get_inner(), &mut *buf) {
                Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
                Err(e) => return eof_on_eio(Err(e.into())),
                Ok(n) => {
                    // A read that did not fill the line discipline's buffer emptied the PTY
                    // (a keystroke's echo, say): the next read waits for new output instead
                    // of asking again. Output written after this read is a new edge, so
                    // nothing is missed. A full buffer means a flood: read on at once.
                    if n < LDISC_BYTES {
                        ready.clear_ready();
                    }
                    return Ok(n);
                }
            }
        }
    }

    pub(super) async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = self
                .fd
                .async_io(Interest::WRITABLE, |fd| {
                    rustix::io::write(fd, data).map_err(io::Error::from)
                })
                .await?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Sets the terminal size; the kernel sends SIGWINCH to the foreground group.
    pub(super) fn resize(&self, (cols, rows): (u16, u16)) -> io::Result<()> {
        let size = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(self.fd.get_ref(), size).map_err(io::Error::from)
    }

    /// The terminal's foreground process group: where a typed Ctrl-C would go.
    pub(super) fn foreground_group(&self) -> Option<i32> {
        rustix::termios::tcgetpgrp(self.fd.get_ref())
            .ok()
            .map(|pid| pid.as_raw_nonzero().get())
    }
}

/// The signal a client named, as `nix` knows it.
pub(super) fn nix_signal(signal: crate::protocol::Signal) -> Signal {
    use crate::protocol::Signal as Named;
    match signal {
        Named::Int => Signal::SIGINT,
        Named::Term => Signal::SIGTERM,
        Named::Kill => Signal::SIGKILL,
        Named::Hup => Signal::SIGHUP,
        Named::Quit => Signal::SIGQUIT,
        Named::Tstp => Signal::SIGTSTP,
        Named::Cont => Signal::SIGCONT,
        Named::Winch => Signal::SIGWINCH,
        Named::Usr1 => Signal::SIGUSR1,
        Named::Usr2 => Signal::SIGUSR2,
    }
}

/// Sends `sig` to the process group `pgid` (the child leads its own session and group).
pub(super) fn signal_group(pgid: i32, sig: Signal) -> io::Result<()> {
    signal::killpg(Pid::from_raw(pgid), sig).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_signals_map_to_the_same_nix_signal() {
        for name in [
            "SIGINT", "SIGTERM", "SIGKILL", "SIGHUP", "SIGQUIT", "SIGTSTP", "SIGCONT", "SIGWINCH",
            "SIGUSR1", "SIGUSR2",
        ] {
            let named = crate::protocol::Signal::from_name(name).unwrap();
            assert_eq!(nix_signal(named).as_str(), name);
        }
    }
}
