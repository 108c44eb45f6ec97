-- Verification refusals by reason, for the console's outcome charts:
-- refused stays the total; refused_revoked and refused_expired split it
-- from now on (older rows keep their total with no reason recorded).
ALTER TABLE api_key_daily_verifications
    ADD COLUMN refused_revoked bigint NOT NULL DEFAULT 0,
    ADD COLUMN refused_expired bigint NOT NULL DEFAULT 0;

-- The org-wide calls chart reads one org's uses by time.
CREATE INDEX credential_usage_org_idx ON credential_usage (org_id, created_at);
