//! A request's tab: opened once its estimate is held, it meters the answer as it streams and
//! settles the hold exactly once, however the answer ends (its end, an upstream error, the
//! idle timeout, the client hanging up, or no answer at all): `Drop` settles what `close` did
//! not. Settling is the settler's work (a task of the gateway's own, [`settler`]), so a drop
//! never waits on the database.

use tokio::sync::mpsc;

use super::ledger::{Charge, Hold, Ledger};
use super::usage::{Meter, Provider, Reading, Usage};

/// Where closed tabs go to be settled.
pub(super) type Settlements = mpsc::UnboundedSender<(Hold, Charge)>;

/// The tokens one byte of a stream is taken for when the provider said nothing of its output:
/// about four bytes a token of text, and SSE framing makes it a little generous.
const BYTES_PER_TOKEN: u64 = 4;
/// How many times a settle is tried, and the first pause between two (doubling): about a
/// minute in all, for a database that restarts or fails over.
const SETTLE_TRIES: u32 = 7;
const SETTLE_RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(500);

pub(super) struct Tab {
    hold: Option<Hold>,
    provider: Provider,
    model: Option<String>,
    /// The request body's size: the input's estimate when the provider reported none.
    request_bytes: u64,
    answer: Option<Answer>,
    settle: Settlements,
}

/// What is known of the answer once its head came.
struct Answer {
    request_id: String,
    outcome: Outcome,
    meter: Meter,
}

/// How an answer went, as far as its charge goes.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    /// Its status was 2xx.
    success: bool,
    /// Server-sent events, not one JSON document.
    streamed: bool,
    /// It came to its end (not cut by the upstream, the idle timeout or the client).
    whole: bool,
}

impl Tab {
    pub(super) fn open(
        hold: Hold,
        provider: Provider,
        model: Option<String>,
        request_bytes: usize,
        settle: Settlements,
    ) -> Tab {
        Tab {
            hold: Some(hold),
            provider,
            model,
            request_bytes: request_bytes as u64,
            answer: None,
            settle,
        }
    }

    /// The answer's head came: `request_id` (the upstream's, else the caller's own), whether
    /// it succeeded, and whether its body is server-sent events.
    pub(super) fn answered(&mut self, request_id: String, success: bool, streamed: bool) {
        self.answer = Some(Answer {
            request_id,
            outcome: Outcome {
                success,
                streamed,
                whole: false,
            },
            meter: Meter::new(self.provider, streamed),
        });
    }

    /// The next bytes of the answer's body.
    pub(super) fn feed(&mut self, chunk: &[u8]) {
        if let Some(answer) = &mut self.answer {
            answer.meter.feed(chunk);
        }
    }

    /// The answer ended, `whole` or cut short: settles (once).
    pub(super) fn close(&mut self, whole: bool) {
        let Some(hold) = self.hold.take() else {
            return;
        };
        let (request_id, usage, reported) = match self.answer.take() {
            Some(answer) => {
                let reading = answer.meter.read_out();
                let outcome = Outcome {
                    whole,
                    ..answer.outcome
                };
                let (usage, reported) = charged(reading, outcome, self.request_bytes);
                (answer.request_id, usage, reported)
            }
            None => (own_request_id(), Usage::default(), false),
        };
        tracing::info!(
            model = self.model.as_deref().unwrap_or("-"),
            request_id,
            input = usage.input,
            cache_write = usage.cache_write,
            cache_read = usage.cache_read,
            output = usage.output,
            reported,
            "answer ended"
        );
        let charge = Charge {
            provider: self.provider,
            model: self.model.take(),
            request_id,
            usage,
            reported,
        };
        if self.settle.send((hold, charge)).is_err() {
            tracing::error!("the settler is gone: a hold stays until the sweeper releases it");
        }
    }
}

impl Drop for Tab {
    fn drop(&mut self) {
        self.close(false);
    }
}

/// A request id of the gateway's own, for an upstream that gave none.
pub(super) fn own_request_id() -> String {
    format!("catty-{}", crate::random::hex(12))
}

/// What an answer is charged: the provider's final counters; else, for an answer cut short
/// (or a stream that never said), what it reported so far (Anthropic's `message_start`) with
/// its output at least what the bytes that came make, and its input from the request's size
/// if nothing was reported. Nothing for what the provider does not bill: a refusal (not 2xx),
/// and a whole JSON answer without usage (`count_tokens`, a model list). Whether the
/// provider's own word is charged is the second value.
fn charged(reading: Reading, outcome: Outcome, request_bytes: u64) -> (Usage, bool) {
    if !outcome.success {
        return (Usage::default(), false);
    }
    if reading.complete {
        return (reading.usage, true);
    }
    if outcome.whole && !outcome.streamed && !reading.reported {
        return (Usage::default(), false);
    }
    let mut usage = reading.usage;
    usage.output = usage.output.max(reading.bytes.div_ceil(BYTES_PER_TOKEN));
    if usage.input + usage.cache_write + usage.cache_read == 0 {
        usage.input = request_bytes.div_ceil(BYTES_PER_TOKEN);
    }
    (usage, false)
}

