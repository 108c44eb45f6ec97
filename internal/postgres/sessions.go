package postgres

import (
	"context"
	"database/sql"
	"time"

	"github.com/lib/pq"

	"credvault/internal/credvault"
)

// CreateSignInLink stores a link (its token's hash only) with its audit
// event.
func (s *Store) CreateSignInLink(ctx context.Context, l *credvault.SignInLinkRecord, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "sign-in link", func(tx *txn) error {
		if err := tx.QueryRowxContext(ctx, `
			INSERT INTO sign_in_links (org_id, user_id, token_hash, created_by, expires_at)
			VALUES ($1, $2, $3, $4, $5) RETURNING id, created_at`,
			l.OrgID, l.UserID, l.TokenHash[:], l.CreatedBy, l.ExpiresAt).Scan(&l.ID, &l.CreatedAt); err != nil {
			return translate(err, "sign-in link")
		}
		ev.Data["link_id"] = l.ID
		return insertAudit(ctx, tx, ev)
	})
}

type linkRow struct {
	ID        string       `db:"id"`
	OrgID     string       `db:"org_id"`
	UserID    string       `db:"user_id"`
	CreatedBy string       `db:"created_by"`
	ExpiresAt time.Time    `db:"expires_at"`
	UsedAt    sql.NullTime `db:"used_at"`
	CreatedAt time.Time    `db:"created_at"`
}

const linkColumns = `id, org_id, user_id, created_by, expires_at, used_at, created_at`

// UseSignInLink accepts a link once: the UPDATE that marks it used is the
// check, so two concurrent redemptions cannot both succeed. A link that is
// not accepted is returned as stored (used or expired), or ENOTFOUND.
func (s *Store) UseSignInLink(ctx context.Context, hash [32]byte, now time.Time) (*credvault.SignInLinkRecord, bool, error) {
	var r linkRow
	err := s.db.GetContext(ctx, &r, `
		UPDATE sign_in_links SET used_at = $2
		WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
		RETURNING `+linkColumns, hash[:], now)
	accepted := err == nil
	if err == sql.ErrNoRows {
		err = s.db.GetContext(ctx, &r, `SELECT `+linkColumns+` FROM sign_in_links WHERE token_hash = $1`, hash[:])
	}
	if err != nil {
		return nil, false, translate(err, "sign-in link")
	}
	l := &credvault.SignInLinkRecord{ID: r.ID, OrgID: r.OrgID, UserID: r.UserID, TokenHash: hash,
		CreatedBy: r.CreatedBy, ExpiresAt: r.ExpiresAt, CreatedAt: r.CreatedAt}
	if r.UsedAt.Valid {
		l.UsedAt = &r.UsedAt.Time
	}
	return l, accepted, nil
}

// CreateSession stores a session (its token's hash only) with its audit
// event.
func (s *Store) CreateSession(ctx context.Context, sess *credvault.Session, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "session", func(tx *txn) error {
		if err := tx.QueryRowxContext(ctx, `
			INSERT INTO console_sessions (token_hash, org_id, user_id, key_id, method, created_at, last_seen_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $6, $7) RETURNING id`,
			sess.TokenHash[:], sess.OrgID, sess.UserID, sess.KeyID, sess.Method, sess.CreatedAt, sess.ExpiresAt).Scan(&sess.ID); err != nil {
			return translate(err, "session")
		}
		return insertAudit(ctx, tx, ev)
	})
}

// FindSession reads a session with its user's current role and, for a key
// session, the key's scopes and state: one query per console request, so
// that a deleted or demoted user's session is refused by every instance at
// once (the rows are gone; no cache to invalidate).
func (s *Store) FindSession(ctx context.Context, hash [32]byte) (*credvault.Session, error) {
	var r struct {
		ID         string         `db:"id"`
		OrgID      string         `db:"org_id"`
		UserID     string         `db:"user_id"`
		KeyID      sql.NullString `db:"key_id"`
		Method     string         `db:"method"`
		CreatedAt  time.Time      `db:"created_at"`
		LastSeenAt time.Time      `db:"last_seen_at"`
		ExpiresAt  time.Time      `db:"expires_at"`
		Role       string         `db:"role"`
		Email      string         `db:"email"`
		Scopes     pq.StringArray `db:"scopes"`
		KeyExpires sql.NullTime   `db:"key_expires_at"`
		KeyRevoked bool           `db:"key_revoked"`
		KeyFormat  sql.NullString `db:"key_format"`
		KeySigned  sql.NullInt64  `db:"key_signing_version"`
		KeyRate    sql.NullInt64  `db:"key_rate_limit"`
		KeyWindow  sql.NullInt64  `db:"key_rate_window_secs"`
		KeyOff     bool           `db:"key_disabled"`
		IntegOff   bool           `db:"key_integration_disabled"`
	}
	err := s.db.GetContext(ctx, &r, `
		SELECT s.id, s.org_id, s.user_id, s.key_id, s.method, s.created_at, s.last_seen_at, s.expires_at,
		       u.role, u.email, k.scopes, k.expires_at AS key_expires_at,
		       k.format AS key_format, k.signing_version AS key_signing_version,
		       k.rate_limit AS key_rate_limit, k.rate_window_secs AS key_rate_window_secs,
		       (s.key_id IS NOT NULL AND (k.id IS NULL OR k.revoked_at IS NOT NULL)) AS key_revoked,
		       COALESCE(k.disabled_at IS NOT NULL, false) AS key_disabled,
		       COALESCE(NOT i.enabled, false) AS key_integration_disabled
		FROM console_sessions s
		JOIN users u ON u.id = s.user_id AND u.org_id = s.org_id
		LEFT JOIN api_keys k ON k.id = s.key_id
		LEFT JOIN integrations i ON i.id = k.integration_id
		WHERE s.token_hash = $1`, hash[:])
	if err != nil {
		return nil, translate(err, "session")
	}
	sess := &credvault.Session{ID: r.ID, TokenHash: hash, OrgID: r.OrgID, UserID: r.UserID, Method: r.Method,
		CreatedAt: r.CreatedAt, LastSeenAt: r.LastSeenAt, ExpiresAt: r.ExpiresAt,
		Role: credvault.Role(r.Role), Email: r.Email, KeyScopes: []string(r.Scopes), KeyGone: r.KeyRevoked}
	if r.KeyID.Valid {
		sess.KeyID = &r.KeyID.String
	}
	switch {
	case r.KeyOff:
		sess.KeyOff = credvault.VerifyDisabled
	case r.IntegOff:
		sess.KeyOff = credvault.VerifyIntegrationDisabled
	}
	if r.KeyExpires.Valid {
		sess.KeyEnds = &r.KeyExpires.Time
	}
	sess.KeyFormat, sess.KeySigningVersion = r.KeyFormat.String, int(r.KeySigned.Int64)
	if r.KeyRate.Valid && r.KeyWindow.Valid {
		sess.KeyRateLimit = &credvault.RateLimit{Requests: int(r.KeyRate.Int64), WindowSeconds: int(r.KeyWindow.Int64)}
	}
	return sess, nil
}

