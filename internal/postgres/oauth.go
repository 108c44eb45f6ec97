package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"credvault/internal/credvault"
)

// oauthLockClass is the first key of the advisory locks that make one
// refresh per credential at a time across replicas; the second key is
// hashtext(credential id). A hash collision only serializes two refreshes.
const oauthLockClass = 0x0A17

const connectionColumns = `credential_id, app_id, grant_type, scopes, scopes_granted, status, refresh_ciphertext,
	expires_at, refresh_at, last_refreshed_at, last_error, failures, next_attempt_at, token_version`

type connectionRow struct {
	CredentialID      string         `db:"credential_id"`
	AppID             string         `db:"app_id"`
	Grant             string         `db:"grant_type"`
	Scopes            pq.StringArray `db:"scopes"`
	ScopesGranted     pq.StringArray `db:"scopes_granted"`
	Status            string         `db:"status"`
	RefreshCiphertext string         `db:"refresh_ciphertext"`
	ExpiresAt         sql.NullTime   `db:"expires_at"`
	RefreshAt         sql.NullTime   `db:"refresh_at"`
	LastRefreshedAt   sql.NullTime   `db:"last_refreshed_at"`
	LastError         string         `db:"last_error"`
	Failures          int            `db:"failures"`
	NextAttemptAt     sql.NullTime   `db:"next_attempt_at"`
	TokenVersion      int64          `db:"token_version"`
}

func (r *connectionRow) toDomain() *credvault.OAuthConnection {
	o := &credvault.OAuthConnection{
		AppID: r.AppID, Grant: r.Grant, Scopes: nonNil(r.Scopes), ScopesGranted: nonNil(r.ScopesGranted),
		Status: r.Status, RefreshCiphertext: r.RefreshCiphertext, ExpiresAt: nullTime(r.ExpiresAt),
		RefreshAt: nullTime(r.RefreshAt), LastRefreshedAt: nullTime(r.LastRefreshedAt), LastError: r.LastError,
		Failures: r.Failures, NextAttemptAt: nullTime(r.NextAttemptAt), TokenVersion: r.TokenVersion,
	}
	return o
}

func nonNil(a pq.StringArray) []string {
	if a == nil {
		return []string{}
	}
	return []string(a)
}

func kindOf(c *credvault.Credential) string {
	if c.Kind == "" {
		return credvault.KindStatic
	}
	return c.Kind
}

