package postgres

import (
	"context"
	"database/sql"
	"time"

	"credvault/internal/credvault"
)

type monitorRow struct {
	CredentialID    string        `db:"credential_id"`
	IntervalSeconds sql.NullInt64 `db:"interval_seconds"`
	NextCheckAt     sql.NullTime  `db:"next_check_at"`
	HealthStatus    string        `db:"health_status"`
	ValueExpiresAt  sql.NullTime  `db:"value_expires_at"`
}

func (r *monitorRow) toDomain() *credvault.CredentialMonitor {
	return &credvault.CredentialMonitor{CredentialID: r.CredentialID, IntervalSeconds: int(r.IntervalSeconds.Int64),
		NextCheckAt: nullTime(r.NextCheckAt), HealthStatus: r.HealthStatus, ValueExpiresAt: nullTime(r.ValueExpiresAt)}
}

const monitorColumns = `credential_id, interval_seconds, next_check_at, health_status, value_expires_at`

// FindMonitor returns the credential's monitor, or a zero one (status
// unknown) when none was set.
func (s *Store) FindMonitor(ctx context.Context, orgID, credentialID string) (*credvault.CredentialMonitor, error) {
	var row monitorRow
	err := s.db.GetContext(ctx, &row, `SELECT `+monitorColumns+` FROM credential_monitors WHERE org_id = $1 AND credential_id = $2`, orgID, credentialID)
	if err == sql.ErrNoRows {
		return &credvault.CredentialMonitor{CredentialID: credentialID, HealthStatus: credvault.HealthUnknown}, nil
	}
	if err != nil {
		return nil, translate(err, "credential monitor")
	}
	m := row.toDomain()
	checks, err := s.FindHealthChecks(ctx, credentialID, 0, 1)
	if err != nil {
		return nil, err
	}
	if len(checks) > 0 {
		m.LastCheck = checks[0]
	}
	return m, nil
}

