//! `catty logs`: the session's output transcript from its runtime (`GET /transcript`), as
//! plain text (escape sequences stripped) or raw bytes, whole, from an offset or its last
//! lines, and followed until the program exits with `-f`.

use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;

use super::strip::Stripper;
use super::sync::remote::{Remote, Reply};
use crate::protocol::transcript::{
    END_HEADER, ENDED_HEADER, EXIT_HEADER, START_HEADER, TRANSCRIPT_PATH, TRANSCRIPT_WAIT,
    TranscriptParams,
};

/// The longest line `--tail` keeps whole; of a longer one, its end. So the memory a tail
/// takes is bounded by the lines asked for, whatever the runtime sends.
const TAIL_LINE_MAX_BYTES: usize = 1024 * 1024;

/// What `catty logs` was asked for.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    pub follow: bool,
    /// The first output byte wanted (default: the oldest kept).
    pub since: Option<u64>,
    /// Only the last this many lines (of the text printed, stripped or raw).
    pub tail: Option<usize>,
    /// The bytes as the program wrote them, escape sequences included.
    pub raw: bool,
}

/// Prints the transcript of the runtime at `connect_url`.
pub(super) async fn print(
    connect_url: &str,
    token: &str,
    headers: &std::collections::BTreeMap<String, String>,
    options: &LogsOptions,
) -> anyhow::Result<()> {
    let remote = Remote::new(connect_url, token, headers)?;
    let mut out = Printer::new(options);
    let mut since = options.since.unwrap_or(0);
    let mut first = true;
    loop {
        let params = TranscriptParams {
            since,
            wait: options.follow && !first,
        };
        let endpoint = format!("{TRANSCRIPT_PATH}?{}", params.to_query());
        let wait = TRANSCRIPT_WAIT + Duration::from_secs(10);
        let mut reply = remote.get(&endpoint, wait).await?;
        let start = number(&reply, START_HEADER)?;
        if first && options.since.is_some_and(|since| since < start) {
            say!("catty: output before byte {start} is no longer kept");
        }
        while let Some(chunk) = reply.chunk().await? {
            out.write(&chunk)?;
        }
        since = number(&reply, END_HEADER)?;
        let over = reply.header(EXIT_HEADER).is_some() || reply.header(ENDED_HEADER).is_some();
        // The tail is of what there was when asked; what follows is printed as it comes.
        out.flush_tail()?;
        first = false;
        if !options.follow || over {
            return Ok(());
        }
    }
}

fn number(reply: &Reply<'_>, name: &str) -> anyhow::Result<u64> {
    let value = reply.header(name).and_then(|v| v.parse().ok());
    value.with_context(|| format!("the runtime's answer has no {name}"))
}

/// Stdout, through the stripper unless raw, and through the last-lines window while a tail
/// is being gathered.
struct Printer {
    stripper: Option<Stripper>,
    tail: Option<Tail>,
    text: Vec<u8>,
}

/// The last `lines` lines seen: complete lines, then the line being written.
struct Tail {
    lines: usize,
    done: VecDeque<Vec<u8>>,
    open: Vec<u8>,
}

impl Printer {
    fn new(options: &LogsOptions) -> Printer {
        Printer {
            stripper: (!options.raw).then(Stripper::default),
            tail: options.tail.map(|lines| Tail {
                lines,
                done: VecDeque::new(),
                open: Vec::new(),
            }),
            text: Vec::new(),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let text = match &mut self.stripper {
            Some(stripper) => {
                self.text.clear();
                stripper.feed(bytes, &mut self.text);
                &self.text[..]
            }
            None => bytes,
        };
        match &mut self.tail {
            Some(tail) => {
                tail.push(text);
                Ok(())
            }
            None => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(text)?;
                stdout.flush()
            }
        }
    }

    /// Prints the gathered tail, once; from then on bytes go straight out.
    fn flush_tail(&mut self) -> std::io::Result<()> {
        let Some(tail) = self.tail.take() else {
            return Ok(());
        };
        let mut stdout = std::io::stdout().lock();
        for line in tail.done.iter().chain(std::iter::once(&tail.open)) {
            stdout.write_all(line)?;
        }
        stdout.flush()
    }
}

impl Tail {
    /// Keeps only the end of an overlong line (it grows by at most a chunk before this).
    fn cut_open(&mut self) {
        if self.open.len() > TAIL_LINE_MAX_BYTES {
            self.open.drain(..self.open.len() - TAIL_LINE_MAX_BYTES);
        }
    }

    fn push(&mut self, mut text: &[u8]) {
        while let Some(at) = text.iter().position(|&b| b == b'\n') {
            self.open.extend_from_slice(&text[..=at]);
            self.cut_open();
            self.done.push_back(std::mem::take(&mut self.open));
            text = &text[at + 1..];
        }
        self.open.extend_from_slice(text);
        self.cut_open();
        // A line still being written counts as one.
        let keep = self
            .lines
            .saturating_sub(usize::from(!self.open.is_empty()));
        while self.done.len() > keep {
            self.done.pop_front();
        }
        if self.lines == 0 {
            self.open.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(lines: usize, chunks: &[&str]) -> String {
        let mut t = Tail {
            lines,
            done: VecDeque::new(),
            open: Vec::new(),
        };
        for chunk in chunks {
            t.push(chunk.as_bytes());
        }
        let all: Vec<u8> = t.done.into_iter().flatten().chain(t.open).collect();
        String::from_utf8(all).unwrap()
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail(2, &["a\nb\n", "c\nd\n"]), "c\nd\n");
        assert_eq!(tail(2, &["a\nb\nc", "d"]), "b\ncd");
        assert_eq!(tail(5, &["a\nb\n"]), "a\nb\n");
        assert_eq!(tail(0, &["a\nb"]), "");
    }

    #[test]
    fn an_overlong_line_keeps_its_end() {
        let long = "x".repeat(TAIL_LINE_MAX_BYTES + 10);
        let kept = tail(1, &[&long, "yz"]);
        assert_eq!(kept.len(), TAIL_LINE_MAX_BYTES);
        assert!(kept.ends_with("xyz"));
        let kept = tail(1, &[&format!("{long}\n")]);
        assert_eq!(kept.len(), TAIL_LINE_MAX_BYTES);
        assert!(kept.ends_with("x\n"));
    }
}
