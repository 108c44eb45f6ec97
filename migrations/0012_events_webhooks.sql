-- Events, webhooks and scheduled credential health checks (issue 22).
--
-- An event is an audit event that is also told to the org's webhooks: the
-- row in events, its deliveries and the jobs that send them are written in
-- the transaction of the change that caused them (the outbox), so that a
-- crash after the commit loses nothing and a rollback sends nothing.

CREATE TABLE webhooks (
    id                uuid PRIMARY KEY,
    org_id            uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    url               text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description       text NOT NULL DEFAULT '',
    event_types       text[] NOT NULL,
    enabled           boolean NOT NULL DEFAULT true,
    -- The signing secret (whsec_…) encrypted through Vault transit with
    -- the context "org:<org_id>|webhook:<id>"; shown once, never read back.
    secret_ciphertext text NOT NULL CHECK (secret_ciphertext LIKE 'vault:v%'),
    created_by        uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_org ON webhooks (org_id, created_at DESC, id DESC);

CREATE TABLE events (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    type       text NOT NULL,
    subject_id text NOT NULL DEFAULT '',
    data       jsonb NOT NULL,
    audit_id   bigint,
    -- Events that must be told once (an expiry reminder, a rate-limit
    -- window) carry a key that makes a second insert a no-op.
    dedupe_key text UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_org ON events (org_id, created_at DESC);

CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id      uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    last_status     integer NOT NULL DEFAULT 0,
    last_error      text NOT NULL DEFAULT '',
    next_attempt_at timestamptz,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (created_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id DESC);

CREATE TABLE webhook_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    status      integer NOT NULL DEFAULT 0,
    latency_ms  integer NOT NULL DEFAULT 0,
    error       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- What credvault watches on a credential: a scheduled Test connection and
-- the expiry of the stored third-party value that the person entered.
CREATE TABLE credential_monitors (
    credential_id    uuid PRIMARY KEY REFERENCES credentials (id) ON DELETE CASCADE,
    org_id           uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    interval_seconds integer CHECK (interval_seconds > 0),
    next_check_at    timestamptz,
    health_status    text NOT NULL DEFAULT 'unknown' CHECK (health_status IN ('unknown', 'healthy', 'failing')),
    value_expires_at timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credential_monitors_due ON credential_monitors (next_check_at) WHERE interval_seconds IS NOT NULL;

-- The outcome of each check: a status class and latency, never a body.
CREATE TABLE credential_health_checks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    credential_id uuid NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    slot          timestamptz NOT NULL,
    ok            boolean NOT NULL,
    status_class  text NOT NULL,
    status        integer NOT NULL DEFAULT 0,
    latency_ms    integer NOT NULL DEFAULT 0,
    code          text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credential_health_checks_cred ON credential_health_checks (credential_id, id DESC);

-- Refusals and rate-limit hits counted in memory by every instance and
-- added here by its background flush, one row per subject and minute.
-- subject is "key:<id>" or "unknown" (keys not known for the org).
CREATE TABLE refusal_counts (
    org_id       uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    subject      text NOT NULL,
    minute       timestamptz NOT NULL,
    refusals     integer NOT NULL DEFAULT 0,
    rate_limited integer NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, subject, minute)
);
CREATE INDEX refusal_counts_minute ON refusal_counts (minute);

-- The last state told of a subject (a spike), so that an event is sent on
-- a change only.
CREATE TABLE event_states (
    org_id     uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    subject    text NOT NULL,
    state      text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, subject)
);
