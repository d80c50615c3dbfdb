-- The device codes the login broker gave out (RFC 8628), so that every instance paces a
-- client's polls alike: at most one poll of the identity provider per interval per code, and
-- `slow_down` (interval + 5 s) for a client that polls sooner. Kept by the code's SHA-256 only.
CREATE TABLE device_polls (
    device_code_sha256 bytea PRIMARY KEY,
    interval_sec integer NOT NULL,
    -- The provider is asked again no sooner than this.
    next_poll_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX device_polls_expires ON device_polls (expires_at);
