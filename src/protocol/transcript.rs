//! `GET /transcript`: the session's output from an offset, over plain HTTP (what `catty
//! logs` reads). The prose is in the module above, "The transcript".

use std::time::Duration;

pub const TRANSCRIPT_PATH: &str = "/transcript";

/// The offset of the answer's first byte: `since`, or the oldest byte kept when later.
pub const START_HEADER: &str = "x-catty-start";
/// One past the answer's last byte: where the next request's `since` goes.
pub const END_HEADER: &str = "x-catty-end";
/// Present once the program has exited and the answer reaches the end of its output: the
/// exit code (128+N for a signal). Nothing follows.
pub const EXIT_HEADER: &str = "x-catty-exit";
/// Present when the session is being ended from outside (TTL, shutdown) before the program
/// exited: nothing more will come either.
pub const ENDED_HEADER: &str = "x-catty-ended";

/// With `wait`, how long an answer waits for output past `since` before it answers empty:
/// under the clients' idle timeout, so a quiet program never looks like a dead link.
pub const TRANSCRIPT_WAIT: Duration = Duration::from_secs(20);

/// The query of `GET /transcript`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TranscriptParams {
    /// The first offset wanted; older than the oldest kept means from the oldest kept.
    pub since: u64,
    /// Follow: when nothing past `since` exists yet, wait for it (at most
    /// [`TRANSCRIPT_WAIT`]) instead of answering empty.
    pub wait: bool,
}

impl TranscriptParams {
    pub fn parse(query: &str) -> Result<TranscriptParams, String> {
        let mut params = TranscriptParams::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=').unwrap_or((pair, "")) {
                ("since", n) => {
                    params.since = n
                        .parse()
                        .map_err(|_| format!("since must be a byte offset, got {n:?}"))?;
                }
                ("wait", "1") => params.wait = true,
                ("wait", "0") => params.wait = false,
                (name, _) => return Err(format!("unknown or bad query parameter {name:?}")),
            }
        }
        Ok(params)
    }

    pub fn to_query(&self) -> String {
        match self.wait {
            true => format!("since={}&wait=1", self.since),
            false => format!("since={}", self.since),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_the_unknown() {
        let p = TranscriptParams {
            since: 42,
            wait: true,
        };
        assert_eq!(p.to_query(), "since=42&wait=1");
        assert_eq!(TranscriptParams::parse(&p.to_query()), Ok(p));
        assert_eq!(TranscriptParams::parse(""), Ok(TranscriptParams::default()));
        assert!(TranscriptParams::parse("since=-1").is_err());
        assert!(TranscriptParams::parse("tail=3").is_err());
        assert!(TranscriptParams::parse("wait=yes").is_err());
    }
}
