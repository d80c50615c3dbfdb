//! The meter's tests: recorded-style streams of each provider, read at every split.

use super::*;
use proptest::prelude::*;

/// An Anthropic stream as the Messages API sends it: cache counters in `message_start` (of
/// the writes, 300 for an hour),
/// a `ping`, content, two cumulative `message_delta`s (the second with server-tool input
/// counted again), then `message_stop`.
const ANTHROPIC: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{\"input_tokens\":1,\"cache_creation_input_tokens\":412,\"cache_creation\":{\"ephemeral_5m_input_tokens\":112,\"ephemeral_1h_input_tokens\":300},\"cache_read_input_tokens\":30433,\"output_tokens\":2}}}\n\n\
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
    cache_write_1h: 300,
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
    cache_write_1h: 0,
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
    cache_write_1h: 0,
    cache_read: 64,
    output: 7,
};

const GEMINI: &str = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"}}],\"usageMetadata\":{\"promptTokenCount\":2100,\"candidatesTokenCount\":2,\"totalTokenCount\":2102}}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}],\"role\":\"model\"},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":2100,\"cachedContentTokenCount\":2048,\"candidatesTokenCount\":9,\"thoughtsTokenCount\":31,\"totalTokenCount\":2140}}\r\n\r\n";

const GEMINI_USAGE: Usage = Usage {
    input: 52,
    cache_write: 0,
    cache_write_1h: 0,
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
        cache_write_1h: 0,
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
