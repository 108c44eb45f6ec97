-- Outbound credentials: the value only as Vault transit ciphertext, bound to
-- its org and id by the derivation context "org:<org_id>|cred:<id>".

CREATE TABLE credentials (
    id                 uuid PRIMARY KEY,
    org_id             uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    -- The user who created it; NULL once that user is deleted (admins
    -- still manage it, and workflows keep working).
    owner_id           uuid REFERENCES users (id) ON DELETE SET NULL,
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    service            text NOT NULL,
    placement          text NOT NULL CHECK (placement IN ('header', 'query', 'bearer')),
    param_name         text NOT NULL DEFAULT '',
    value_prefix       text NOT NULL DEFAULT '',
    base_url           text NOT NULL DEFAULT '',
    allowed_hosts      text[] NOT NULL DEFAULT '{}',
    ciphertext         text NOT NULL CHECK (ciphertext LIKE 'vault:v%'),
    key_version        integer NOT NULL CHECK (key_version > 0),
    hint               text NOT NULL,
    sharing_mode       text NOT NULL DEFAULT 'personal' CHECK (sharing_mode IN ('personal', 'team', 'members')),
    test_method        text NOT NULL DEFAULT '',
    test_path          text NOT NULL DEFAULT '',
    test_expect_status integer NOT NULL DEFAULT 0,
    test_headers       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    rotated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credentials_org_service_idx ON credentials (org_id, service, id);
CREATE INDEX credentials_org_id_idx ON credentials (org_id, id);
-- The rewrap job walks rows older than the latest key version.
CREATE INDEX credentials_key_version_idx ON credentials (key_version, id);

CREATE TABLE credential_shares (
    credential_id uuid NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    permission    text NOT NULL CHECK (permission IN ('use', 'manage')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (credential_id, user_id)
);
CREATE INDEX credential_shares_user_idx ON credential_shares (user_id, credential_id);

-- Every use of a credential, fed by the injector in batches.
CREATE TABLE credential_usage (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    credential_id    uuid NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    org_id           uuid NOT NULL,
    workflow_id      text NOT NULL DEFAULT '',
    node_id          text NOT NULL DEFAULT '',
    user_id          uuid,
    destination_host text NOT NULL DEFAULT '',
    status           integer NOT NULL DEFAULT 0,
    latency_ms       integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credential_usage_credential_idx ON credential_usage (credential_id, created_at DESC);
