//! What a provider's answer says it used, read on the side of the answer as it streams
//! (`Meter::feed`), whatever its chunks: the counters each provider bills by, raw.
//!
//! - Anthropic: `message_start`'s `message.usage` (input, both cache counters, the first
//!   output), then each `message_delta`'s `usage`, cumulative: the last value of each counter
//!   wins, never a sum. Input, cache writes and cache reads are separate counters (input is
//!   the uncached rest).
//! - OpenAI: the Responses API's `response.completed` (`response.usage`), or Chat Completions'
//!   last chunk with a `usage` (asked for by `stream_options.include_usage`). Cached tokens
//!   are a part of `input_tokens` there: they are moved to `cache_read`.
//! - Gemini: every chunk's `usageMetadata`, cumulative: the last wins. Cached content is a
//!   part of the prompt count; thoughts are billed as output.
//!
//! A JSON answer (not streamed) is the same object once; it is kept up to [`JSON_MAX_BYTES`]
//! and read at the end.

use serde_json::Value;

use super::sse::{Event, SseReader};

/// The longest JSON answer read for its usage.
const JSON_MAX_BYTES: usize = 8 * 1024 * 1024;

/// Whose answer it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Anthropic,
    OpenAi,
    Gemini,
}

/// The counters of one request, in tokens.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Input not read from a cache nor written to one.
    pub input: u64,
    /// Input written to the cache (Anthropic).
    pub cache_write: u64,
    /// Input read from the cache.
    pub cache_read: u64,
    /// Output, thinking included.
    pub output: u64,
}

/// Reads usage off one answer as it passes.
pub struct Meter {
    provider: Provider,
    body: Body,
    usage: Usage,
    /// A usage report was seen (else the caller estimates).
    reported: bool,
    /// The provider's last word on usage was seen (Anthropic's `stop_reason`, OpenAI's
    /// completion, Gemini's `finishReason`, a whole JSON answer): the counters are final, not
    /// the partial ones of a stream cut short.
    complete: bool,
    /// The answer's bytes so far: an estimate of the output of a stream cut short.
    bytes: u64,
}

enum Body {
    Sse(SseReader),
    Json(Vec<u8>),
}

impl Meter {
    /// A meter for an answer of `provider`; `streamed` when it is server-sent events
    /// (`Content-Type: text/event-stream`), else JSON.
    pub fn new(provider: Provider, streamed: bool) -> Meter {
        Meter {
            provider,
            body: match streamed {
                true => Body::Sse(SseReader::default()),
                false => Body::Json(Vec::new()),
            },
            usage: Usage::default(),
            reported: false,
            complete: false,
            bytes: 0,
        }
    }

    /// Reads the next bytes of the answer.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        let provider = self.provider;
        let mut seen = Seen {
            usage: &mut self.usage,
            reported: &mut self.reported,
            complete: &mut self.complete,
        };
        match &mut self.body {
            Body::Sse(reader) => reader.feed(chunk, &mut |e| read_event(provider, &e, &mut seen)),
            Body::Json(json) if json.len() + chunk.len() <= JSON_MAX_BYTES => {
                json.extend_from_slice(chunk)
            }
            Body::Json(json) => *json = Vec::new(),
        }
    }

    /// The answer ended (or was cut): its usage, if it reported any, and how many bytes came.
    pub fn finish(self) -> (Option<Usage>, u64) {
        let reading = self.read_out();
        (reading.reported.then_some(reading.usage), reading.bytes)
    }

    /// The answer ended (or was cut): everything the meter knows, partial counters included.
    pub fn read_out(mut self) -> Reading {
        let provider = self.provider;
        let mut seen = Seen {
            usage: &mut self.usage,
            reported: &mut self.reported,
            complete: &mut self.complete,
        };
        match &mut self.body {
            Body::Sse(reader) => reader.finish(&mut |e| read_event(provider, &e, &mut seen)),
            Body::Json(json) => {
                if let Ok(answer) = serde_json::from_slice::<Value>(json) {
                    read_json(provider, &answer, &mut seen);
                    // A whole answer's usage is its final word.
                    *seen.complete = *seen.reported;
                }
            }
        }
        Reading {
            usage: self.usage,
            reported: self.reported,
            complete: self.complete,
            bytes: self.bytes,
        }
    }
}

