-- A key's power never outlives the person who handed it out, and seeing a
-- credential value is a right of runners (service keys) alone.

-- legacy: a service key no known person stands behind (created before
-- creators were checked, by a key without one, or by a user since
-- deleted, or by one who is no longer an owner or admin). Owners find them with GET /v1/api-keys?created_by=legacy.
ALTER TABLE api_keys ADD COLUMN legacy boolean NOT NULL DEFAULT false;

-- A user key's power is its user's: where the creator was not recorded,
-- the user stands behind it.
UPDATE api_keys SET created_by = user_id WHERE kind = 'user' AND created_by IS NULL;

UPDATE api_keys k SET legacy = true
WHERE k.kind = 'service'
  AND (k.created_by IS NULL
       OR NOT EXISTS (SELECT 1 FROM users u
                      WHERE u.id = k.created_by AND u.org_id = k.org_id AND u.role IN ('owner', 'admin')));

-- credentials:resolve hands out values: only service keys keep it.
UPDATE api_keys SET scopes = array_remove(scopes, 'credentials:resolve'), updated_at = now()
WHERE kind = 'user' AND 'credentials:resolve' = ANY (scopes);

-- Deleting or demoting a user looks up the service keys they created.
CREATE INDEX api_keys_created_by_idx ON api_keys (org_id, created_by) WHERE created_by IS NOT NULL;
