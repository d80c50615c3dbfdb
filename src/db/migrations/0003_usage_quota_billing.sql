-- What the gateway meters and holds, and what Stripe says of each user's subscription.
-- Units are list-price micro-dollars (gateway/prices.rs); periods are calendar months in UTC.

-- One row per user and month: what was spent (`used`) and what requests in flight hold
-- (`reserved`). A request is let through only by one conditional UPDATE of this row
-- (`used + reserved + estimate <= limit`), so concurrent requests cannot overrun the limit.
CREATE TABLE quota (
    user_id text NOT NULL REFERENCES users (id),
    period_start timestamptz NOT NULL,
    used bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
    reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    PRIMARY KEY (user_id, period_start)
);

-- Each hold in flight, naming the gateway instance that took it, so the holds of an instance
-- that died are given back by a survivor.
CREATE TABLE reservations (
    id bigserial PRIMARY KEY,
    user_id text NOT NULL,
    period_start timestamptz NOT NULL,
    session_id text NOT NULL,
    units bigint NOT NULL CHECK (units >= 0),
    instance integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (user_id, period_start) REFERENCES quota (user_id, period_start)
);
CREATE INDEX reservations_instance ON reservations (instance);

-- One row per upstream request, with the provider's raw counters (so a price change can be
-- recomputed) and what they cost. Idempotent on the upstream's request id.
CREATE TABLE usage_events (
    id bigserial PRIMARY KEY,
    user_id text NOT NULL REFERENCES users (id),
    session_id text NOT NULL,
    provider text NOT NULL,
    model text,
    upstream_request_id text NOT NULL UNIQUE,
    input_tokens bigint NOT NULL DEFAULT 0,
    cache_write_tokens bigint NOT NULL DEFAULT 0,
    cache_read_tokens bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    -- False when the stream was cut before the provider reported its usage: then the counters
    -- are what was known plus an estimate from the bytes streamed.
    reported boolean NOT NULL,
    units bigint NOT NULL CHECK (units >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_events_user ON usage_events (user_id, created_at);

-- Stripe's view of each user's subscription, as last fetched from Stripe. The plan is derived
-- from `status` (active, trialing, or past_due within the grace period), never stored.
CREATE TABLE subscriptions (
    user_id text PRIMARY KEY REFERENCES users (id),
    stripe_customer_id text UNIQUE,
    stripe_subscription_id text UNIQUE,
    status text,
    price_id text,
    current_period_end timestamptz,
    cancel_at_period_end boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every Stripe event handled, inserted in the transaction of its effect: a redelivery finds
-- its id here and changes nothing.
CREATE TABLE stripe_events (
    event_id text PRIMARY KEY,
    type text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
