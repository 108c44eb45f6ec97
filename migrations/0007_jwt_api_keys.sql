-- Signed (JWT) API keys beside opaque ones, and the revocation feed that
-- lets offline verifiers of JWT keys honour revocation.

ALTER TABLE api_keys
    ADD COLUMN format text NOT NULL DEFAULT 'opaque' CHECK (format IN ('opaque', 'jwt')),
    -- The agent or integration label a JWT key carries as its "agent" claim.
    ADD COLUMN agent text CHECK (agent IS NULL OR length(agent) BETWEEN 1 AND 200),
    -- The transit signing key version that signed a JWT key.
    ADD COLUMN signing_version integer CHECK (signing_version > 0),
    ADD CONSTRAINT api_keys_jwt_signed CHECK ((format = 'jwt') = (signing_version IS NOT NULL));

-- One row per JWT key that stops being valid before its exp claim says:
-- revoked, rolled (at the end of its grace) or deleted with its user or
-- org. Filled by triggers, so that no code path that ends a key can forget
-- it. seq is the feed's cursor. No foreign keys: a deleted key stays in
-- the feed.
CREATE TABLE api_key_revocations (
    seq        bigserial PRIMARY KEY,
    org_id     uuid NOT NULL,
    key_id     uuid NOT NULL,
    not_after  timestamptz NOT NULL,
    reason     text NOT NULL CHECK (reason IN ('revoked', 'rolled', 'deleted')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_key_revocations_org_seq_idx ON api_key_revocations (org_id, seq);

CREATE FUNCTION api_key_revocation_feed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.format = 'jwt' AND OLD.revoked_at IS NULL THEN
            INSERT INTO api_key_revocations (org_id, key_id, not_after, reason)
            VALUES (OLD.org_id, OLD.id, now(), 'deleted');
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.format = 'jwt' THEN
        IF NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL THEN
            INSERT INTO api_key_revocations (org_id, key_id, not_after, reason)
            VALUES (NEW.org_id, NEW.id, NEW.revoked_at, 'revoked');
        ELSIF NEW.replaced_by IS NOT NULL AND OLD.replaced_by IS NULL AND NEW.expires_at IS NOT NULL THEN
            INSERT INTO api_key_revocations (org_id, key_id, not_after, reason)
            VALUES (NEW.org_id, NEW.id, NEW.expires_at, 'rolled');
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER api_keys_revocation_feed
    AFTER UPDATE OF revoked_at, replaced_by OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_key_revocation_feed();