// SetMonitor replaces the schedule and the value's expiry. A new or
// changed interval makes the first check due now; the health status is
// kept.
func (s *Store) SetMonitor(ctx context.Context, orgID, credentialID string, interval int, expiresAt *time.Time, ev *credvault.AuditEvent) (*credvault.CredentialMonitor, error) {
	var iv any
	if interval > 0 {
		iv = interval
	}
	err := s.inTx(ctx, "credential monitor", func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO credential_monitors (credential_id, org_id, interval_seconds, next_check_at, value_expires_at)
			VALUES ($1, $2, $3::int, CASE WHEN $3::int IS NULL THEN NULL ELSE now() END, $4)
			ON CONFLICT (credential_id) DO UPDATE SET
				interval_seconds = EXCLUDED.interval_seconds,
				next_check_at = CASE
					WHEN EXCLUDED.interval_seconds IS NULL THEN NULL
					WHEN credential_monitors.interval_seconds IS NOT DISTINCT FROM EXCLUDED.interval_seconds THEN credential_monitors.next_check_at
					ELSE now() END,
				value_expires_at = EXCLUDED.value_expires_at, updated_at = now()`,
			credentialID, orgID, iv, expiresAt); err != nil {
			return translate(err, "credential monitor")
		}
		return insertAudit(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return s.FindMonitor(ctx, orgID, credentialID)
}

// FindHealthChecks lists a credential's checks, newest first, before
// cursor (a check id; 0 for the first page).
func (s *Store) FindHealthChecks(ctx context.Context, credentialID string, cursor int64, n int) ([]*credvault.HealthCheck, error) {
	var rows []struct {
		ID          int64     `db:"id"`
		Slot        time.Time `db:"slot"`
		OK          bool      `db:"ok"`
		StatusClass string    `db:"status_class"`
		Status      int       `db:"status"`
		LatencyMS   int       `db:"latency_ms"`
		Code        string    `db:"code"`
		CreatedAt   time.Time `db:"created_at"`
	}
	if err := s.db.SelectContext(ctx, &rows, `
		SELECT id, slot, ok, status_class, status, latency_ms, code, created_at FROM credential_health_checks
		WHERE credential_id = $1 AND ($2 = 0 OR id < $2) ORDER BY id DESC LIMIT $3`, credentialID, cursor, limit(n)); err != nil {
		return nil, translate(err, "health checks")
	}
	out := make([]*credvault.HealthCheck, len(rows))
	for i, r := range rows {
		out[i] = &credvault.HealthCheck{ID: r.ID, Slot: r.Slot.UTC(), OK: r.OK, StatusClass: r.StatusClass, Status: r.Status,
			LatencyMS: r.LatencyMS, Code: r.Code, CreatedAt: r.CreatedAt}
	}
	return out, nil
}

// ClaimDueHealthChecks moves each due schedule to its next slot (the
// first one after now, so a long outage does not queue a backlog) and
// queues a check for the slot it claimed, in one transaction. The row
// lock of the UPDATE makes a slot claimed once even if two claims ran at
// the same time.
func (s *Store) ClaimDueHealthChecks(ctx context.Context, now time.Time, n int) (int, error) {
	var claimed int
	err := s.inTx(ctx, "health checks", func(tx *txn) error {
		var rows []struct {
			CredentialID string    `db:"credential_id"`
			OrgID        string    `db:"org_id"`
			Slot         time.Time `db:"slot"`
		}
		if err := tx.SelectContext(ctx, &rows, `
			WITH due AS (
				SELECT credential_id, next_check_at AS slot FROM credential_monitors
				WHERE interval_seconds IS NOT NULL AND next_check_at <= $1
				ORDER BY next_check_at LIMIT $2 FOR UPDATE SKIP LOCKED)
			UPDATE credential_monitors m SET next_check_at = due.slot + make_interval(secs => m.interval_seconds *
				(floor(EXTRACT(EPOCH FROM ($1 - due.slot)) / m.interval_seconds) + 1))
			FROM due WHERE m.credential_id = due.credential_id
			RETURNING m.credential_id, m.org_id, due.slot`, now, limit(n)); err != nil {
			return translate(err, "health checks")
		}
		jobs := make([]credvault.Job, len(rows))
		for i, r := range rows {
			jobs[i] = credvault.Job{Kind: credvault.JobHealthCheck, CredentialID: r.CredentialID, OrgID: r.OrgID, Slot: r.Slot.UTC()}
		}
		claimed = len(rows)
		return tx.queue(ctx, jobs)
	})
	return claimed, err
}

// RecordHealthCheck stores a check and the credential's new status, and
// the event ev returns for the status before (nil: none), in one
// transaction under the monitor's row lock, so that two checks finishing
// together tell a change once.
func (s *Store) RecordHealthCheck(ctx context.Context, credentialID string, hc *credvault.HealthCheck, status string, ev func(before string) *credvault.AuditEvent) error {
	return s.inTx(ctx, "health check", func(tx *txn) error {
		var before string
		if err := tx.GetContext(ctx, &before, `SELECT health_status FROM credential_monitors WHERE credential_id = $1 FOR UPDATE`, credentialID); err != nil {
			return translate(err, "credential monitor")
		}
		if err := tx.QueryRowxContext(ctx, `
			INSERT INTO credential_health_checks (credential_id, slot, ok, status_class, status, latency_ms, code)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, created_at`,
			credentialID, hc.Slot, hc.OK, hc.StatusClass, hc.Status, hc.LatencyMS, hc.Code).Scan(&hc.ID, &hc.CreatedAt); err != nil {
			return translate(err, "health check")
		}
		if _, err := tx.ExecContext(ctx, `UPDATE credential_monitors SET health_status = $2 WHERE credential_id = $1`, credentialID, status); err != nil {
			return translate(err, "credential monitor")
		}
		if e := ev(before); e != nil {
			return insertAudit(ctx, tx, e)
		}
		return nil
	})
}
