-- Of each request's cache writes, those written for an hour (Anthropic's
-- `cache_creation.ephemeral_1h_input_tokens`, billed at 2× input where 5-minute writes are
-- 1.25×): kept raw like the other counters, so a price change can be recomputed.
ALTER TABLE usage_events ADD COLUMN cache_write_1h_tokens bigint NOT NULL DEFAULT 0;
