package postgres

import (
	"context"
	"time"

	"github.com/lib/pq"

	"credvault/internal/credvault"
)

// dayCountColumns are the counters of a verification day, in the order
// of the arrays AddKeyVerifications sends.
const dayCountColumns = `valid, refused, rate_limited, revoked, expired, key_disabled, integration_disabled`

// AddKeyVerifications adds a batch of per-key daily counts, and their sums
// per integration, in one transaction; the verifier calls it from its
// write-back, never once per request.
func (s *Store) AddKeyVerifications(ctx context.Context, counts []credvault.KeyDayCount) error {
	if len(counts) == 0 {
		return nil
	}
	ids := make([]string, len(counts))
	integ := make([]string, len(counts))
	days := make([]time.Time, len(counts))
	cols := make([][]int64, 7)
	for i, c := range counts {
		ids[i], integ[i], days[i] = c.KeyID, c.IntegrationID, c.Day
		for j, n := range []int64{c.Valid, c.Refused, c.RateLimited, c.Revoked, c.Expired, c.KeyDisabled, c.IntegrationDisabled} {
			cols[j] = append(cols[j], n)
		}
	}
	args := []any{pq.StringArray(ids), pq.StringArray(integ), pq.Array(days)}
	for _, c := range cols {
		args = append(args, pq.Int64Array(c))
	}
	const batch = `unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
		$8::bigint[], $9::bigint[], $10::bigint[]) AS v(id, integ, day, valid, refused, rate_limited, revoked, expired,
		key_disabled, integration_disabled)`
	return s.inTx(ctx, "API key counters", func(tx *txn) error {
		// Keys and integrations deleted since they were counted are
		// skipped by the joins.
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO api_key_daily_verifications (key_id, day, `+dayCountColumns+`)
			SELECT v.id, v.day::date, v.valid, v.refused, v.rate_limited, v.revoked, v.expired, v.key_disabled,
				v.integration_disabled
			FROM `+batch+`
			JOIN api_keys k ON k.id = v.id
			ON CONFLICT (key_id, day) DO UPDATE SET `+addColumns("api_key_daily_verifications"), args...); err != nil {
			return translate(err, "API key counters")
		}
		_, err := tx.ExecContext(ctx, `
			INSERT INTO integration_daily_verifications (integration_id, day, `+dayCountColumns+`)
			SELECT v.integ::uuid, v.day::date, sum(v.valid), sum(v.refused), sum(v.rate_limited), sum(v.revoked),
				sum(v.expired), sum(v.key_disabled), sum(v.integration_disabled)
			FROM `+batch+`
			JOIN integrations i ON i.id::text = v.integ
			GROUP BY 1, 2
			ON CONFLICT (integration_id, day) DO UPDATE SET `+addColumns("integration_daily_verifications"), args...)
		return translate(err, "integration counters")
	})
}

// addColumns is the ON CONFLICT clause that adds each counter of the
// excluded row to table's.
func addColumns(table string) string {
	out := ""
	for i, c := range []string{"valid", "refused", "rate_limited", "revoked", "expired", "key_disabled", "integration_disabled"} {
		if i > 0 {
			out += ", "
		}
		out += c + " = " + table + "." + c + " + EXCLUDED." + c
	}
	return out
}

// KeyVerificationsPerDay returns a key's daily counts since then.
func (s *Store) KeyVerificationsPerDay(ctx context.Context, keyID string, since time.Time) ([]credvault.KeyDayCount, error) {
	var out []credvault.KeyDayCount
	err := s.db.SelectContext(ctx, &out, `
		SELECT key_id, day::timestamp AT TIME ZONE 'UTC' AS day, `+dayCountColumns+`
		FROM api_key_daily_verifications WHERE key_id = $1 AND day >= $2::timestamptz::date ORDER BY day`, keyID, since.UTC())
	return out, translate(err, "API key counters")
}

// IntegrationVerificationsPerDay returns an integration's daily counts
// since then; KeyID holds the integration's id.
func (s *Store) IntegrationVerificationsPerDay(ctx context.Context, id string, since time.Time) ([]credvault.KeyDayCount, error) {
	var out []credvault.KeyDayCount
	err := s.db.SelectContext(ctx, &out, `
		SELECT integration_id AS key_id, day::timestamp AT TIME ZONE 'UTC' AS day, `+dayCountColumns+`
		FROM integration_daily_verifications WHERE integration_id = $1 AND day >= $2::timestamptz::date ORDER BY day`,
		id, since.UTC())
	return out, translate(err, "integration counters")
}
