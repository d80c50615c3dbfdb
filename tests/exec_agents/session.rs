//! The harness: a runtime session with a private HOME in a git repository, watched through
//! one interactive client whose output feeds a vt100 screen, and ended like a machine stop.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use catty::protocol::ExitStatus;
use tokio::sync::mpsc;

use super::screens::{Classify, Verdict};
use crate::common::repo::git;
use crate::common::{self, Client, Runtime, TOKEN, sized};

const SCREEN: (u16, u16) = (120, 40);
/// Claude Code took ~18 s to its prompt offline in the reference; allow plenty more.
const AGENT_DEADLINE: Duration = Duration::from_secs(120);
/// A verdict counts once the screen kept it this long: first-run screens replace each other
/// and the first one can be blank.
const STABLE_FOR: Duration = Duration::from_secs(5);
/// How often the screen is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// A session of the runtime with a private HOME, watched through one interactive client.
pub struct AgentSession {
    pub runtime: Runtime,
    pub home: tempfile::TempDir,
    events: mpsc::UnboundedReceiver<Event>,
    /// The screen so far, kept from one [`AgentSession::settle`] to the next.
    parser: vt100::Parser,
}

enum Event {
    Output(Vec<u8>),
    Exit(ExitStatus),
}

impl AgentSession {
    /// Starts `catty exec` with only `env` (plus what any session has) in a git repository.
    pub async fn start(path: &str, env: &[(&str, &str)], argv: &[&str]) -> AgentSession {
        Self::start_in(tempfile::tempdir().unwrap(), path, env, argv).await
    }

    /// Like [`AgentSession::start`], with a HOME the test prepared.
    pub async fn start_in(
        home: tempfile::TempDir,
        path: &str,
        env: &[(&str, &str)],
        argv: &[&str],
    ) -> AgentSession {
        let workspace = tempfile::tempdir().unwrap();
        git(workspace.path(), &["init", "-q"]);
        let transcript = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_catty"));
        cmd.args(["exec", "--addr", "127.0.0.1:0", "--workspace"])
            .arg(workspace.path())
            .arg("--")
            .args(argv)
            .env_clear()
            .env("PATH", path)
            .env("HOME", home.path())
            .env("LANG", "C.UTF-8")
            .env("CONNECT_TOKEN", TOKEN)
            .env("CATTY_GRACE_SEC", "5")
            .env("CATTY_LOG", "catty=debug")
            .env("CATTY_TRANSCRIPT", transcript.path())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(common::runtime_log());
        let mut child = cmd.spawn().expect("start catty exec");
        let addr = common::listening_addr(&mut child);
        let runtime = Runtime {
            child,
            addr,
            workspace,
            transcript,
        };
        let client = Client::connect(addr, &sized(SCREEN.0, SCREEN.1))
            .await
            .unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        // The reader owns the client: read_frame must never be cancelled mid-frame.
        tokio::spawn(read_events(client, tx));
        let nonzero = |n| std::num::NonZeroU16::new(n).unwrap();
        AgentSession {
            runtime,
            home,
            events,
            parser: vt100::Parser::new(nonzero(SCREEN.1), nonzero(SCREEN.0), 0),
        }
    }

    /// Watches the screen (from where the last call left it) until one verdict held for
    /// [`STABLE_FOR`], the program exited, or the deadline passed. Returns the verdict and the screen it was taken from.
    pub async fn settle(&mut self, classify: Classify) -> (Verdict, String) {
        let parser = &mut self.parser;
        let mut tick = tokio::time::interval(LOOK_EVERY);
        let deadline = Instant::now() + AGENT_DEADLINE;
        let mut held: Option<(Verdict, Instant)> = None;
        loop {
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(Event::Output(bytes)) => { parser.process(&bytes); continue; }
                    // The last screen is the program's final word.
                    Some(Event::Exit(_)) | None => {
                        let screen = parser.screen().contents();
                        return (classify(&screen), screen);
                    }
                },
                _ = tick.tick() => {}
            }
            let screen = parser.screen().contents();
            let verdict = classify(&screen);
            match &held {
                // A blank or half-drawn screen is no answer yet.
                Some((v, since)) if *v == verdict && verdict != Verdict::Unknown => {
                    if since.elapsed() >= STABLE_FOR {
                        return (verdict, screen);
                    }
                }
                Some((v, _)) if *v == verdict => {}
                _ => held = Some((verdict.clone(), Instant::now())),
            }
            if Instant::now() > deadline {
                return (verdict, screen);
            }
        }
    }

    /// All the output until the program exits, and its status.
    pub async fn until_exit(&mut self) -> (String, ExitStatus) {
        let mut output = Vec::new();
        let waited = tokio::time::timeout(common::DEADLINE, async {
            loop {
                match self.events.recv().await {
                    Some(Event::Output(bytes)) => output.extend_from_slice(&bytes),
                    Some(Event::Exit(status)) => return status,
                    None => panic!("closed before the exit"),
                }
            }
        });
        let status = waited
            .await
            .unwrap_or_else(|_| panic!("no exit; output: {}", String::from_utf8_lossy(&output)));
        (String::from_utf8_lossy(&output).into_owned(), status)
    }

    /// Ends the session (see the `Drop`).
    pub fn end(self) {}
}

/// Ends the session as a machine stop would (SIGTERM: the program is hung up), then removes
/// what the agent left running in the background under this HOME; on a failed test too.
impl Drop for AgentSession {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.runtime.pid());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        self.runtime.wait_exit(Duration::from_secs(15));
        kill_processes_using(self.home.path());
    }
}

async fn read_events(mut client: Client, tx: mpsc::UnboundedSender<Event>) {
    let mut sent = 0;
    while let Ok(true) = client.step().await {
        if client.output.len() > sent {
            let _ = tx.send(Event::Output(client.output[sent..].to_vec()));
            sent = client.output.len();
        }
        if let Some(status) = client.exit.take() {
            let _ = tx.send(Event::Exit(status));
        }
    }
}

/// Codex starts a background app-server daemon (in its own session, so the hang-up does not
/// reach it) from the copy of itself it keeps under HOME. These are this test's processes,
/// found by the test's own HOME in their command line or environment, and ended by pid.
fn kill_processes_using(home: &Path) {
    let needle = home.as_os_str().as_encoded_bytes();
    let home_var = [b"HOME=".as_slice(), needle, b"\0"].concat();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let read = |what| std::fs::read(entry.path().join(what)).unwrap_or_default();
        let cmdline = read("cmdline");
        let environ = read("environ");
        let mentions = |hay: &[u8], n: &[u8]| hay.windows(n.len()).any(|w| w == n);
        if mentions(&cmdline, needle) || mentions(&environ, &home_var) {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}
