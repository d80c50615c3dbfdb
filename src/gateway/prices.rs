//! List prices: what a request is estimated to cost before it is forwarded ([`estimate`]),
//! and what its reported usage costs ([`units`]), in micro-dollars, always rounded up. A model
//! is found by the longest name prefix in the table (`table.rs`) that ends where a part of the
//! name does; one the table lacks is priced as its provider's dearest, so no request is ever
//! under-charged for being new.

use serde::Deserialize;

use super::usage::{Provider, Usage};

mod table;

use table::{ANTHROPIC, GEMINI, Model, OPENAI, Rates};

/// The output cap of a request that names none: LiteLLM's default for its reservations.
const DEFAULT_OUTPUT_CAP: u64 = 16_384;
/// The largest output cap believed: 128k tokens, the most any listed model writes (GPT-5's
/// limit); a request asking for more cannot get more, so it is not held for more.
const MAX_OUTPUT_CAP: u64 = 128_000;
/// Bytes of a request body per token of its input, for the estimate: English text and JSON
/// average about four; three holds a little more than that.
const BODY_BYTES_PER_TOKEN: u64 = 3;

/// The most a request of `provider` with this body can cost: its input (from the body's
/// size) and its output cap (`max_tokens` or the like, else a default), at list price, for
/// `model` when the request names it outside its body (Gemini's path,
/// `/v1beta/models/gemini-2.5-pro:streamGenerateContent`), else the body's `model`.
pub(crate) fn estimate(provider: Provider, model: Option<&str>, body: &[u8]) -> i64 {
    let asked: Asked = serde_json::from_slice(body).unwrap_or_default();
    let input = (body.len() as u64).div_ceil(BODY_BYTES_PER_TOKEN);
    let cap = asked.output_cap().unwrap_or(DEFAULT_OUTPUT_CAP);
    let usage = Usage {
        input,
        output: cap.min(MAX_OUTPUT_CAP),
        ..Usage::default()
    };
    units(provider, model.or(asked.model.as_deref()), &usage)
}

/// What `usage` of `model` costs at list price.
pub(crate) fn units(provider: Provider, model: Option<&str>, usage: &Usage) -> i64 {
    let prompt = usage.input + usage.cache_write + usage.cache_read;
    let r = rates(provider, model, prompt);
    // The 1-hour writes are a part of all writes, at their own rate.
    let hour = usage.cache_write_1h.min(usage.cache_write);
    let per_million = u128::from(usage.input) * u128::from(r.input)
        + u128::from(usage.cache_write - hour) * u128::from(r.cache_write)
        + u128::from(hour) * u128::from(r.cache_write_1h)
        + u128::from(usage.cache_read) * u128::from(r.cache_read)
        + u128::from(usage.output) * u128::from(r.output);
    i64::try_from(per_million.div_ceil(1_000_000)).unwrap_or(i64::MAX)
}

/// The rates of `model` for a prompt of `prompt` tokens: by the longest prefix, else the
/// provider's dearest.
fn rates(provider: Provider, model: Option<&str>, prompt: u64) -> Rates {
    let table = match provider {
        Provider::Anthropic => ANTHROPIC,
        Provider::OpenAi => OPENAI,
        Provider::Gemini => GEMINI,
    };
    // Gemini's names may come as `models/gemini-2.5-pro`.
    let name = model.map(|m| m.trim_start_matches("models/").to_ascii_lowercase());
    let found = name.as_deref().and_then(|name| {
        table
            .iter()
            .filter(|m| names(m.prefix, name))
            .max_by_key(|m| m.prefix.len())
    });
    match found {
        Some(m) => match m.long {
            Some((above, long)) if prompt > above => long,
            _ => m.rates,
        },
        None => dearest(table),
    }
}

/// Whether `prefix` names `name`: all of it, or a first part of it up to a `-` (a date, a
/// variant). So `claude-fable-5` names `claude-fable-5-20260101` where `claude-fable-5-2`
/// does not, and `gpt-5` does not name `gpt-5.9`.
fn names(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '@', ':']))
}

/// The highest of each rate in `table`: what an unknown model is charged.
fn dearest(table: &[Model]) -> Rates {
    let all = table
        .iter()
        .flat_map(|m| [Some(m.rates), m.long.map(|(_, r)| r)])
        .flatten();
    all.fold(Rates::default(), |a, r| Rates {
        input: a.input.max(r.input),
        cache_write: a.cache_write.max(r.cache_write),
        cache_write_1h: a.cache_write_1h.max(r.cache_write_1h),
        cache_read: a.cache_read.max(r.cache_read),
        output: a.output.max(r.output),
    })
}

