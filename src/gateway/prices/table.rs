//! The list-price table: each provider's models by name prefix, in dollars per million tokens
//! as the providers publish them (standard tier, no batch or priority rate), kept here as
//! micro-dollars per million tokens. List prices, not what any contract may discount.

/// What one million tokens cost, in micro-dollars (so `3_000_000` is $3 per million tokens,
/// or 3 micro-dollars a token).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rates {
    pub input: u64,
    /// Input written to the cache: Anthropic's 5-minute writes at 1.25× input.
    pub cache_write: u64,
    /// Input written to the cache for an hour: Anthropic's 1-hour writes at 2× input (Claude
    /// Code writes most of its cache so).
    pub cache_write_1h: u64,
    /// Input read from the cache: Anthropic's cache hits (0.1× input for most models, less
    /// for some), OpenAI's and Gemini's cached rate.
    pub cache_read: u64,
    pub output: u64,
}

/// One model family: its name prefix, its rates, and its rates for a prompt (input, cached
/// or not) longer than a number of tokens, where the provider has such a tier.
#[derive(Debug)]
pub(super) struct Model {
    pub prefix: &'static str,
    pub rates: Rates,
    pub long: Option<(u64, Rates)>,
}

/// Dollars per million tokens as micro-dollars per million tokens (rounded: `0.8 * 1e6` is
/// not exactly 800,000 in binary).
const fn usd(dollars: f64) -> u64 {
    (dollars * 1_000_000.0 + 0.5) as u64
}

/// Anthropic's rates: cache writes at 1.25× input, cache hits at `read`.
const fn claude_hits(input: f64, read: f64, output: f64) -> Rates {
    let input = usd(input);
    Rates {
        input,
        cache_write: input * 5 / 4,
        cache_write_1h: input * 2,
        cache_read: usd(read),
        output: usd(output),
    }
}

/// Anthropic's usual rates: cache hits at 0.1× input.
const fn claude(input: f64, output: f64) -> Rates {
    claude_hits(input, input / 10.0, output)
}

/// OpenAI's and Gemini's rates: nothing is billed for writing the cache.
const fn cached(input: f64, cache_read: f64, output: f64) -> Rates {
    let input = usd(input);
    Rates {
        input,
        cache_write: input,
        cache_write_1h: input,
        cache_read: usd(cache_read),
        output: usd(output),
    }
}

const fn model(prefix: &'static str, rates: Rates) -> Model {
    Model {
        prefix,
        rates,
        long: None,
    }
}

const fn tiered(prefix: &'static str, rates: Rates, above: u64, long: Rates) -> Model {
    Model {
        prefix,
        rates,
        long: Some((above, long)),
    }
}

/// Where Claude Sonnet 4.x's 1M-token context and Gemini Pro's long-prompt tier start.
const LONG: u64 = 200_000;

// docs.claude.com (platform.claude.com)/docs/en/about-claude/pricing, read for December
// 2026; Fable 5.2 and Mythos 5.2 from a price-tracking tool's note of that page (2026-12-01).
pub(super) const ANTHROPIC: &[Model] = &[
    model("claude-fable-5-2", claude_hits(8.0, 0.2, 40.0)),
    model("claude-mythos-5-2", claude_hits(8.0, 0.2, 40.0)),
    model("claude-fable-5-1", claude_hits(10.0, 0.25, 50.0)),
    model("claude-mythos-5-1", claude_hits(10.0, 0.25, 50.0)),
    model("claude-fable-5", claude(10.0, 50.0)),
    model("claude-mythos-5", claude(10.0, 50.0)),
    model("claude-opus-5-5", claude_hits(4.0, 0.2, 20.0)),
    model("claude-opus-5", claude(5.0, 25.0)),
    // Opus 4.5 to 4.8 are $5/$25; Opus 4 and 4.1, and any 4.x this table lacks, $15/$75.
    model("claude-opus-4-8", claude(5.0, 25.0)),
    model("claude-opus-4-7", claude(5.0, 25.0)),
    model("claude-opus-4-6", claude(5.0, 25.0)),
    model("claude-opus-4-5", claude(5.0, 25.0)),
    model("claude-opus-4", claude(15.0, 75.0)),
    model("claude-sonnet-5-5", claude_hits(2.0, 0.1, 10.0)),
    model("claude-sonnet-5", claude(2.0, 10.0)),
    tiered(
        "claude-sonnet-4",
        claude(3.0, 15.0),
        LONG,
        claude(6.0, 22.5),
    ),
    tiered(
        "claude-haiku-5-5",
        claude_hits(0.1, 0.01, 0.5),
        100_000,
        claude_hits(0.5, 0.05, 2.5),
    ),
    model("claude-haiku-4", claude(1.0, 5.0)),
    model("claude-3-opus", claude(15.0, 75.0)),
    model("claude-3-7-sonnet", claude(3.0, 15.0)),
    model("claude-3-5-sonnet", claude(3.0, 15.0)),
    model("claude-3-5-haiku", claude(0.8, 4.0)),
    model("claude-3-haiku", claude_hits(0.25, 0.03, 1.25)),
];

