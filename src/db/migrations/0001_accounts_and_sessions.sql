-- Users, the CLI tokens catty mints for them, and their sessions.
-- Times are timestamptz; ids are text (random UUIDs for users and tokens, catty's own s-… ids
-- for sessions).

CREATE TABLE users (
    id text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    -- Who the identity provider says this is: its issuer URL and the ID token's `sub`.
    issuer text NOT NULL,
    subject text NOT NULL,
    email text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (issuer, subject)
);

-- Opaque `cat_…` tokens, kept as their SHA-256 only: a database read gives no usable token.
CREATE TABLE cli_tokens (
    id text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    user_id text NOT NULL REFERENCES users (id),
    token_sha256 bytea NOT NULL UNIQUE,
    -- The computer it was made for (its host name), for `catty whoami`.
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now(),
    -- Slides forward on use.
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX cli_tokens_user ON cli_tokens (user_id);

-- One row per session: the daemon's whole record as JSON (the shape the local store writes to
-- sessions.json, without the connect token, which is derived from the id), and beside it the
-- columns that queries and constraints need.
CREATE TABLE sessions (
    id text PRIMARY KEY,
    owner text NOT NULL REFERENCES users (id),
    label text NOT NULL,
    live boolean NOT NULL,
    destroy_pending boolean NOT NULL,
    expires_at timestamptz NOT NULL,
    ended_at timestamptz,
    request_id text,
    created_at timestamptz NOT NULL,
    record jsonb NOT NULL
);
-- Labels are unique per user among live sessions.
CREATE UNIQUE INDEX sessions_live_label ON sessions (owner, label) WHERE live;
CREATE INDEX sessions_owner ON sessions (owner, created_at);
CREATE INDEX sessions_request ON sessions (owner, request_id) WHERE request_id IS NOT NULL;
-- What the sweep reads: live sessions and pending destructions.
CREATE INDEX sessions_sweep ON sessions (expires_at) WHERE live OR destroy_pending;
CREATE INDEX sessions_ended ON sessions (ended_at) WHERE NOT live;
