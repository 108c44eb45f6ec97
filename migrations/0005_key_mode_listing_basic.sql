-- Daily operation: a key's mode (live|test, shown in its prefix) apart from
-- its free environment label; newest-first listings; HTTP Basic credentials
-- and the credential's last use.

-- Until now "environment" held the mode. Existing keys keep it as their
-- label too, so that clients reading "environment" see what they saw.
ALTER TABLE api_keys ADD COLUMN mode text;
UPDATE api_keys SET mode = environment;
ALTER TABLE api_keys ALTER COLUMN mode SET NOT NULL;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_mode_check CHECK (mode IN ('live', 'test'));
ALTER TABLE api_keys DROP CONSTRAINT api_keys_environment_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_environment_check
    CHECK (environment ~ '^([a-z0-9][a-z0-9._-]{0,62})?$');
ALTER TABLE api_keys ALTER COLUMN environment SET DEFAULT '';

-- Listings are newest first: (created_at DESC, id DESC) is the keyset.
CREATE INDEX api_keys_org_created_idx ON api_keys (org_id, created_at DESC, id DESC);
CREATE INDEX users_org_created_idx ON users (org_id, created_at DESC, id DESC);
CREATE INDEX endpoints_org_created_idx ON endpoints (org_id, created_at DESC, id DESC);
CREATE INDEX credentials_org_created_idx ON credentials (org_id, created_at DESC, id DESC);

-- Placement basic sends "Authorization: Basic base64(username:value)"
-- (RFC 7617); the username is metadata, not a secret.
ALTER TABLE credentials DROP CONSTRAINT credentials_placement_check;
ALTER TABLE credentials ADD CONSTRAINT credentials_placement_check
    CHECK (placement IN ('header', 'query', 'bearer', 'basic'));
ALTER TABLE credentials ADD COLUMN username text NOT NULL DEFAULT '';
-- The last workflow use (proxy or inject; never a test), written in
-- batches by the usage writer.
ALTER TABLE credentials ADD COLUMN last_used_at timestamptz;
