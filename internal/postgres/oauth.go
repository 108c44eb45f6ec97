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
		return insertAudits(ctx, tx, evs)
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
	if err := s.writeRefresh(wctx, conn, c, w); err != nil {
		return true, err
	}
	if s.local != nil {
		s.local("cred:" + c.ID)
	}
	return true, ferr
}

// writeRefresh stores what one locked refresh decided.
func (s *Store) writeRefresh(ctx context.Context, conn *sqlx.Conn, c *credvault.Credential, w *credvault.OAuthWrite) error {
	return s.writeRefreshes(ctx, conn, []credvault.OAuthBatchItem{{Credential: c, Write: w}})
}

// refreshJSON is one connection's row in writeRefreshes' document.
type refreshJSON struct {
	ID                string     `json:"id"`
	TokenChanged      bool       `json:"token_changed"`
	Ciphertext        string     `json:"ciphertext"`
	KeyVersion        int        `json:"key_version"`
	Hint              string     `json:"hint"`
	RotatedAt         time.Time  `json:"rotated_at"`
	ScopesGranted     []string   `json:"scopes_granted"`
	Status            string     `json:"status"`
	RefreshCiphertext string     `json:"refresh_ciphertext"`
	ExpiresAt         *time.Time `json:"expires_at"`
	RefreshAt         *time.Time `json:"refresh_at"`
	LastRefreshedAt   *time.Time `json:"last_refreshed_at"`
	LastError         string     `json:"last_error"`
	Failures          int        `json:"failures"`
	NextAttemptAt     *time.Time `json:"next_attempt_at"`
	TokenVersion      int64      `json:"token_version"`
}

// writeRefreshes stores what refreshes decided, however many connections,
// on conn: the access tokens that changed, the connections, the audit
// events, and the "cred:<id>" announcements that drop every instance's
// cached tokens, in one statement (one round trip, atomic like a
// transaction). When a status change emits an event (oauth.*), the
// statement, the events and their deliveries run in one transaction
// instead: the change and its event are stored together or not at all.
func (s *Store) writeRefreshes(ctx context.Context, conn *sqlx.Conn, items []credvault.OAuthBatchItem) error {
	var emits []*credvault.AuditEvent
	for _, it := range items {
		for _, ev := range it.Write.Events {
			if ev.Emit != nil {
				emits = append(emits, ev)
			}
		}
	}
	if len(emits) == 0 {
		return execRefreshes(ctx, conn, items)
	}
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return translate(err, "oauth connection")
	}
	return s.runTx(ctx, tx, "oauth connection", func(t *txn) error {
		if err := execRefreshes(ctx, t, items); err != nil {
			return err
		}
		return insertAudits(ctx, t, emits)
	})
}

// execRefreshes is writeRefreshes' statement; events that emit are left
// to the caller.
func execRefreshes(ctx context.Context, q sqlx.ExecerContext, items []credvault.OAuthBatchItem) error {
	rows := make([]refreshJSON, len(items))
	var evs []*credvault.AuditEvent
	for i, it := range items {
		c, o := it.Credential, it.Credential.OAuth
		rows[i] = refreshJSON{ID: c.ID, TokenChanged: it.Write.TokenChanged, Ciphertext: c.Ciphertext, KeyVersion: c.KeyVersion,
			Hint: c.Hint, RotatedAt: c.RotatedAt, ScopesGranted: nonNil(o.ScopesGranted), Status: o.Status,
			RefreshCiphertext: o.RefreshCiphertext, ExpiresAt: o.ExpiresAt, RefreshAt: o.RefreshAt,
			LastRefreshedAt: o.LastRefreshedAt, LastError: o.LastError, Failures: o.Failures,
			NextAttemptAt: o.NextAttemptAt, TokenVersion: o.TokenVersion}
		for _, ev := range it.Write.Events {
			if ev.Emit == nil {
				evs = append(evs, ev)
			}
		}
	}
	doc, err := json.Marshal(rows)
	if err != nil {
		return credvault.Wrap(credvault.EINTERNAL, err, "encode oauth connections")
	}
	audit, err := json.Marshal(evs)
	if err != nil {
		return credvault.Wrap(credvault.EINTERNAL, err, "encode audit events")
	}
	_, err = q.ExecContext(ctx, `
		WITH v AS (
			SELECT * FROM jsonb_to_recordset($1::jsonb) AS v(id uuid, token_changed boolean, ciphertext text,
				key_version integer, hint text, rotated_at timestamptz, scopes_granted text[], status text,
				refresh_ciphertext text, expires_at timestamptz, refresh_at timestamptz, last_refreshed_at timestamptz,
				last_error text, failures integer, next_attempt_at timestamptz, token_version bigint)
		), cred AS (
			UPDATE credentials c SET ciphertext = v.ciphertext, key_version = v.key_version, hint = v.hint,
				rotated_at = v.rotated_at, updated_at = now()
			FROM v WHERE c.id = v.id AND v.token_changed
		), conn AS (
			UPDATE credential_oauth o SET scopes_granted = v.scopes_granted, status = v.status,
				refresh_ciphertext = v.refresh_ciphertext, expires_at = v.expires_at, refresh_at = v.refresh_at,
				last_refreshed_at = v.last_refreshed_at, last_error = v.last_error, failures = v.failures,
				next_attempt_at = v.next_attempt_at, token_version = v.token_version, updated_at = now()
			FROM v WHERE o.credential_id = v.id
		), events AS (
			INSERT INTO audit_events (org_id, actor_type, actor_id, action, resource_type, resource_id, request_id, data)
			SELECT NULLIF(e.org_id, '')::uuid, e.actor_type, e.actor_id, e.action, e.resource_type, e.resource_id,
				e.request_id, COALESCE(e.data, '{}')
			FROM jsonb_to_recordset($2::jsonb) AS e(org_id text, actor_type text, actor_id text, action text,
				resource_type text, resource_id text, request_id text, data jsonb)
		)
		SELECT pg_notify($3, 'cred:' || v.id::text) FROM v`, doc, nullJSONArray(audit), InvalidationChannel)
	return translate(err, "oauth connection")
}

