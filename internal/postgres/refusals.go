package postgres

import (
	"context"
	"time"

	"github.com/lib/pq"

	"credvault/internal/credvault"
)

// AddRefusalCounts adds one flush of an instance's counts to minute, in
// one statement.
func (s *Store) AddRefusalCounts(ctx context.Context, minute time.Time, counts []credvault.RefusalCount) error {
	orgs, subjects := make([]string, len(counts)), make([]string, len(counts))
	refusals, limited := make([]int64, len(counts)), make([]int64, len(counts))
	for i, c := range counts {
		orgs[i], subjects[i], refusals[i], limited[i] = c.OrgID, c.Subject, int64(c.Refusals), int64(c.RateLimited)
	}
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO refusal_counts (org_id, subject, minute, refusals, rate_limited)
		SELECT o::uuid, sub, $5, r, l FROM unnest($1::text[], $2::text[], $3::int[], $4::int[]) AS t (o, sub, r, l)
		WHERE EXISTS (SELECT 1 FROM orgs WHERE id = o::uuid)
		ON CONFLICT (org_id, subject, minute) DO UPDATE SET
			refusals = refusal_counts.refusals + EXCLUDED.refusals,
			rate_limited = refusal_counts.rate_limited + EXCLUDED.rate_limited`,
		pq.StringArray(orgs), pq.StringArray(subjects), pq.Int64Array(refusals), pq.Int64Array(limited), minute)
	return translate(err, "refusal counts")
}

// RefusalWindows sums each subject's refusals since windowStart and in
// [baselineStart, windowStart), with its key's name and the spike state
// last told.
func (s *Store) RefusalWindows(ctx context.Context, windowStart, baselineStart time.Time) ([]credvault.RefusalWindow, error) {
	var out []credvault.RefusalWindow
	err := s.db.SelectContext(ctx, &out, `
		SELECT r.org_id, r.subject,
			COALESCE(sum(r.refusals) FILTER (WHERE r.minute >= $1), 0) AS recent,
			COALESCE(sum(r.refusals) FILTER (WHERE r.minute < $1), 0) AS before,
			COALESCE(max(k.name), '') AS key_name, COALESCE(max(k.prefix || '_…' || k.last4), '') AS display,
			COALESCE(bool_or(st.state = 'spiking'), false) AS spiking
		FROM refusal_counts r
		LEFT JOIN api_keys k ON r.subject = 'key:' || k.id::text AND k.org_id = r.org_id
		LEFT JOIN event_states st ON st.org_id = r.org_id AND st.subject = 'spike:' || r.subject
		WHERE r.minute >= $2
		GROUP BY r.org_id, r.subject
		UNION ALL
		-- subjects told as spiking that have had no refusal since: quiet now
		SELECT st.org_id, substr(st.subject, 7), 0, 0, '', '', true FROM event_states st
		WHERE st.state = 'spiking' AND st.subject LIKE 'spike:%'
		  AND NOT EXISTS (SELECT 1 FROM refusal_counts r WHERE r.org_id = st.org_id AND 'spike:' || r.subject = st.subject AND r.minute >= $2)`,
		windowStart, baselineStart)
	return out, translate(err, "refusal counts")
}

// SetSpikeState records a subject's spike state and, when it changed, ev.
func (s *Store) SetSpikeState(ctx context.Context, orgID, subject string, spiking bool, ev *credvault.AuditEvent) (bool, error) {
	state := "quiet"
	if spiking {
		state = "spiking"
	}
	var changed bool
	err := s.inTx(ctx, "event state", func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `
			INSERT INTO event_states (org_id, subject, state) VALUES ($1, $2, $3)
			ON CONFLICT (org_id, subject) DO UPDATE SET state = EXCLUDED.state, changed_at = now()
			WHERE event_states.state <> EXCLUDED.state`, orgID, "spike:"+subject, state)
		if err != nil {
			return translate(err, "event state")
		}
		n, _ := res.RowsAffected()
		if changed = n > 0; changed && ev != nil {
			return insertAudit(ctx, tx, ev)
		}
		return nil
	})
	return changed, err
}

// RateLimitedKeys lists keys with rate-limit hits since since, with their
// limit and the last minute they were hit in.
func (s *Store) RateLimitedKeys(ctx context.Context, since time.Time) ([]credvault.RateLimitedKey, error) {
	var out []credvault.RateLimitedKey
	err := s.db.SelectContext(ctx, &out, `
		SELECT r.org_id, k.id AS key_id, k.name, k.prefix || '_…' || k.last4 AS display,
			COALESCE(k.rate_limit, 0) AS rate_limit, COALESCE(k.rate_window_secs, 0) AS rate_window_secs,
			sum(r.rate_limited) AS hits, max(r.minute) AS last_minute
		FROM refusal_counts r JOIN api_keys k ON r.subject = 'key:' || k.id::text AND k.org_id = r.org_id
		WHERE r.minute >= $1 AND r.rate_limited > 0
		GROUP BY r.org_id, k.id`, since)
	return out, translate(err, "refusal counts")
}

// PurgeRefusalCounts drops counts older than before.
func (s *Store) PurgeRefusalCounts(ctx context.Context, before time.Time) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM refusal_counts WHERE minute < $1`, before)
	return translate(err, "refusal counts")
}

// FindExpiring lists active keys (not rolled: a rolled key's end is
// planned) expiring in (from, to], and credential values expiring in
// (now, to].
func (s *Store) FindExpiring(ctx context.Context, from, now, to time.Time) ([]credvault.Expiring, error) {
	var out []credvault.Expiring
	err := s.db.SelectContext(ctx, &out, `
		SELECT 'api_key' AS kind, org_id, id, name, prefix || '_…' || last4 AS display, expires_at FROM api_keys
		WHERE revoked_at IS NULL AND replaced_by IS NULL AND expires_at > $1 AND expires_at <= $3
		UNION ALL
		SELECT 'credential', m.org_id, m.credential_id, c.name, '', m.value_expires_at
		FROM credential_monitors m JOIN credentials c ON c.id = m.credential_id
		WHERE m.value_expires_at > $2 AND m.value_expires_at <= $3`, from, now, to)
	return out, translate(err, "expiring")
}