/// What a meter read off a whole (or cut) answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// The counters as last reported (partial ones when not `complete`).
    pub usage: Usage,
    /// Some usage was reported (Anthropic's `message_start` is enough).
    pub reported: bool,
    /// The usage is the provider's final word.
    pub complete: bool,
    /// The answer's bytes.
    pub bytes: u64,
}

/// Where the readers write what they find.
struct Seen<'a> {
    usage: &'a mut Usage,
    reported: &'a mut bool,
    complete: &'a mut bool,
}

fn read_event(provider: Provider, event: &Event, seen: &mut Seen<'_>) {
    // Most events are content: only those that may carry usage are parsed.
    let carries = match provider {
        Provider::Gemini => event.data.contains("usageMetadata"),
        _ => event.data.contains("usage"),
    };
    if !carries {
        return;
    }
    if let Ok(json) = serde_json::from_str::<Value>(&event.data) {
        read_json(provider, &json, seen);
    }
}

/// Reads one event's (or a whole answer's) JSON.
fn read_json(provider: Provider, json: &Value, seen: &mut Seen<'_>) {
    let (usage, reported) = (&mut *seen.usage, &mut *seen.reported);
    match provider {
        Provider::Anthropic => {
            // `message_start` nests it; `message_delta` and a whole message carry it.
            let found = json["message"]["usage"]
                .as_object()
                .or(json["usage"].as_object());
            if let Some(u) = found {
                let set = |field: &str, to: &mut u64| {
                    if let Some(n) = u.get(field).and_then(Value::as_u64) {
                        *to = n;
                    }
                };
                set("input_tokens", &mut usage.input);
                set("cache_creation_input_tokens", &mut usage.cache_write);
                set("cache_read_input_tokens", &mut usage.cache_read);
                set("output_tokens", &mut usage.output);
                *reported = true;
                // The last `message_delta` says why the message stopped.
                if json["delta"]["stop_reason"].is_string() {
                    *seen.complete = true;
                }
            }
        }
        Provider::OpenAi => {
            // Responses: `response.completed` (or a whole response); Chat: the usage chunk.
            let u = match json["type"].as_str() {
                Some("response.completed") => &json["response"]["usage"],
                _ => &json["usage"],
            };
            let Some(input) = u["input_tokens"].as_u64().or(u["prompt_tokens"].as_u64()) else {
                return;
            };
            let details = u
                .get("input_tokens_details")
                .or(u.get("prompt_tokens_details"));
            let cached = details
                .and_then(|d| d["cached_tokens"].as_u64())
                .unwrap_or(0);
            let output = u["output_tokens"]
                .as_u64()
                .or(u["completion_tokens"].as_u64());
            *usage = Usage {
                input: input.saturating_sub(cached),
                cache_write: 0,
                cache_read: cached.min(input),
                output: output.unwrap_or(0),
            };
            // Both are sent once, at the end.
            *reported = true;
            *seen.complete = true;
        }
        Provider::Gemini => {
            let u = &json["usageMetadata"];
            let Some(prompt) = u["promptTokenCount"].as_u64() else {
                return;
            };
            let cached = u["cachedContentTokenCount"]
                .as_u64()
                .unwrap_or(0)
                .min(prompt);
            let count = |field: &str| u[field].as_u64().unwrap_or(0);
            *usage = Usage {
                input: prompt - cached,
                cache_write: 0,
                cache_read: cached,
                output: count("candidatesTokenCount") + count("thoughtsTokenCount"),
            };
            *reported = true;
            let finished = json["candidates"]
                .as_array()
                .is_some_and(|candidates| candidates.iter().any(|c| c["finishReason"].is_string()));
            if finished {
                *seen.complete = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An Anthropic stream as the Messages API sends it: cache counters in `message_start`,
    /// a `ping`, content, two cumulative `message_delta`s (the second with server-tool input
    /// counted again), then `message_stop`.
    const ANTHROPIC: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{\"input_tokens\":1,\"cache_creation_input_tokens\":412,\"cache_read_input_tokens\":30433,\"output_tokens\":2}}}\n\n\
event: ping\ndata: {\"type\": \"ping\"}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"The usage of \\\"usage\\\" here is text\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null},\"usage\":{\"output_tokens\":40}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"input_tokens\":3,\"cache_read_input_tokens\":30433,\"output_tokens\":95}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    const ANTHROPIC_USAGE: Usage = Usage {
        input: 3,
        cache_write: 412,
        cache_read: 30433,
        output: 95,
    };

    /// The same stream cut by an `error` event after the first delta.
    fn anthropic_error() -> String {
        let cut = ANTHROPIC.find("event: message_delta").unwrap();
        let second = ANTHROPIC[cut + 1..].find("event: message_delta").unwrap() + cut + 1;
        format!(
            "{}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n",
            &ANTHROPIC[..second]
        )
    }

    const RESPONSES: &str = "event: response.created\n\
data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"usage\":null}}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n\
event: response.completed\n\
data: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":5000,\"input_tokens_details\":{\"cached_tokens\":4096},\"output_tokens\":300,\"output_tokens_details\":{\"reasoning_tokens\":128},\"total_tokens\":5300}}}\n\n";

    const RESPONSES_USAGE: Usage = Usage {
        input: 904,
        cache_write: 0,
        cache_read: 4096,
        output: 300,
    };

    const CHAT: &str = "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":7,\"total_tokens\":127,\"prompt_tokens_details\":{\"cached_tokens\":64}}}\n\n\
data: [DONE]\n\n";

    const CHAT_USAGE: Usage = Usage {
        input: 56,
        cache_write: 0,
        cache_read: 64,
        output: 7,
    };

    const GEMINI: &str = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"}}],\"usageMetadata\":{\"promptTokenCount\":2100,\"candidatesTokenCount\":2,\"totalTokenCount\":2102}}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}],\"role\":\"model\"},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":2100,\"cachedContentTokenCount\":2048,\"candidatesTokenCount\":9,\"thoughtsTokenCount\":31,\"totalTokenCount\":2140}}\r\n\r\n";

    const GEMINI_USAGE: Usage = Usage {
        input: 52,
        cache_write: 0,
        cache_read: 2048,
        output: 40,
    };

    fn metered(provider: Provider, chunks: &[&[u8]]) -> Option<Usage> {
        let mut meter = Meter::new(provider, true);
        for chunk in chunks {
            meter.feed(chunk);
        }
        meter.finish().0
    }

    /// Fed whole, byte by byte, and split in two at every byte boundary, `stream` reads as
    /// `usage`; also with `data:` written without its space.
    fn every_split(provider: Provider, stream: &str, usage: Usage) {
        let tight = stream.replace("data: ", "data:");
        for stream in [stream, tight.as_str()] {
            let bytes = stream.as_bytes();
            assert_eq!(metered(provider, &[bytes]), Some(usage));
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(metered(provider, &singles), Some(usage));
            for at in 0..=bytes.len() {
                let (a, b) = bytes.split_at(at);
                assert_eq!(metered(provider, &[a, b]), Some(usage), "split at {at}");
            }
        }
    }

    #[test]
    fn anthropic_at_every_split() {
        every_split(Provider::Anthropic, ANTHROPIC, ANTHROPIC_USAGE);
    }

    #[test]
    fn anthropic_cut_by_an_error_keeps_what_was_reported() {
        let usage = Usage {
            input: 1,
            output: 40,
            ..ANTHROPIC_USAGE
        };
        every_split(Provider::Anthropic, &anthropic_error(), usage);
    }

    #[test]
    fn anthropic_disconnected_mid_stream() {
        // Cut inside the first delta's line: what the whole lines before it said.
        let cut = ANTHROPIC.find("\"output_tokens\":40").unwrap();
        let mut meter = Meter::new(Provider::Anthropic, true);
        meter.feed(&ANTHROPIC.as_bytes()[..cut]);
        let (usage, bytes) = meter.finish();
        let usage = usage.expect("message_start was read");
        assert_eq!((usage.input, usage.cache_read, usage.output), (1, 30433, 2));
        assert_eq!(bytes, cut as u64);
    }

    #[test]
    fn only_the_providers_last_word_is_complete() {
        let read = |provider, stream: &str| {
            let mut meter = Meter::new(provider, true);
            meter.feed(stream.as_bytes());
            meter.read_out()
        };
        for (provider, stream) in [
            (Provider::Anthropic, ANTHROPIC),
            (Provider::OpenAi, RESPONSES),
            (Provider::OpenAi, CHAT),
            (Provider::Gemini, GEMINI),
        ] {
            assert!(read(provider, stream).complete, "{stream}");
        }
        // Cut by an error after a delta without a stop reason: partial counters, not final.
        let cut = read(Provider::Anthropic, &anthropic_error());
        assert!(cut.reported && !cut.complete);
        assert_eq!((cut.usage.cache_read, cut.usage.output), (30433, 40));
        // Gemini's first chunk has counters but no finish reason.
        let first = GEMINI.split("\r\n\r\n").next().unwrap();
        let partial = read(Provider::Gemini, first);
        assert!(partial.reported && !partial.complete);
    }

    #[test]
    fn openai_responses_and_chat_at_every_split() {
        every_split(Provider::OpenAi, RESPONSES, RESPONSES_USAGE);
        every_split(Provider::OpenAi, CHAT, CHAT_USAGE);
    }

    #[test]
    fn gemini_at_every_split() {
        every_split(Provider::Gemini, GEMINI, GEMINI_USAGE);
    }

    #[test]
    fn a_json_answer() {
        let body = r#"{"id":"msg_1","type":"message","usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":7,"output_tokens":3}}"#;
        let mut meter = Meter::new(Provider::Anthropic, false);
        for chunk in body.as_bytes().chunks(5) {
            meter.feed(chunk);
        }
        let expected = Usage {
            input: 10,
            cache_write: 0,
            cache_read: 7,
            output: 3,
        };
        assert_eq!(meter.finish(), (Some(expected), body.len() as u64));
    }

    #[test]
    fn no_usage_is_none_not_zero() {
        assert_eq!(
            metered(Provider::Anthropic, &[b"data: {\"type\":\"ping\"}\n\n"]),
            None
        );
        assert_eq!(
            metered(
                Provider::OpenAi,
                &[CHAT
                    .split("data: {\"id\":\"c1\",\"choices\":[]")
                    .next()
                    .unwrap()
                    .as_bytes()]
            ),
            None
        );
    }

    proptest! {
        /// Any chunking of a fixture reads the same.
        #[test]
        fn any_chunking(cuts in proptest::collection::vec(0usize..4000, 0..12)) {
            for (provider, stream, usage) in [
                (Provider::Anthropic, ANTHROPIC, ANTHROPIC_USAGE),
                (Provider::OpenAi, RESPONSES, RESPONSES_USAGE),
                (Provider::Gemini, GEMINI, GEMINI_USAGE),
            ] {
                let bytes = stream.as_bytes();
                let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
                at.sort_unstable();
                let mut chunks = Vec::new();
                let mut from = 0;
                for to in at {
                    chunks.push(&bytes[from..to]);
                    from = to;
                }
                chunks.push(&bytes[from..]);
                prop_assert_eq!(metered(provider, &chunks), Some(usage));
            }
        }

        /// Arbitrary bytes never panic the meter.
        #[test]
        fn hostile_bytes(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)) {
            for provider in [Provider::Anthropic, Provider::OpenAi, Provider::Gemini] {
                let mut meter = Meter::new(provider, true);
                for chunk in &chunks {
                    meter.feed(chunk);
                }
                let _ = meter.finish();
            }
        }
    }
}
