//! The program's phase as the session records it: waiting for the first interactive attach
//! (with the size it asked for), running (its PTY and process group), or exited (its status).
//! The process task moves it forward through these methods, which notify waiters themselves.

use std::sync::Arc;

use super::{ConnId, Session};
use crate::exec::pty::Master;
use crate::protocol::ExitStatus;

pub(super) enum Phase {
    /// Waiting for the first interactive attach; `Some(size)` once one asked to start.
    NotStarted(Option<(u16, u16)>),
    Running {
        master: Arc<Master>,
        pgid: i32,
    },
    Exited(ExitStatus),
}

impl Session {
    /// Waits for an interactive attach and for any upload (or `/git`) in progress to finish.
    /// Returns the size the program starts at.
    pub(crate) async fn wait_for_start(&self) -> (u16, u16) {
        let mut changed = self.subscribe();
        loop {
            changed.borrow_and_update();
            {
                let st = self.lock();
                if let (Phase::NotStarted(Some(size)), false) = (&st.phase, st.upload.holds_start())
                {
                    return *size;
                }
            }
            // The sender lives in `self`, so this only fails if the session is gone.
            let _ = changed.changed().await;
        }
    }

    /// The program was spawned: resizes and signals go to it from now on.
    pub(crate) fn set_running(&self, master: Arc<Master>, pgid: i32) {
        self.lock().phase = Phase::Running { master, pgid };
        self.notify_changed();
    }

    /// The program has exited, or could not start; its output is all in the buffer. Each
    /// connection sends `exit` once it has every byte.
    pub(crate) fn set_exited(&self, status: ExitStatus) {
        self.lock().phase = Phase::Exited(status);
        self.notify_changed();
    }

    /// The running program's process group, to hang it up from outside.
    pub(crate) fn running_pgid(&self) -> Option<i32> {
        match &self.lock().phase {
            Phase::Running { pgid, .. } => Some(*pgid),
            _ => None,
        }
    }

    /// The process group a signal from this connection goes to, if it may send one. A
    /// signal sent right after the first attach waits for the process to be spawned.
    pub(crate) async fn signal_target(&self, conn: ConnId) -> Option<i32> {
        let mut changed = self.subscribe();
        loop {
            changed.borrow_and_update();
            {
                let st = self.lock();
                if !st.is_interactive(conn) {
                    return None;
                }
                match &st.phase {
                    Phase::Running { master, pgid } => {
                        return Some(master.foreground_group().unwrap_or(*pgid));
                    }
                    Phase::Exited(_) => return None,
                    Phase::NotStarted(_) => {}
                }
            }
            changed.changed().await.ok()?;
        }
    }
}
