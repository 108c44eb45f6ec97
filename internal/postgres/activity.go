package postgres

import (
	"context"
	"time"

	"credvault/internal/credvault"
)

// OrgVerificationsPerDay sums the org's per-key daily counters by day
// since then, oldest first.
func (s *Store) OrgVerificationsPerDay(ctx context.Context, orgID string, since time.Time) ([]credvault.KeyDayCount, error) {
	var out []credvault.KeyDayCount
	err := s.db.SelectContext(ctx, &out, `
		SELECT '' AS key_id, d.day::timestamp AT TIME ZONE 'UTC' AS day, sum(d.valid) AS valid, sum(d.refused) AS refused,
			sum(d.rate_limited) AS rate_limited, sum(d.revoked) AS revoked, sum(d.expired) AS expired,
			sum(d.key_disabled) AS key_disabled, sum(d.integration_disabled) AS integration_disabled
		FROM api_key_daily_verifications d JOIN api_keys k ON k.id = d.key_id
		WHERE k.org_id = $1 AND d.day >= $2::timestamptz::date
		GROUP BY d.day ORDER BY d.day`, orgID, since.UTC())
	return out, translate(err, "API key counters")
}

// TopKeys returns the org's n keys with the most checks since then.
func (s *Store) TopKeys(ctx context.Context, orgID string, since time.Time, n int) ([]credvault.ActivityTop, error) {
	var out []credvault.ActivityTop
	err := s.db.SelectContext(ctx, &out, `
		SELECT k.id, k.name, k.prefix || '_…' || k.last4 AS display, k.disabled_at IS NULL AS enabled,
			sum(d.valid + d.refused + d.rate_limited) AS checks, sum(d.refused) AS refused, sum(d.rate_limited) AS rate_limited
		FROM api_key_daily_verifications d JOIN api_keys k ON k.id = d.key_id
		WHERE k.org_id = $1 AND d.day >= $2::timestamptz::date
		GROUP BY k.id ORDER BY checks DESC, k.id LIMIT $3`, orgID, since.UTC(), n)
	return out, translate(err, "API key counters")
}

// TopIntegrations returns the org's n integrations with the most checks
// since then.
func (s *Store) TopIntegrations(ctx context.Context, orgID string, since time.Time, n int) ([]credvault.ActivityTop, error) {
	var out []credvault.ActivityTop
	err := s.db.SelectContext(ctx, &out, `
		SELECT i.id, i.name, '' AS display, i.enabled,
			sum(d.valid + d.refused + d.rate_limited) AS checks, sum(d.refused) AS refused, sum(d.rate_limited) AS rate_limited
		FROM integration_daily_verifications d JOIN integrations i ON i.id = d.integration_id
		WHERE i.org_id = $1 AND d.day >= $2::timestamptz::date
		GROUP BY i.id ORDER BY checks DESC, i.id LIMIT $3`, orgID, since.UTC(), n)
	return out, translate(err, "integration counters")
}