/// What a request body says of its model and output cap, as far as the estimate reads it.
#[derive(Debug, Default, Deserialize)]
struct Asked {
    model: Option<String>,
    /// Anthropic's Messages, OpenAI's Chat Completions (older).
    max_tokens: Option<u64>,
    /// OpenAI's Responses.
    max_output_tokens: Option<u64>,
    /// OpenAI's Chat Completions.
    max_completion_tokens: Option<u64>,
    #[serde(rename = "generationConfig")]
    generation_config: Option<GenerationConfig>,
}

#[derive(Debug, Default, Deserialize)]
struct GenerationConfig {
    #[serde(rename = "maxOutputTokens")]
    max_output_tokens: Option<u64>,
}

impl Asked {
    fn output_cap(&self) -> Option<u64> {
        let gemini = self.generation_config.as_ref();
        (self.max_tokens)
            .or(self.max_output_tokens)
            .or(self.max_completion_tokens)
            .or(gemini.and_then(|g| g.max_output_tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, cache_write: u64, cache_read: u64, output: u64) -> Usage {
        Usage {
            input,
            cache_write,
            cache_write_1h: 0,
            cache_read,
            output,
        }
    }

    #[test]
    fn claude_caches_at_a_quarter_more_and_a_tenth_of_input() {
        // Sonnet 4.5 ($3 in, $15 out): 3×3 + 412×3.75 + 30,433×0.3 + 95×15 = 12,108.9.
        let cost = units(
            Provider::Anthropic,
            Some("claude-sonnet-4-5-20250929"),
            &usage(3, 412, 30_433, 95),
        );
        assert_eq!(cost, 12_109);
    }

    #[test]
    fn claude_s_hour_long_cache_writes_cost_twice_the_input() {
        // The same, with 300 of the 412 writes for an hour: 112×3.75 + 300×6 in place of
        // 412×3.75, so 12,108.9 − 1,125 + 1,800 = 12,783.9.
        let cost = units(
            Provider::Anthropic,
            Some("claude-sonnet-4-5-20250929"),
            &Usage {
                cache_write_1h: 300,
                ..usage(3, 412, 30_433, 95)
            },
        );
        assert_eq!(cost, 12_784);
    }

    #[test]
    fn openai_cached_input_is_at_its_cached_rate() {
        // gpt-5 ($1.25, cached $0.125, out $10): 904×1.25 + 4,096×0.125 + 300×10.
        let cost = units(
            Provider::OpenAi,
            Some("gpt-5-codex"),
            &usage(904, 0, 4096, 300),
        );
        assert_eq!(cost, 1130 + 512 + 3000);
        // gpt-5-mini is not gpt-5: the longest prefix wins ($0.25 in, $2 out).
        let mini = units(
            Provider::OpenAi,
            Some("gpt-5-mini"),
            &usage(1000, 0, 0, 1000),
        );
        assert_eq!(mini, 250 + 2000);
    }

    #[test]
    fn a_long_gemini_prompt_is_at_the_long_rates() {
        // Gemini 2.5 Pro: $1.25/$10 up to 200k prompt tokens, $2.50/$15 past them.
        let short = units(
            Provider::Gemini,
            Some("gemini-2.5-pro"),
            &usage(100_000, 0, 0, 1000),
        );
        assert_eq!(short, 125_000 + 10_000);
        let long = units(
            Provider::Gemini,
            Some("models/gemini-2.5-pro"),
            &usage(150_000, 0, 100_000, 1000),
        );
        assert_eq!(long, 375_000 + 25_000 + 15_000);
    }

    #[test]
    fn an_unknown_model_costs_its_providers_dearest() {
        // Claude Opus 4.1's $15/$75 is Anthropic's dearest.
        let cost = units(
            Provider::Anthropic,
            Some("claude-mystery-9"),
            &usage(1000, 0, 0, 1000),
        );
        assert_eq!(cost, 15_000 + 75_000);
        assert_eq!(
            units(Provider::Anthropic, None, &usage(1000, 0, 0, 1000)),
            cost
        );
        // A newer Opus 4.x than the table knows is priced as Opus 4, not as 4.5.
        let newer = units(
            Provider::Anthropic,
            Some("claude-opus-4-9"),
            &usage(1000, 0, 0, 0),
        );
        assert_eq!(newer, 15_000);
        // GPT-5.5 Pro's $30/$180 is OpenAI's.
        let openai = units(Provider::OpenAi, Some("gpt-7"), &usage(1000, 0, 0, 1000));
        assert_eq!(openai, 30_000 + 180_000);
        assert_eq!(
            units(Provider::OpenAi, Some("gpt-5.9"), &usage(1000, 0, 0, 1000)),
            openai
        );
    }

    #[test]
    fn a_prefix_names_a_model_only_up_to_a_dash() {
        let one = usage(1000, 0, 0, 1000);
        // Fable 5 ($10/$50) dated, not Fable 5.2 ($8/$40).
        let fable = units(Provider::Anthropic, Some("claude-fable-5-20260101"), &one);
        assert_eq!(fable, 10_000 + 50_000);
        let fable_2 = units(Provider::Anthropic, Some("claude-fable-5-2-20261101"), &one);
        assert_eq!(fable_2, 8_000 + 40_000);
        // Opus 5.5's cache hits are 0.05× input ($0.20), not 0.1×.
        let hits = units(
            Provider::Anthropic,
            Some("claude-opus-5-5"),
            &usage(0, 0, 1000, 0),
        );
        assert_eq!(hits, 200);
    }

    #[test]
    fn haiku_5_5_is_five_times_dearer_past_100k_prompt_tokens() {
        // Up to 100k: $0.10 in, $0.01 hits, $0.50 out; past it $0.50, $0.05, $2.50.
        let short = units(
            Provider::Anthropic,
            Some("claude-haiku-5-5"),
            &usage(10_000, 0, 90_000, 1000),
        );
        assert_eq!(short, 1000 + 900 + 500);
        let long = units(
            Provider::Anthropic,
            Some("claude-haiku-5-5"),
            &usage(10_001, 0, 90_000, 1000),
        );
        assert_eq!(long, 5001 + 4500 + 2500);
    }

    #[test]
    fn a_fraction_of_a_micro_dollar_is_charged_as_one() {
        // Claude 3 Haiku's input is $0.25 a million: a quarter of a micro-dollar a token.
        let one = units(
            Provider::Anthropic,
            Some("claude-3-haiku-20240307"),
            &usage(1, 0, 0, 0),
        );
        assert_eq!(one, 1);
        let four = units(
            Provider::Anthropic,
            Some("claude-3-haiku"),
            &usage(4, 0, 0, 0),
        );
        assert_eq!(four, 1);
        assert_eq!(units(Provider::OpenAi, Some("gpt-5"), &Usage::default()), 0);
    }

    #[test]
    fn the_estimate_is_the_body_over_three_and_the_output_cap() {
        let pad = "x".repeat(248);
        let body = format!(r#"{{"model":"claude-haiku-4-5","max_tokens":100,"x":"{pad}"}}"#);
        assert_eq!(body.len(), 300);
        // Haiku 4.5 ($1 in, $5 out): 100 input tokens + 100 output tokens.
        assert_eq!(
            estimate(Provider::Anthropic, None, body.as_bytes()),
            100 + 500
        );
    }

    #[test]
    fn the_output_cap_is_read_where_each_provider_puts_it_and_capped() {
        // 46 bytes: 16 tokens at $2; the 200k asked is held as 128k at $8.
        let openai = br#"{"model":"gpt-4.1","max_output_tokens":200000}"#;
        assert_eq!(estimate(Provider::OpenAi, None, openai), 32 + 1_024_000);
        let chat = br#"{"model":"gpt-4.1","max_completion_tokens":10}"#;
        assert_eq!(estimate(Provider::OpenAi, None, chat), 16 * 2 + 10 * 8);
        // 43 bytes, no model (it is in Gemini's path): 15 tokens at the dearest $4, 10 at $18.
        let gemini = br#"{"generationConfig":{"maxOutputTokens":10}}"#;
        assert_eq!(estimate(Provider::Gemini, None, gemini), 60 + 180);
        // Named by the path: Gemini 2.5 Flash, 15 × $0.30 + 10 × $2.50 = 29.5.
        let flash = estimate(Provider::Gemini, Some("gemini-2.5-flash"), gemini);
        assert_eq!(flash, 30);
    }

    #[test]
    fn a_body_that_is_not_json_gets_the_default_cap_at_the_dearest_price() {
        // 30 bytes: 10 tokens at $15, and 16,384 output tokens at $75.
        let body = [b'?'; 30];
        assert_eq!(estimate(Provider::Anthropic, None, &body), 150 + 1_228_800);
    }
}
