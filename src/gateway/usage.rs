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
    /// Of `cache_write`, what was written for an hour (Anthropic's
    /// `cache_creation.ephemeral_1h_input_tokens`).
    pub cache_write_1h: u64,
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
                // Of those, the ones written for an hour (billed at 2× input, not 1.25×).
                if let Some(n) = u
                    .get("cache_creation")
                    .and_then(|c| c.get("ephemeral_1h_input_tokens"))
                    .and_then(Value::as_u64)
                {
                    usage.cache_write_1h = n;
                }
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
                cache_write_1h: 0,
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
                cache_write_1h: 0,
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
mod tests;