// nullJSONArray turns an encoded nil slice ("null") into "[]".
func nullJSONArray(b []byte) []byte {
	if string(b) == "null" {
		return []byte("[]")
	}
	return b
}

// dueCondition selects connections due for a proactive refresh at $1:
// connected or failing, refresh time passed, backoff over.
const dueCondition = `status IN ('connected', 'refreshing', 'refresh_failing') AND refresh_at <= $1
	AND (next_attempt_at IS NULL OR next_attempt_at <= $1)`

// ClaimDueOAuth takes, in one statement, the advisory locks of up to limit
// due connections (earliest refresh time first; a connection another
// holds is skipped), then reads those still due under the locks (a fresh
// snapshot: one another replica refreshed just before is no longer due)
// and marks them "refreshing", in a second statement. The locks live on a
// connection of the claim's own until Release.
func (s *Store) ClaimDueOAuth(ctx context.Context, now time.Time, limit int) (credvault.OAuthClaim, error) {
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return nil, translate(err, "oauth lock")
	}
	cl := &oauthClaim{store: s, conn: conn}
	var ids []string
	// The candidates (4 times limit: other batches of this run hold the
	// earliest) are materialized first and tried in order; the outer LIMIT
	// stops pulling once limit are locked, so a lock is tried, and taken,
	// only for rows the statement returns.
	err = conn.SelectContext(ctx, &ids, `
		WITH due AS MATERIALIZED (
			SELECT credential_id FROM credential_oauth WHERE `+dueCondition+` ORDER BY refresh_at LIMIT 4 * $2
		)
		SELECT credential_id FROM due WHERE pg_try_advisory_lock($3, hashtext(credential_id::text)) LIMIT $2`, now, limit, oauthLockClass)
	if err != nil || len(ids) == 0 {
		cl.Release()
		return &oauthClaim{}, translate(err, "oauth lock")
	}
	var rows []struct {
		credentialRow
		connectionRow
	}
	err = conn.SelectContext(ctx, &rows, `
		WITH marked AS (
			UPDATE credential_oauth SET status = 'refreshing', updated_at = now()
			WHERE credential_id = ANY($2::uuid[]) AND `+dueCondition+`
			RETURNING credential_id
		)
		SELECT `+prefixed("c.", credentialColumns)+`, `+prefixed("o.", connectionColumns)+`
		FROM credentials c JOIN credential_oauth o ON o.credential_id = c.id
		WHERE c.id IN (SELECT credential_id FROM marked) ORDER BY o.refresh_at`, now, pq.StringArray(ids))
	if err != nil {
		cl.Release()
		return nil, translate(err, "oauth connections")
	}
	for i := range rows {
		c, err := rows[i].credentialRow.toDomain()
		if err != nil {
			cl.Release()
			return nil, err
		}
		c.OAuth = rows[i].connectionRow.toDomain()
		cl.creds = append(cl.creds, c)
	}
	return cl, nil
}

// oauthClaim is a claimed batch: its locks' connection and what was read.
type oauthClaim struct {
	store *Store
	conn  *sqlx.Conn
	creds []*credvault.Credential
}

func (c *oauthClaim) Credentials() []*credvault.Credential { return c.creds }

// Store writes the outcomes in one statement and tells this instance's
// caches at once.
func (c *oauthClaim) Store(ctx context.Context, items []credvault.OAuthBatchItem) error {
	if len(items) == 0 {
		return nil
	}
	if err := c.store.writeRefreshes(ctx, c.conn, items); err != nil {
		return err
	}
	if c.store.local != nil {
		payloads := make([]string, len(items))
		for i, it := range items {
			payloads[i] = "cred:" + it.Credential.ID
		}
		c.store.local(payloads...)
	}
	return nil
}

// Release ends every lock the claim's connection holds (only the claim's:
// the connection is its own) and gives the connection back; when unsure
// the locks ended, it drops the connection, which ends them.
func (c *oauthClaim) Release() {
	if c.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.conn.ExecContext(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
		_ = c.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	_ = c.conn.Close()
	c.conn = nil
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

// encodeParams stores an app's extra authorization parameters.
func encodeParams(m map[string]string) []byte {
	if len(m) == 0 {
		return []byte("{}")
	}
	b, _ := json.Marshal(m)
	return b
}
