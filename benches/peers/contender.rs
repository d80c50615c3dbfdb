//! The contenders: catty (sandbox off and on), `ssh -tt` to the private sshd, and the bare
//! PTY (bash right on our terminal, the physical limit). Each runs the same
//! `bash --norc --noprofile` with the same prompt, on a terminal of ours.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, Session};
use crate::pty::Term;
use crate::sshd::Sshd;
use crate::{PROMPT, SHELL, proc};

/// A shell that starts slower than this is broken, not slow.
const SHELL_TIMEOUT: Duration = Duration::from_secs(60);

/// The table's columns, in order.
pub const NAMES: [&str; 4] = [
    "catty (sandbox off)",
    "catty (sandbox on)",
    "ssh",
    "bare PTY",
];

pub enum Contender<'a> {
    Catty(&'a Daemon),
    Ssh(&'a Sshd),
    Bare,
}

impl Contender<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Contender::Catty(daemon) => daemon.name(),
            Contender::Ssh(_) => "ssh",
            Contender::Bare => "bare PTY",
        }
    }

    /// Starts the shell on a new terminal of ours in `cwd`, without waiting for it. For
    /// catty, `Shell::new` is the way: its session must be stopped after.
    fn spawn_plain(&self, cwd: &Path) -> Term {
        match self {
            Contender::Ssh(sshd) => {
                let argv = sshd.tty_argv(&remote_shell(cwd));
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                Term::spawn("ssh", &argv, &[], cwd)
            }
            Contender::Bare => Term::spawn("bare PTY", &SHELL, &[("PS1", PROMPT)], cwd),
            Contender::Catty(_) => unreachable!("catty shells are sessions"),
        }
    }

    /// The command that starts the contender's shell at its prompt, in `cwd`, for a terminal
    /// that is not ours (a tmux pane): variables are set through `env`, and catty's session
    /// must be stopped after.
    pub fn argv(&self, cwd: &Path) -> Vec<String> {
        let mut argv: Vec<String> = vec!["env".into()];
        match self {
            Contender::Catty(daemon) => {
                argv.extend(daemon.env().iter().map(|(k, v)| format!("{k}={v}")));
                argv.extend(crate::daemon::new_argv(false));
            }
            Contender::Ssh(sshd) => return sshd.tty_argv(&remote_shell(cwd)),
            Contender::Bare => {
                argv.push(format!("PS1={PROMPT}"));
                argv.extend(SHELL.map(String::from));
            }
        }
        argv
    }

    /// Seconds from starting the contender to its prompt on our terminal (ended after).
    pub fn to_prompt(&self, cwd: &Path) -> f64 {
        if let Contender::Catty(daemon) = self {
            return crate::daemon::new_to_prompt(daemon, cwd, false);
        }
        let start = Instant::now();
        let mut term = self.spawn_plain(cwd);
        let at = term.wait_for(PROMPT.as_bytes(), SHELL_TIMEOUT);
        term.write(b"exit\r");
        term.wait_exit(Duration::from_secs(20));
        at.duration_since(start).as_secs_f64()
    }
}

/// What ssh runs on the server: the same shell, in `cwd`.
fn remote_shell(cwd: &Path) -> String {
    format!(
        "cd {} && exec env 'PS1={PROMPT}' {}",
        cwd.display(),
        SHELL.join(" ")
    )
}

/// An interactive shell of one contender, at its prompt, with the processes on each side:
/// the server side (catty's runtime, ssh's sshd session process; none for the bare PTY) and
/// the client on our terminal (catty, ssh; the shell itself for the bare PTY).
pub struct Shell<'a> {
    inner: Inner<'a>,
    pub server: Vec<i32>,
    pub client: i32,
}

enum Inner<'a> {
    Catty(Session<'a>),
    Plain(Term),
}

impl<'a> Shell<'a> {
    pub fn new(contender: &Contender<'a>, cwd: &Path) -> Shell<'a> {
        match contender {
            Contender::Catty(daemon) => {
                let session = Session::new(daemon, cwd);
                Shell {
                    server: vec![daemon.runtime_pid(&session.label)],
                    client: session.term.pid(),
                    inner: Inner::Catty(session),
                }
            }
            Contender::Ssh(sshd) => {
                let before = proc::descendants(sshd.pid());
                let term = Self::plain(contender, cwd);
                let server = proc::descendants(sshd.pid())
                    .into_iter()
                    .filter(|p| !before.contains(p) && proc::comm(*p) == "sshd")
                    .collect();
                Shell {
                    server,
                    client: term.pid(),
                    inner: Inner::Plain(term),
                }
            }
            Contender::Bare => {
                let term = Self::plain(contender, cwd);
                Shell {
                    server: Vec::new(),
                    client: term.pid(),
                    inner: Inner::Plain(term),
                }
            }
        }
    }

    fn plain(contender: &Contender, cwd: &Path) -> Term {
        let mut term = contender.spawn_plain(cwd);
        term.wait_for(PROMPT.as_bytes(), SHELL_TIMEOUT);
        term
    }

    pub fn term(&mut self) -> &mut Term {
        match &mut self.inner {
            Inner::Catty(session) => &mut session.term,
            Inner::Plain(term) => term,
        }
    }

    /// CPU nanoseconds used so far by the server side and the client together.
    pub fn cpu_ns(&self) -> u64 {
        let server: u64 = self.server.iter().map(|p| proc::cpu_ns(*p)).sum();
        server + proc::cpu_ns(self.client)
    }

    /// CPU seconds used so far by the server side and by the client.
    pub fn cpu(&self) -> (f64, f64) {
        let server = self.server.iter().map(|p| proc::cpu_seconds(*p)).sum();
        (server, proc::cpu_seconds(self.client))
    }
}