// loadConnections fills OAuth on the oauth2 credentials among cs.
func loadConnections(ctx context.Context, q sqlx.QueryerContext, cs ...*credvault.Credential) error {
	byID := map[string]*credvault.Credential{}
	var ids []string
	for _, c := range cs {
		if c.Kind == credvault.KindOAuth2 {
			byID[c.ID] = c
			ids = append(ids, c.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var rows []connectionRow
	if err := sqlx.SelectContext(ctx, q, &rows, `SELECT `+connectionColumns+` FROM credential_oauth
		WHERE credential_id = ANY($1::uuid[])`, pq.StringArray(ids)); err != nil {
		return translate(err, "oauth connection")
	}
	for i := range rows {
		byID[rows[i].CredentialID].OAuth = rows[i].toDomain()
	}
	return nil
}

// writeConnection inserts or updates c's connection row.
func writeConnection(ctx context.Context, tx *txn, c *credvault.Credential) error {
	o := c.OAuth
	_, err := tx.ExecContext(ctx, `
		INSERT INTO credential_oauth (credential_id, org_id, app_id, grant_type, scopes, scopes_granted, status,
			refresh_ciphertext, expires_at, refresh_at, last_refreshed_at, last_error, failures, next_attempt_at, token_version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		ON CONFLICT (credential_id) DO UPDATE SET scopes_granted = $6, status = $7, refresh_ciphertext = $8,
			expires_at = $9, refresh_at = $10, last_refreshed_at = $11, last_error = $12, failures = $13,
			next_attempt_at = $14, token_version = $15, updated_at = now()`,
		c.ID, c.OrgID, o.AppID, o.Grant, pq.StringArray(o.Scopes), pq.StringArray(o.ScopesGranted), o.Status,
		o.RefreshCiphertext, o.ExpiresAt, o.RefreshAt, o.LastRefreshedAt, o.LastError, o.Failures, o.NextAttemptAt, o.TokenVersion)
	return translate(err, "oauth connection")
}

// CreateOAuthCredential stores an oauth2 credential, its connection, its
// shares, the authorization (if any) and the events in one transaction.
func (s *Store) CreateOAuthCredential(ctx context.Context, c *credvault.Credential, auth *credvault.OAuthAuthorization, evs ...*credvault.AuditEvent) error {
	return s.inTx(ctx, "credential", func(tx *txn) error {
		if err := insertCredential(ctx, tx, c); err != nil {
			return err
		}
		if err := writeShares(ctx, tx, c); err != nil {
			return err
		}
		if err := writeConnection(ctx, tx, c); err != nil {
			return err
		}
		if err := insertAuthorization(ctx, tx, auth); err != nil {
			return err
		}
		for _, ev := range evs {
			if err := insertAudit(ctx, tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
}

func insertAuthorization(ctx context.Context, tx *txn, a *credvault.OAuthAuthorization) error {
	if a == nil {
		return nil
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO oauth_states (state_hash, org_id, user_id, credential_id, code_verifier, redirect_uri, return_to, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		a.StateHash[:], a.OrgID, a.UserID, a.CredentialID, a.CodeVerifier, a.RedirectURI, a.ReturnTo, a.ExpiresAt)
	return translate(err, "oauth authorization")
}

// StartOAuthAuthorization stores a new authorization for c (reconnect),
// dropping the expired ones of every credential on the way.
func (s *Store) StartOAuthAuthorization(ctx context.Context, c *credvault.Credential, auth *credvault.OAuthAuthorization, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "oauth authorization", func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM oauth_states WHERE expires_at < now() - interval '1 day'`); err != nil {
			return translate(err, "oauth authorization")
		}
		if err := insertAuthorization(ctx, tx, auth); err != nil {
			return err
		}
		return insertAudit(ctx, tx, ev)
	})
}

// TakeOAuthAuthorization deletes and returns the authorization with that
// state hash, so that a state works once even when two callbacks race.
func (s *Store) TakeOAuthAuthorization(ctx context.Context, hash [32]byte) (*credvault.OAuthAuthorization, error) {
	var row struct {
		OrgID        string         `db:"org_id"`
		UserID       sql.NullString `db:"user_id"`
		CredentialID string         `db:"credential_id"`
		CodeVerifier string         `db:"code_verifier"`
		RedirectURI  string         `db:"redirect_uri"`
		ReturnTo     string         `db:"return_to"`
		ExpiresAt    time.Time      `db:"expires_at"`
	}
	err := s.db.GetContext(ctx, &row, `DELETE FROM oauth_states WHERE state_hash = $1
		RETURNING org_id, user_id, credential_id, code_verifier, redirect_uri, return_to, expires_at`, hash[:])
	if err != nil {
		return nil, translate(err, "oauth authorization")
	}
	return &credvault.OAuthAuthorization{StateHash: hash, OrgID: row.OrgID, UserID: nullString(row.UserID),
		CredentialID: row.CredentialID, CodeVerifier: row.CodeVerifier, RedirectURI: row.RedirectURI,
		ReturnTo: row.ReturnTo, ExpiresAt: row.ExpiresAt}, nil
}

// LockOAuthCredential holds a session advisory lock on the credential for
// the length of fn, on a connection of its own, so that "refreshing" can
// be committed and shown while the token request runs, and a crashed
// replica's lock ends with its connection.
func (s *Store) LockOAuthCredential(ctx context.Context, orgID, id string, wait bool, fn func(c *credvault.Credential, mark func() error) (*credvault.OAuthWrite, error)) (bool, error) {
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return false, translate(err, "oauth lock")
	}
	defer conn.Close()
	if wait {
		_, err = conn.ExecContext(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, oauthLockClass, id)
	} else {
		var got bool
		err = conn.GetContext(ctx, &got, `SELECT pg_try_advisory_lock($1, hashtext($2))`, oauthLockClass, id)
		if err == nil && !got {
			return false, nil
		}
	}
	if err != nil {
		return false, translate(err, "oauth lock")
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(uctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, oauthLockClass, id); err != nil {
			// Unsure whether the lock is still held: drop the connection,
			// which ends every lock it holds.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	c, err := lockedCredential(ctx, conn, orgID, id)
	if err != nil {
		return true, err
	}
	marked := false
	mark := func() error {
		marked = true
		_, err := conn.ExecContext(ctx, `UPDATE credential_oauth SET status = 'refreshing', updated_at = now() WHERE credential_id = $1`, id)
		return translate(err, "oauth connection")
	}
	w, ferr := fn(c, mark)
	if w == nil {
		if !marked {
			return true, ferr
		}
		// Put back the status mark changed: fn stopped after it.
		w = &credvault.OAuthWrite{}
	}
	// The write outlives a caller that gave up: its tokens are spent.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := writeRefresh(wctx, conn, c, w); err != nil {
		return true, err
	}
	if s.local != nil {
		s.local("cred:" + c.ID)
	}
	return true, ferr
}

// writeRefresh stores what a locked refresh decided in one statement (one
// round trip, atomic like a transaction): the access token when it
// changed, the connection, the audit events, and the "cred:<id>"
// announcement that drops every instance's cached token.
func writeRefresh(ctx context.Context, conn *sqlx.Conn, c *credvault.Credential, w *credvault.OAuthWrite) error {
	o := c.OAuth
	orgs, actorTypes, actorIDs, actions, resTypes, resIDs, reqIDs, datas := make([]string, len(w.Events)), make([]string, len(w.Events)),
		make([]string, len(w.Events)), make([]string, len(w.Events)), make([]string, len(w.Events)), make([]string, len(w.Events)),
		make([]string, len(w.Events)), make([]string, len(w.Events))
	for i, ev := range w.Events {
		data, err := json.Marshal(ev.Data)
		if err != nil {
			return credvault.Wrap(credvault.EINTERNAL, err, "encode audit event")
		}
		orgs[i], actorTypes[i], actorIDs[i], actions[i] = ev.OrgID, ev.ActorType, ev.ActorID, ev.Action
		resTypes[i], resIDs[i], reqIDs[i], datas[i] = ev.ResourceType, ev.ResourceID, ev.RequestID, string(data)
	}
	_, err := conn.ExecContext(ctx, `
		WITH cred AS (
			UPDATE credentials SET ciphertext = $3, key_version = $4, hint = $5, rotated_at = $6, updated_at = now()
			WHERE id = $1 AND $2
		), conn AS (
			UPDATE credential_oauth SET scopes_granted = $7, status = $8, refresh_ciphertext = $9, expires_at = $10,
				refresh_at = $11, last_refreshed_at = $12, last_error = $13, failures = $14, next_attempt_at = $15,
				token_version = $16, updated_at = now()
			WHERE credential_id = $1
		), events AS (
			INSERT INTO audit_events (org_id, actor_type, actor_id, action, resource_type, resource_id, request_id, data)
			SELECT v.org_id, v.actor_type, v.actor_id, v.action, v.resource_type, v.resource_id, v.request_id, v.data::jsonb
			FROM unnest($17::uuid[], $18::text[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[])
				AS v(org_id, actor_type, actor_id, action, resource_type, resource_id, request_id, data)
		)
		SELECT pg_notify($25, 'cred:' || $1::text)`,
		c.ID, w.TokenChanged, c.Ciphertext, c.KeyVersion, c.Hint, c.RotatedAt,
		pq.StringArray(nonNil(o.ScopesGranted)), o.Status, o.RefreshCiphertext, o.ExpiresAt, o.RefreshAt, o.LastRefreshedAt,
		o.LastError, o.Failures, o.NextAttemptAt, o.TokenVersion,
		pq.StringArray(orgs), pq.StringArray(actorTypes), pq.StringArray(actorIDs), pq.StringArray(actions),
		pq.StringArray(resTypes), pq.StringArray(resIDs), pq.StringArray(reqIDs), pq.StringArray(datas), InvalidationChannel)
	return translate(err, "oauth connection")
}

// lockedCredential reads an oauth2 credential and its connection in one
// query, on the connection that holds its lock. Shares are left out: a
// refresh neither needs nor changes them.
func lockedCredential(ctx context.Context, q sqlx.QueryerContext, orgID, id string) (*credvault.Credential, error) {
	if !isUUID(id) {
		return nil, credvault.Errorf(credvault.ENOTFOUND, "credential not found")
	}
	var row struct {
		credentialRow
		connectionRow
	}
	err := sqlx.GetContext(ctx, q, &row, `SELECT `+prefixed("c.", credentialColumns)+`, `+prefixed("o.", connectionColumns)+`
		FROM credentials c JOIN credential_oauth o ON o.credential_id = c.id WHERE c.org_id = $1 AND c.id = $2`, orgID, id)
	if err != nil {
		return nil, translate(err, "credential")
	}
	c, err := row.credentialRow.toDomain()
	if err != nil {
		return nil, err
	}
	c.OAuth = row.connectionRow.toDomain()
	return c, nil
}

// DueOAuthCredentials lists connections whose refresh time and backoff
// passed at now, earliest first.
func (s *Store) DueOAuthCredentials(ctx context.Context, now time.Time, n int) ([]credvault.OAuthDue, error) {
	var due []credvault.OAuthDue
	err := s.db.SelectContext(ctx, &due, `
		SELECT org_id, credential_id FROM credential_oauth
		WHERE status IN ('connected', 'refreshing', 'refresh_failing') AND refresh_at <= $1
		  AND (next_attempt_at IS NULL OR next_attempt_at <= $1)
		ORDER BY refresh_at LIMIT $2`, now, n)
	return due, translate(err, "oauth connections")
}

// encodeParams stores an app's extra authorization parameters.
func encodeParams(m map[string]string) []byte {
	if len(m) == 0 {
		return []byte("{}")
	}
	b, _ := json.Marshal(m)
	return b
}
