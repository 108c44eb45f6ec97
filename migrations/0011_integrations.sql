-- Integrations: named groups of API keys (an "API integration connected to
-- an AI agent") that can be switched off and on as a whole; a key of its
-- own can be disabled too. Disabling revokes nothing: the key rows, their
-- rate-limit state and their usage stay as they are.

CREATE TABLE integrations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    agent       text CHECK (agent IS NULL OR length(agent) BETWEEN 1 AND 200),
    environment text NOT NULL DEFAULT '' CHECK (environment ~ '^([a-z0-9][a-z0-9._-]{0,62})?$'),
    tags        jsonb NOT NULL DEFAULT '{}'::jsonb,
    enabled     boolean NOT NULL DEFAULT true,
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX integrations_org_name_key ON integrations (org_id, name);
CREATE UNIQUE INDEX integrations_org_id_key ON integrations (org_id, id);
CREATE INDEX integrations_org_created_idx ON integrations (org_id, created_at DESC, id DESC);

-- A key belongs to at most one integration of its own org (the composite
-- key makes another org's integration impossible). Deleting an integration
-- is refused while it has usable keys (the service checks under a lock);
-- revoked and expired ones are detached.
ALTER TABLE api_keys
    ADD COLUMN integration_id uuid,
    ADD COLUMN disabled_at timestamptz,
    -- Who disabled it: a member may re-enable only a key they disabled.
    ADD COLUMN disabled_by uuid,
    ADD CONSTRAINT api_keys_integration_fkey FOREIGN KEY (org_id, integration_id)
        REFERENCES integrations (org_id, id) ON DELETE SET NULL (integration_id);
CREATE INDEX api_keys_integration_idx ON api_keys (integration_id) WHERE integration_id IS NOT NULL;

-- Verifications per integration and UTC day, written by the verifier's
-- batched write-back next to the per-key counts (never once per request),
-- so that a key moved to another integration leaves its history where it
-- was counted.
CREATE TABLE integration_daily_verifications (
    integration_id       uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    day                  date NOT NULL,
    valid                bigint NOT NULL DEFAULT 0,
    refused              bigint NOT NULL DEFAULT 0,
    rate_limited         bigint NOT NULL DEFAULT 0,
    revoked              bigint NOT NULL DEFAULT 0,
    expired              bigint NOT NULL DEFAULT 0,
    key_disabled         bigint NOT NULL DEFAULT 0,
    integration_disabled bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (integration_id, day)
);

-- Refusals by reason per key and day; "refused" stays their sum.
ALTER TABLE api_key_daily_verifications
    ADD COLUMN revoked              bigint NOT NULL DEFAULT 0,
    ADD COLUMN expired              bigint NOT NULL DEFAULT 0,
    ADD COLUMN key_disabled         bigint NOT NULL DEFAULT 0,
    ADD COLUMN integration_disabled bigint NOT NULL DEFAULT 0;
CREATE INDEX api_key_daily_verifications_day_idx ON api_key_daily_verifications (day);

-- The revocation feed also tells offline verifiers of JWT keys when a key
-- stops being usable because it (or its integration) was disabled, and
-- when it is usable again: reason "disabled" / "enabled", not_after the
-- time of the change. Only changes of the effective state are written.
ALTER TABLE api_key_revocations DROP CONSTRAINT api_key_revocations_reason_check;
ALTER TABLE api_key_revocations ADD CONSTRAINT api_key_revocations_reason_check
    CHECK (reason IN ('revoked', 'rolled', 'deleted', 'disabled', 'enabled'));

CREATE FUNCTION api_key_disabled_feed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_off boolean;
    is_off  boolean;
BEGIN
    IF NEW.format <> 'jwt' OR NEW.revoked_at IS NOT NULL THEN
        RETURN NEW;
    END IF;
    was_off := OLD.disabled_at IS NOT NULL OR EXISTS (
        SELECT 1 FROM integrations i WHERE i.id = OLD.integration_id AND NOT i.enabled);
    is_off := NEW.disabled_at IS NOT NULL OR EXISTS (
        SELECT 1 FROM integrations i WHERE i.id = NEW.integration_id AND NOT i.enabled);
    IF was_off <> is_off THEN
        INSERT INTO api_key_revocations (org_id, key_id, not_after, reason)
        VALUES (NEW.org_id, NEW.id, now(), CASE WHEN is_off THEN 'disabled' ELSE 'enabled' END);
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER api_keys_disabled_feed
    AFTER UPDATE OF disabled_at, integration_id ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_key_disabled_feed();

CREATE FUNCTION integration_disabled_feed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO api_key_revocations (org_id, key_id, not_after, reason)
    SELECT k.org_id, k.id, now(), CASE WHEN NEW.enabled THEN 'enabled' ELSE 'disabled' END
    FROM api_keys k
    WHERE k.integration_id = NEW.id AND k.format = 'jwt' AND k.revoked_at IS NULL AND k.disabled_at IS NULL
      AND (k.expires_at IS NULL OR k.expires_at > now())
    ORDER BY k.id;
    RETURN NEW;
END $$;

CREATE TRIGGER integrations_disabled_feed
    AFTER UPDATE OF enabled ON integrations
    FOR EACH ROW WHEN (OLD.enabled IS DISTINCT FROM NEW.enabled)
    EXECUTE FUNCTION integration_disabled_feed();
