-- OAuth 2.0 connections (RFC 6749): OAuth apps an org registers at a
-- provider, credentials of kind "oauth2" whose value is an access token
-- credvault obtains and refreshes itself, and the single-use states of
-- authorizations in flight.

CREATE TABLE oauth_apps (
    id                 uuid PRIMARY KEY,
    org_id             uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Where the endpoints came from: a preset id, an issuer (discovery),
    -- or neither (explicit URLs).
    preset             text NOT NULL DEFAULT '',
    issuer             text NOT NULL DEFAULT '',
    authorize_url      text NOT NULL DEFAULT '',
    token_url          text NOT NULL,
    revocation_url     text NOT NULL DEFAULT '',
    scope_separator    text NOT NULL DEFAULT ' ',
    authorize_params   jsonb NOT NULL DEFAULT '{}'::jsonb,
    api_hosts          text[] NOT NULL DEFAULT '{}',
    base_url           text NOT NULL DEFAULT '',
    client_id          text NOT NULL CHECK (length(client_id) BETWEEN 1 AND 500),
    -- The client secret as transit ciphertext, context "org:<org_id>|oauth_app:<id>".
    secret_ciphertext  text NOT NULL CHECK (secret_ciphertext LIKE 'vault:v%'),
    secret_key_version integer NOT NULL CHECK (secret_key_version > 0),
    scopes             text[] NOT NULL DEFAULT '{}',
    token_auth_method  text NOT NULL CHECK (token_auth_method IN ('client_secret_basic', 'client_secret_post')),
    created_by         uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);
CREATE INDEX oauth_apps_org_created_idx ON oauth_apps (org_id, created_at DESC, id DESC);

-- A credential is "static" (a value someone typed) or "oauth2" (an access
-- token credvault keeps fresh). An oauth2 credential waiting for its first
-- authorization has no token yet: empty ciphertext, key version 0.
ALTER TABLE credentials ADD COLUMN kind text NOT NULL DEFAULT 'static' CHECK (kind IN ('static', 'oauth2'));
ALTER TABLE credentials DROP CONSTRAINT credentials_ciphertext_check;
ALTER TABLE credentials ADD CONSTRAINT credentials_ciphertext_check
    CHECK (ciphertext LIKE 'vault:v%' OR (kind = 'oauth2' AND ciphertext = ''));
ALTER TABLE credentials DROP CONSTRAINT credentials_key_version_check;
ALTER TABLE credentials ADD CONSTRAINT credentials_key_version_check
    CHECK (key_version > 0 OR (kind = 'oauth2' AND ciphertext = '' AND key_version = 0));

CREATE TABLE credential_oauth (
    credential_id      uuid PRIMARY KEY REFERENCES credentials (id) ON DELETE CASCADE,
    org_id             uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    -- An app in use cannot be deleted: its connections would stop refreshing.
    app_id             uuid NOT NULL REFERENCES oauth_apps (id) ON DELETE RESTRICT,
    grant_type         text NOT NULL CHECK (grant_type IN ('authorization_code', 'client_credentials')),
    scopes             text[] NOT NULL DEFAULT '{}',
    scopes_granted     text[] NOT NULL DEFAULT '{}',
    status             text NOT NULL CHECK (status IN ('pending', 'connected', 'refreshing', 'refresh_failing', 'needs_reauth')),
    -- The refresh token as transit ciphertext, context
    -- "org:<org_id>|cred:<id>|refresh_token"; '' when there is none.
    refresh_ciphertext text NOT NULL DEFAULT '' CHECK (refresh_ciphertext = '' OR refresh_ciphertext LIKE 'vault:v%'),
    expires_at         timestamptz,
    refresh_at         timestamptz,
    last_refreshed_at  timestamptz,
    last_error         text NOT NULL DEFAULT '',
    failures           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz,
    -- Counts access tokens stored, so that a refresh after an upstream 401
    -- happens only if nobody replaced the token that was refused.
    token_version      bigint NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
-- The proactive refresh job reads connections due for a refresh.
CREATE INDEX credential_oauth_due_idx ON credential_oauth (refresh_at)
    WHERE status IN ('connected', 'refreshing', 'refresh_failing');
CREATE INDEX credential_oauth_app_idx ON credential_oauth (app_id);

-- Authorizations in flight: the SHA-256 of the state (never the state),
-- bound to org, user and credential, single-use, 10 minutes. The PKCE
-- verifier (RFC 7636) is worthless without the code the provider sends
-- to the callback with this state.
CREATE TABLE oauth_states (
    state_hash     bytea PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id        uuid REFERENCES users (id) ON DELETE CASCADE,
    credential_id  uuid NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    code_verifier  text NOT NULL,
    redirect_uri   text NOT NULL,
    return_to      text NOT NULL CHECK (return_to IN ('api', 'console')),
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oauth_states_expires_idx ON oauth_states (expires_at);
