-- The org-wide calls chart reads one org's uses by time.
CREATE INDEX credential_usage_org_idx ON credential_usage (org_id, created_at);