/// Settles closed tabs until every sender is gone (the gateway stopped and every answer ended).
/// A settle the database refuses is tried again: a lost one would leave its usage uncharged
/// and its hold in place until the sweeper's day-old rule gives it back.
pub(super) async fn settler(ledger: Ledger, mut tabs: mpsc::UnboundedReceiver<(Hold, Charge)>) {
    while let Some((hold, charge)) = tabs.recv().await {
        let mut pause = SETTLE_RETRY_FIRST;
        for attempt in 1..=SETTLE_TRIES {
            match ledger.settle(&hold, &charge).await {
                Ok(()) => break,
                Err(e) if attempt == SETTLE_TRIES => {
                    let request_id = &charge.request_id;
                    tracing::error!(request_id, "cannot settle a request, gave up: {e:#}");
                }
                Err(e) => {
                    tracing::warn!(attempt, "cannot settle a request, trying again: {e:#}");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(usage: Usage, reported: bool, complete: bool, bytes: u64) -> Reading {
        Reading {
            usage,
            reported,
            complete,
            bytes,
        }
    }

    const STREAM_WHOLE: Outcome = Outcome {
        success: true,
        streamed: true,
        whole: true,
    };
    const STREAM_CUT: Outcome = Outcome {
        whole: false,
        ..STREAM_WHOLE
    };

    const FINAL: Usage = Usage {
        input: 3,
        cache_write: 412,
        cache_write_1h: 0,
        cache_read: 30433,
        output: 95,
    };

    #[test]
    fn the_providers_final_word_is_charged_as_it_is() {
        assert_eq!(
            charged(reading(FINAL, true, true, 9000), STREAM_WHOLE, 100),
            (FINAL, true)
        );
    }

    #[test]
    fn a_cut_stream_is_charged_its_known_input_and_its_bytes() {
        let start = Usage { output: 2, ..FINAL };
        let (usage, reported) = charged(reading(start, true, false, 4000), STREAM_CUT, 100);
        assert!(!reported);
        assert_eq!(
            (usage.input, usage.cache_read, usage.output),
            (3, 30433, 1000)
        );
    }

    #[test]
    fn a_stream_cut_before_any_usage_is_never_free() {
        let (usage, reported) = charged(
            reading(Usage::default(), false, false, 10),
            STREAM_CUT,
            4001,
        );
        assert_eq!((usage.input, usage.output, reported), (1001, 3, false));
    }

    #[test]
    fn a_stream_that_ended_without_usage_is_never_free() {
        let silent = reading(Usage::default(), false, false, 400);
        let (usage, _) = charged(silent, STREAM_WHOLE, 40);
        assert_eq!((usage.input, usage.output), (10, 100));
    }

    #[test]
    fn a_refusal_or_a_whole_json_answer_without_usage_costs_nothing() {
        let error = reading(Usage::default(), false, false, 120);
        let refused = Outcome {
            success: false,
            ..STREAM_WHOLE
        };
        assert_eq!(charged(error, refused, 100), (Usage::default(), false));
        let count_tokens = Outcome {
            streamed: false,
            ..STREAM_WHOLE
        };
        assert_eq!(charged(error, count_tokens, 100), (Usage::default(), false));
        let cut_json = Outcome {
            whole: false,
            ..count_tokens
        };
        assert_ne!(charged(error, cut_json, 100).0, Usage::default());
    }

    #[tokio::test]
    async fn a_tab_settles_once_when_dropped_unclosed() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let hold = Hold {
            user: "u".into(),
            session: "s".into(),
            units: 7,
            reservation: 0,
            period: std::time::SystemTime::UNIX_EPOCH,
        };
        let mut tab = Tab::open(hold, Provider::Anthropic, Some("m".into()), 40, tx);
        tab.answered("req_1".into(), true, true);
        tab.feed(
            b"data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5}}}\n\n",
        );
        drop(tab);
        let (hold, charge) = rx.recv().await.unwrap();
        assert_eq!((hold.units, charge.request_id.as_str()), (7, "req_1"));
        assert_eq!(charge.usage.input, 5);
        assert!(charge.usage.output > 0 && !charge.reported);
        assert!(
            rx.recv().await.is_none(),
            "settled once, and the sender is gone"
        );
    }
}
