-- Many instances, one truth.
--
-- key_state_log: every change that alters how an API key verifies (created,
-- revoked, updated, rolled, deleted, a user's keys changed, a credential
-- changed; later disabled/enabled) is one row, in commit order. Each
-- instance applies the rows to its caches, remembers the last seq it
-- applied, and after any interruption of its LISTEN connection reads the
-- rows after that seq before it trusts its caches again. NOTIFY only makes
-- the rows arrive sooner. Writers take one transaction-scoped advisory lock
-- just before they insert (and hold it to commit), so seq order is commit
-- order and a reader that has seen seq N has seen every row below it.
CREATE TABLE key_state_log (
    seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- What happened, for people reading the log: revoked, updated, ...
    change  text NOT NULL CHECK (change ~ '^[a-z][a-z_]{0,31}$'),
    -- What every instance applies: key:<hex sha256>, new:<hex sha256>,
    -- user:<uuid> or cred:<uuid> (see postgres.InvalidationChannel).
    payload text NOT NULL CHECK (length(payload) BETWEEN 3 AND 200),
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX key_state_log_at_idx ON key_state_log (at);

-- installation: one row, created once, holding the values every instance
-- of this installation shares without configuration. issuer is the "iss"
-- of JWT API keys when neither CREDVAULT_ISSUER nor CREDVAULT_PUBLIC_URL
-- is set, so that replicas accept each other's keys.
CREATE TABLE installation (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    issuer     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO installation (issuer) VALUES ('urn:credvault:installation:' || gen_random_uuid());
