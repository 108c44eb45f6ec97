-- The web console: one-time sign-in links, server-side sessions, and the
-- per-key daily verification counters behind the API keys page's chart.

-- A sign-in link is stored as the SHA-256 of its token only; it works once
-- (used_at is set in the same statement that accepts it) until expires_at.
CREATE TABLE sign_in_links (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id     uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL CHECK (length(token_hash) = 32),
    created_by text NOT NULL DEFAULT '',
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sign_in_links_token_hash_key ON sign_in_links (token_hash);
CREATE INDEX sign_in_links_user_idx ON sign_in_links (user_id);

-- A console session is stored as the SHA-256 of its cookie value. Deleting
-- the user deletes the row (cascade); demoting them deletes it in the same
-- transaction; a session opened with an API key ends with that key.
CREATE TABLE console_sessions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash   bytea NOT NULL CHECK (length(token_hash) = 32),
    org_id       uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_id       uuid REFERENCES api_keys (id) ON DELETE CASCADE,
    method       text NOT NULL CHECK (method IN ('link', 'api_key')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE UNIQUE INDEX console_sessions_token_hash_key ON console_sessions (token_hash);
CREATE INDEX console_sessions_user_idx ON console_sessions (user_id);

-- Verifications per key and UTC day, added to in batches by the verifier's
-- write-back (never once per request).
CREATE TABLE api_key_daily_verifications (
    key_id       uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    day          date NOT NULL,
    valid        bigint NOT NULL DEFAULT 0,
    refused      bigint NOT NULL DEFAULT 0,
    rate_limited bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, day)
);
