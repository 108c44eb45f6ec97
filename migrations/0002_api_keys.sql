-- Inbound API keys (stored as SHA-256 only) and the endpoint registry.

CREATE TABLE api_keys (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id            uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    -- NULL for service keys, which name the acting user per request.
    user_id           uuid REFERENCES users (id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('user', 'service')),
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    environment       text NOT NULL CHECK (environment IN ('live', 'test')),
    key_hash          bytea NOT NULL CHECK (length(key_hash) = 32),
    prefix            text NOT NULL,
    last4             text NOT NULL CHECK (length(last4) = 4),
    scopes            text[] NOT NULL DEFAULT '{}',
    tags              jsonb NOT NULL DEFAULT '{}'::jsonb,
    rate_limit        integer CHECK (rate_limit > 0),
    rate_window_secs  integer CHECK (rate_window_secs > 0),
    expires_at        timestamptz,
    revoked_at        timestamptz,
    replaced_by       uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    created_by        uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    last_used_at      timestamptz,
    CHECK ((kind = 'user') = (user_id IS NOT NULL)),
    CHECK ((rate_limit IS NULL) = (rate_window_secs IS NULL))
);
-- The verification hot path reads by hash.
CREATE UNIQUE INDEX api_keys_key_hash_key ON api_keys (key_hash);
CREATE INDEX api_keys_org_id_idx ON api_keys (org_id, id);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id) WHERE user_id IS NOT NULL;

CREATE TABLE endpoints (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    auth_mode       text NOT NULL CHECK (auth_mode IN ('none', 'private')),
    required_scopes text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX endpoints_org_name_key ON endpoints (org_id, name);