// TouchSession moves a session's idle timer.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE console_sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2`, id, at)
	return translate(err, "session")
}

// DeleteSession removes a session (idempotent), with an audit event when
// one is given.
func (s *Store) DeleteSession(ctx context.Context, hash [32]byte, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "session", func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE token_hash = $1`, hash[:]); err != nil {
			return translate(err, "session")
		}
		return insertAudit(ctx, tx, ev)
	})
}

// PurgeSessions deletes ended sessions and long-expired sign-in links.
func (s *Store) PurgeSessions(ctx context.Context, idleBefore, now, linksBefore time.Time) (int64, error) {
	r1, err := s.db.ExecContext(ctx, `DELETE FROM console_sessions WHERE last_seen_at < $1 OR expires_at <= $2`, idleBefore, now)
	if err != nil {
		return 0, translate(err, "session")
	}
	r2, err := s.db.ExecContext(ctx, `DELETE FROM sign_in_links WHERE expires_at < $1`, linksBefore)
	if err != nil {
		return 0, translate(err, "sign-in link")
	}
	n1, _ := r1.RowsAffected()
	n2, _ := r2.RowsAffected()
	return n1 + n2, nil
}

// endSessions deletes every console session of a user, inside the
// transaction that changes their role.
func endSessions(ctx context.Context, tx *txn, userID string) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE user_id = $1`, userID)
	return translate(err, "session")
}

// callOutcomes classifies credential_usage rows per day by the upstream's
// status (see credvault.CallDayCount).
const callOutcomes = `SELECT date_trunc('day', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day,
			count(*) FILTER (WHERE status BETWEEN 100 AND 399) AS ok,
			count(*) FILTER (WHERE status IN (401, 403)) AS rejected,
			count(*) FILTER (WHERE status = 429) AS rate_limited,
			count(*) FILTER (WHERE status NOT BETWEEN 100 AND 399 AND status NOT IN (401, 403, 429)) AS failed
		FROM credential_usage`

// CredentialCallsPerDay counts a credential's uses per UTC day since then,
// by outcome.
func (s *Store) CredentialCallsPerDay(ctx context.Context, credentialID string, since time.Time) ([]credvault.CallDayCount, error) {
	var out []credvault.CallDayCount
	err := s.db.SelectContext(ctx, &out, callOutcomes+` WHERE credential_id = $1 AND created_at >= $2 GROUP BY 1 ORDER BY 1`,
		credentialID, since.UTC())
	return out, translate(err, "credential usage")
}

// OrgCallsPerDay counts the uses of every credential of the org per UTC
// day since then, by outcome.
func (s *Store) OrgCallsPerDay(ctx context.Context, orgID string, since time.Time) ([]credvault.CallDayCount, error) {
	var out []credvault.CallDayCount
	err := s.db.SelectContext(ctx, &out, callOutcomes+` WHERE org_id = $1 AND created_at >= $2 GROUP BY 1 ORDER BY 1`,
		orgID, since.UTC())
	return out, translate(err, "credential usage")
}

// CredentialsLastUsed returns the newest use of each named credential of
// the org (one index probe per credential).
func (s *Store) CredentialsLastUsed(ctx context.Context, orgID string, ids []string) (map[string]time.Time, error) {
	var rows []struct {
		ID string    `db:"id"`
		At time.Time `db:"at"`
	}
	err := s.db.SelectContext(ctx, &rows, `
		SELECT c.id, u.at FROM credentials c
		CROSS JOIN LATERAL (SELECT created_at AS at FROM credential_usage
			WHERE credential_id = c.id ORDER BY created_at DESC LIMIT 1) u
		WHERE c.org_id = $1 AND c.id = ANY($2::uuid[])`, orgID, pq.StringArray(ids))
	if err != nil {
		return nil, translate(err, "credential usage")
	}
	out := make(map[string]time.Time, len(rows))
	for _, r := range rows {
		out[r.ID] = r.At
	}
	return out, nil
}
