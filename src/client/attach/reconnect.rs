//! Getting a connection back: the reconnect loop with its backoff and give-up, the dial
//! with its deadline, and the status line kept up to date while the link is down.

use std::time::{Duration, Instant};

use super::{Attach, Attachable, Ended, Outcome, TICK, Target, Typed, status};
use crate::client::tty;
use crate::net::{self, ClientSocket, RuntimeUrl};
use crate::protocol::{ConnectParams, DEAD_LINK};

/// Reconnecting stops after this long without a working link.
const GIVE_UP_AFTER: Duration = Duration::from_secs(600);
/// A link that worked this long was good: the first attempt after losing it is immediate.
const GOOD_LINK: Duration = Duration::from_secs(1);
/// Waits between attempts after that, doubling up to the maximum.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Attach {
    /// Connects and reconnects until the attach ends.
    pub(super) async fn run(
        &mut self,
        runtime: &RuntimeUrl,
        target: &Target,
        live: &impl Attachable,
    ) -> Outcome {
        // Shown after the first picture of the screen, which would paint over a line printed
        // before the attach.
        self.watch_hint = self.watch.then(|| {
            let label = &target.label;
            format!("catty: watching {label} read-only; Enter ~ . leaves")
        });
        let mut lost_since: Option<Instant> = None;
        let mut backoff = Duration::ZERO;
        loop {
            let why = match self.connect(runtime, target).await {
                Ok(socket) => {
                    lost_since = None;
                    let up = Instant::now();
                    let ended = self.serve(socket).await;
                    if up.elapsed() >= GOOD_LINK {
                        backoff = Duration::ZERO;
                    }
                    match ended {
                        Ended::Done(outcome) => return outcome,
                        Ended::Lost(why) => why,
                        Ended::Repaint(skipped) => {
                            self.next_offset = None;
                            let notice = status::skipped_notice(skipped, &target.label);
                            let _ = self.output.note(&notice);
                            continue;
                        }
                    }
                }
                Err(e) => e.to_string(),
            };
            let since = *lost_since.get_or_insert_with(Instant::now);
            if let Err(gone) = live.check().await {
                return Outcome::Gone(self.last_error.take().unwrap_or(gone));
            }
            if since.elapsed() > GIVE_UP_AFTER {
                return Outcome::Gone(format!(
                    "no connection for {} minutes ({why})",
                    GIVE_UP_AFTER.as_secs() / 60
                ));
            }
            if let Some(outcome) = self.wait(backoff).await {
                return outcome;
            }
            backoff = (backoff * 2).clamp(BACKOFF_FIRST, BACKOFF_MAX);
        }
    }

    fn show_reconnecting(&mut self) {
        self.status.update(self.last_contact.elapsed(), true);
    }

    async fn connect(
        &mut self,
        runtime: &RuntimeUrl,
        target: &Target,
    ) -> Result<ClientSocket, net::DialError> {
        let params = ConnectParams {
            since: self.next_offset,
            size: (!self.watch).then(tty::session_size),
            watch: self.watch,
            client: (!self.watch).then(|| self.client_id.clone()),
        };
        let auth = format!("Bearer {}", target.token);
        let mut headers: Vec<(&str, &str)> = vec![("authorization", &auth)];
        headers.extend(target.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let connecting = net::dial_runtime(runtime, &params, &headers);
        tokio::pin!(connecting);
        let deadline = tokio::time::sleep(DEAD_LINK);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                dialed = &mut connecting => return dialed,
                () = &mut deadline => {
                    let after = format!("no answer within {} s", DEAD_LINK.as_secs());
                    let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, after);
                    return Err(net::DialError::Connect(timed_out));
                }
                _ = tick.tick() => self.show_reconnecting(),
            }
        }
    }

    /// Waits out a backoff while still honouring escapes and keeping what is typed.
    async fn wait(&mut self, backoff: Duration) -> Option<Outcome> {
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                () = &mut sleep => return None,
                _ = tick.tick() => self.show_reconnecting(),
                input = self.stdin.recv(), if self.stdin_open => match self.typed(input) {
                    // Bytes typed before `~.` stay unsent: there is no link to send them on.
                    Typed::Detach(_) => return Some(Outcome::Detached),
                    Typed::Send(bytes) => self.unacked.push(&bytes),
                    Typed::Nothing => {}
                },
                _ = self.term.recv() => return Some(Outcome::Terminated),
                _ = self.hup.recv() => return Some(Outcome::Terminated),
            }
        }
    }
}