// platform.openai.com/docs/pricing (openai.com/api/pricing), as quoted by price trackers in
// 2026: the GPT-5.4 and 5.5 rows from June 2026, the Codex rows from May 2026; the older rows
// as listed at their release.
pub(super) const OPENAI: &[Model] = &[
    model("gpt-5.5-pro", cached(30.0, 30.0, 180.0)),
    model("gpt-5.5", cached(5.0, 0.5, 30.0)),
    model("gpt-5.4-pro", cached(30.0, 30.0, 180.0)),
    model("gpt-5.4-mini", cached(0.75, 0.075, 4.5)),
    model("gpt-5.4-nano", cached(0.2, 0.02, 1.25)),
    model("gpt-5.4", cached(2.5, 0.25, 15.0)),
    model("gpt-5.3-codex", cached(1.75, 0.175, 14.0)),
    model("gpt-5.2-pro", cached(21.0, 21.0, 168.0)),
    // gpt-5.2 and gpt-5.2-codex.
    model("gpt-5.2", cached(1.75, 0.175, 14.0)),
    model("gpt-5.1-codex-mini", cached(0.25, 0.025, 2.0)),
    // gpt-5.1, gpt-5.1-codex and gpt-5.1-codex-max.
    model("gpt-5.1", cached(1.25, 0.125, 10.0)),
    model("gpt-5-pro", cached(15.0, 15.0, 120.0)),
    model("gpt-5-mini", cached(0.25, 0.025, 2.0)),
    model("gpt-5-nano", cached(0.05, 0.005, 0.4)),
    // gpt-5, gpt-5-codex and gpt-5-chat-latest.
    model("gpt-5", cached(1.25, 0.125, 10.0)),
    model("gpt-4.1-mini", cached(0.4, 0.1, 1.6)),
    model("gpt-4.1-nano", cached(0.1, 0.025, 0.4)),
    model("gpt-4.1", cached(2.0, 0.5, 8.0)),
    model("gpt-4o-mini", cached(0.15, 0.075, 0.6)),
    model("gpt-4o", cached(2.5, 1.25, 10.0)),
    model("o3-pro", cached(20.0, 20.0, 80.0)),
    model("o3-mini", cached(1.1, 0.55, 4.4)),
    model("o3", cached(2.0, 0.5, 8.0)),
    model("o4-mini", cached(1.1, 0.275, 4.4)),
    model("codex-mini", cached(1.5, 0.375, 6.0)),
];

// ai.google.dev/gemini-api/docs/pricing, as read for 2026.
pub(super) const GEMINI: &[Model] = &[
    tiered(
        "gemini-3.1-pro",
        cached(2.0, 0.2, 12.0),
        LONG,
        cached(4.0, 0.4, 18.0),
    ),
    tiered(
        "gemini-3-pro",
        cached(2.0, 0.2, 12.0),
        LONG,
        cached(4.0, 0.4, 18.0),
    ),
    model("gemini-3-flash", cached(0.5, 0.05, 3.0)),
    tiered(
        "gemini-2.5-pro",
        cached(1.25, 0.125, 10.0),
        LONG,
        cached(2.5, 0.25, 15.0),
    ),
    model("gemini-2.5-flash-lite", cached(0.1, 0.01, 0.4)),
    model("gemini-2.5-flash", cached(0.3, 0.03, 2.5)),
    model("gemini-2.0-flash-lite", cached(0.075, 0.075, 0.3)),
    model("gemini-2.0-flash", cached(0.1, 0.025, 0.4)),
];
