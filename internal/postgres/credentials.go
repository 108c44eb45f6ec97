package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"time"

	"github.com/lib/pq"

	"credvault/internal/credvault"
)

// #nosec G101 -- column names, not a credential
const credentialColumns = `id, org_id, owner_id, name, service, placement, param_name, value_prefix, base_url,
	allowed_hosts, ciphertext, key_version, hint, sharing_mode, test_method, test_path, test_expect_status,
	test_headers, created_at, updated_at, rotated_at, username, last_used_at, kind`

type credentialRow struct {
	ID               string         `db:"id"`
	OrgID            string         `db:"org_id"`
	OwnerID          sql.NullString `db:"owner_id"`
	Name             string         `db:"name"`
	Service          string         `db:"service"`
	Placement        string         `db:"placement"`
	ParamName        string         `db:"param_name"`
	ValuePrefix      string         `db:"value_prefix"`
	BaseURL          string         `db:"base_url"`
	AllowedHosts     pq.StringArray `db:"allowed_hosts"`
	Ciphertext       string         `db:"ciphertext"`
	KeyVersion       int            `db:"key_version"`
	Hint             string         `db:"hint"`
	SharingMode      string         `db:"sharing_mode"`
	TestMethod       string         `db:"test_method"`
	TestPath         string         `db:"test_path"`
	TestExpectStatus int            `db:"test_expect_status"`
	TestHeaders      []byte         `db:"test_headers"`
	CreatedAt        time.Time      `db:"created_at"`
	UpdatedAt        time.Time      `db:"updated_at"`
	RotatedAt        time.Time      `db:"rotated_at"`
	Username         string         `db:"username"`
	LastUsedAt       sql.NullTime   `db:"last_used_at"`
	Kind             string         `db:"kind"`
}

func (r *credentialRow) toDomain() (*credvault.Credential, error) {
	c := &credvault.Credential{
		ID: r.ID, OrgID: r.OrgID, OwnerID: nullString(r.OwnerID), Name: r.Name, Service: r.Service,
		Placement: r.Placement, ParamName: r.ParamName, ValuePrefix: r.ValuePrefix, BaseURL: r.BaseURL,
		AllowedHosts: []string(r.AllowedHosts), Ciphertext: r.Ciphertext, KeyVersion: r.KeyVersion, Hint: r.Hint,
		Sharing:   credvault.Sharing{Mode: r.SharingMode, Members: []credvault.Share{}},
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, RotatedAt: r.RotatedAt,
		Username: r.Username, LastUsedAt: nullTime(r.LastUsedAt), Kind: r.Kind,
	}
	if c.AllowedHosts == nil {
		c.AllowedHosts = []string{}
	}
	if r.TestMethod != "" {
		c.TestRequest = &credvault.TestRequest{Method: r.TestMethod, Path: r.TestPath, ExpectStatus: r.TestExpectStatus}
		if err := json.Unmarshal(r.TestHeaders, &c.TestRequest.Headers); err != nil {
			return nil, credvault.Wrap(credvault.EINTERNAL, err, "decode test request headers")
		}
		if len(c.TestRequest.Headers) == 0 {
			c.TestRequest.Headers = nil
		}
	}
	return c, nil
}

// testFields flattens the test request into its columns.
func testFields(c *credvault.Credential) (method, path string, status int, headers []byte) {
	if c.TestRequest == nil {
		return "", "", 0, []byte("{}")
	}
	headers, _ = json.Marshal(c.TestRequest.Headers)
	if string(headers) == "null" {
		headers = []byte("{}")
	}
	return c.TestRequest.Method, c.TestRequest.Path, c.TestRequest.ExpectStatus, headers
}

// CreateCredential stores the credential, its shares and the audit event
// in one transaction. EINVALID when a shared user is not in the org.
func (s *Store) CreateCredential(ctx context.Context, c *credvault.Credential, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "credential", func(tx *txn) error {
		if err := insertCredential(ctx, tx, c); err != nil {
			return err
		}
		if err := writeShares(ctx, tx, c); err != nil {
			return err
		}
		return insertAudit(ctx, tx, ev)
	})
}

// insertCredential inserts c (static or oauth2) and reads it back into c,
// keeping the shares and OAuth connection c carries (written separately).
func insertCredential(ctx context.Context, tx *txn, c *credvault.Credential) error {
	m, p, st, hd := testFields(c)
	var row credentialRow
	err := tx.GetContext(ctx, &row, `
		INSERT INTO credentials (id, org_id, owner_id, name, service, placement, param_name, value_prefix, base_url,
			allowed_hosts, ciphertext, key_version, hint, sharing_mode, test_method, test_path, test_expect_status,
			test_headers, rotated_at, username, kind)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
		RETURNING `+credentialColumns,
		c.ID, c.OrgID, c.OwnerID, c.Name, c.Service, c.Placement, c.ParamName, c.ValuePrefix, c.BaseURL,
		pq.StringArray(c.AllowedHosts), c.Ciphertext, c.KeyVersion, c.Hint, c.Sharing.Mode, m, p, st, hd, c.RotatedAt, c.Username, kindOf(c))
	if err != nil {
		return translate(err, "credential")
	}
	stored, err := row.toDomain()
	if err != nil {
		return err
	}
	stored.Sharing.Members, stored.OAuth = c.Sharing.Members, c.OAuth
	*c = *stored
	return nil
}

// writeShares replaces the credential's shares; users must be in its org.
func writeShares(ctx context.Context, tx *txn, c *credvault.Credential) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM credential_shares WHERE credential_id = $1`, c.ID); err != nil {
		return translate(err, "credential shares")
	}
	if len(c.Sharing.Members) == 0 {
		return nil
	}
	users := make([]string, len(c.Sharing.Members))
	perms := make([]string, len(c.Sharing.Members))
	for i, m := range c.Sharing.Members {
		users[i], perms[i] = m.UserID, m.Permission
	}
	res, err := tx.ExecContext(ctx, `
		INSERT INTO credential_shares (credential_id, user_id, permission)
		SELECT $1, u.id, v.permission
		FROM unnest($2::uuid[], $3::text[]) AS v(user_id, permission)
		JOIN users u ON u.id = v.user_id AND u.org_id = $4`,
		c.ID, pq.StringArray(users), pq.StringArray(perms), c.OrgID)
	if err != nil {
		return translate(err, "credential shares")
	}
	if n, _ := res.RowsAffected(); int(n) != len(users) {
		return credvault.Errorf(credvault.EINVALID, "field \"sharing.members\" names a user who is not in your org")
	}
	return nil
}

// FindCredentialByID returns ENOTFOUND for an unknown id or one in
// another org. The credential, its shares and its OAuth connection come
// from one snapshot (a read-only REPEATABLE READ transaction).
func (s *Store) FindCredentialByID(ctx context.Context, orgID, id string) (*credvault.Credential, error) {
	if !isUUID(id) {
		return nil, credvault.Errorf(credvault.ENOTFOUND, "credential not found")
	}
	// The row, its shares and its OAuth connection are read in one
	// snapshot: read one by one, a refresh committed in between paired
	// the old access token's ciphertext with the new token's version and
	// expiry, a usable-looking credential carrying a revoked token.
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, translate(err, "credential")
	}
	defer tx.Rollback() // #nosec G104 -- read-only: nothing to keep or undo
	var row credentialRow
	if err := tx.GetContext(ctx, &row, `SELECT `+credentialColumns+` FROM credentials WHERE org_id = $1 AND id = $2`, orgID, id); err != nil {
		return nil, translate(err, "credential")
	}
	c, err := row.toDomain()
	if err != nil {
		return nil, err
	}
	if err := tx.SelectContext(ctx, &c.Sharing.Members, `
		SELECT user_id, permission FROM credential_shares WHERE credential_id = $1 ORDER BY user_id`, id); err != nil {
		return nil, translate(err, "credential shares")
	}
	if err := loadConnections(ctx, tx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// FindCredentials lists the credentials f.UserID may use (all of the org
// for a manager), filtered by service and scope, newest first.
func (s *Store) FindCredentials(ctx context.Context, orgID string, f credvault.CredentialFilter) ([]*credvault.Credential, error) {
	var user any
	if isUUID(f.UserID) {
		user = f.UserID
	}
	var rows []credentialRow
	at, id := keyset(f.Cursor)
	err := s.db.SelectContext(ctx, &rows, `
		SELECT `+prefixed("c.", credentialColumns)+` FROM credentials c
		WHERE c.org_id = $1
		  AND ($2 = '' OR c.service = $2)
		  AND ($3::timestamptz IS NULL OR (c.created_at, c.id) < ($3, $8::uuid))
		  AND ($4 OR c.owner_id = $5 OR c.sharing_mode = 'team'
		       OR (c.sharing_mode = 'members' AND EXISTS (
		           SELECT 1 FROM credential_shares s WHERE s.credential_id = c.id AND s.user_id = $5)))
		  AND ($6 = 'all' OR ($6 = 'mine' AND c.owner_id = $5) OR ($6 = 'shared' AND c.owner_id IS DISTINCT FROM $5))
		ORDER BY c.created_at DESC, c.id DESC LIMIT $7`,
		orgID, f.Service, at, f.Manager, user, f.Scope, limit(f.Limit), id)
	if err != nil {
		return nil, translate(err, "credentials")
	}
	out := make([]*credvault.Credential, len(rows))
	byID := map[string]*credvault.Credential{}
	ids := make([]string, len(rows))
	for i := range rows {
		c, err := rows[i].toDomain()
		if err != nil {
			return nil, err
		}
		out[i] = c
		byID[c.ID], ids[i] = c, c.ID
	}
	if len(ids) == 0 {
		return out, nil
	}
	var shares []struct {
		CredentialID string `db:"credential_id"`
		credvault.Share
	}
	if err := s.db.SelectContext(ctx, &shares, `
		SELECT credential_id, user_id, permission FROM credential_shares
		WHERE credential_id = ANY($1::uuid[]) ORDER BY user_id`, pq.StringArray(ids)); err != nil {
		return nil, translate(err, "credential shares")
	}
	for _, sh := range shares {
		c := byID[sh.CredentialID]
		c.Sharing.Members = append(c.Sharing.Members, sh.Share)
	}
	if err := loadConnections(ctx, s.db, out...); err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateCredential writes c's editable fields, and its ciphertext only
// when rotated (so that an edit racing with a rotation or a rewrap never
// puts an older ciphertext back), and tells every instance to drop its
// cached value.
func (s *Store) UpdateCredential(ctx context.Context, c *credvault.Credential, rotated bool, evs ...*credvault.AuditEvent) error {
	return s.inTx(ctx, "credential", func(tx *txn) error {
		m, p, st, hd := testFields(c)
		err := tx.QueryRowxContext(ctx, `
			UPDATE credentials SET name = $3, placement = $4, param_name = $5, value_prefix = $6, base_url = $7,
				allowed_hosts = $8, test_method = $9, test_path = $10, test_expect_status = $11, test_headers = $12,
				ciphertext = CASE WHEN $13 THEN $14 ELSE ciphertext END,
				key_version = CASE WHEN $13 THEN $15 ELSE key_version END,
				hint = CASE WHEN $13 THEN $16 ELSE hint END,
				rotated_at = CASE WHEN $13 THEN $17 ELSE rotated_at END,
				username = $18,
				updated_at = now()
			WHERE org_id = $1 AND id = $2 RETURNING updated_at`,
			c.OrgID, c.ID, c.Name, c.Placement, c.ParamName, c.ValuePrefix, c.BaseURL, pq.StringArray(c.AllowedHosts),
			m, p, st, hd, rotated, c.Ciphertext, c.KeyVersion, c.Hint, c.RotatedAt, c.Username).Scan(&c.UpdatedAt)
		if err != nil {
			return translate(err, "credential")
		}
		return finishCredentialChange(ctx, tx, c.ID, evs)
	})
}

// SetCredentialSharing replaces the mode and shares.
func (s *Store) SetCredentialSharing(ctx context.Context, c *credvault.Credential, evs ...*credvault.AuditEvent) error {
	return s.inTx(ctx, "credential", func(tx *txn) error {
		err := tx.QueryRowxContext(ctx, `UPDATE credentials SET sharing_mode = $3, updated_at = now()
			WHERE org_id = $1 AND id = $2 RETURNING updated_at`, c.OrgID, c.ID, c.Sharing.Mode).Scan(&c.UpdatedAt)
		if err != nil {
			return translate(err, "credential")
		}
		if err := writeShares(ctx, tx, c); err != nil {
			return err
		}
		return finishCredentialChange(ctx, tx, c.ID, evs)
	})
}

// DeleteCredential removes it (its shares and usage go with it).
func (s *Store) DeleteCredential(ctx context.Context, orgID, id string, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "credential", func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM credentials WHERE org_id = $1 AND id = $2`, orgID, id)
		if err != nil {
			return translate(err, "credential")
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return credvault.Errorf(credvault.ENOTFOUND, "credential not found")
		}
		return finishCredentialChange(ctx, tx, id, []*credvault.AuditEvent{ev})
	})
}

// finishCredentialChange announces the change and records its events.
func finishCredentialChange(ctx context.Context, tx *txn, id string, evs []*credvault.AuditEvent) error {
	tx.logChange(ChangeCredential, "cred:"+id)
	for _, ev := range evs {
		if err := insertAudit(ctx, tx, ev); err != nil {
			return err
		}
	}
	return nil
}

// RecentWorkflows lists the workflows that used the credential since then;
// credential tests are not workflows and are left out.
func (s *Store) RecentWorkflows(ctx context.Context, credentialID string, since time.Time) ([]credvault.WorkflowUse, error) {
	out := []credvault.WorkflowUse{}
	err := s.db.SelectContext(ctx, &out, `
		SELECT workflow_id, count(*) AS uses, max(created_at) AS last_used_at
		FROM credential_usage WHERE credential_id = $1 AND created_at >= $2 AND workflow_id NOT IN ('', $3)
		GROUP BY workflow_id ORDER BY max(created_at) DESC LIMIT 100`, credentialID, since, credvault.TestWorkflowID)
	return out, translate(err, "credential usage")
}

// FindUsage pages through a credential's usage, newest first.
func (s *Store) FindUsage(ctx context.Context, credentialID string, f credvault.UsageFilter) ([]*credvault.Usage, error) {
	out := []*credvault.Usage{}
	err := s.db.SelectContext(ctx, &out, `
		SELECT id, credential_id, org_id, workflow_id, node_id, user_id, destination_host, status, latency_ms, created_at
		FROM credential_usage WHERE credential_id = $1 AND ($2 = 0 OR id < $2)
		ORDER BY id DESC LIMIT $3`, credentialID, f.Cursor, limit(f.Limit))
	return out, translate(err, "credential usage")
}

// RecordUsage stores a batch of uses in one statement, and moves each
// credential's last_used_at to its latest use in the batch (tests left
// out): the write stays off the request path, batched with the usage.
func (s *Store) RecordUsage(ctx context.Context, uses []credvault.Usage) error {
	if len(uses) == 0 {
		return nil
	}
	a := newUsageArrays(uses)
	_, err := s.db.ExecContext(ctx, `
		WITH v AS (
			SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::int[], $8::int[], $9::timestamptz[])
				WITH ORDINALITY AS v(cred, org, wf, node, usr, host, status, lat, at, ord)
			WHERE EXISTS (SELECT 1 FROM credentials c WHERE c.id = v.cred)
		), used AS (
			UPDATE credentials c SET last_used_at = u.at
			FROM (SELECT cred, max(at) AS at FROM v WHERE wf <> $10 GROUP BY cred) u
			WHERE c.id = u.cred AND (c.last_used_at IS NULL OR c.last_used_at < u.at)
		)
		INSERT INTO credential_usage (credential_id, org_id, workflow_id, node_id, user_id, destination_host, status, latency_ms, created_at)
		SELECT v.cred, v.org, v.wf, v.node, v.usr, v.host, v.status, v.lat, v.at FROM v ORDER BY v.ord`,
		a.cred, a.org, a.wf, a.node, a.user, a.host, a.status, a.lat, a.at, credvault.TestWorkflowID)
	return translate(err, "credential usage")
}

// cipherSources are the rewrap job's queries, one per ciphertext kind:
// rows below version $1, in org $2 (or all for ”), after id $3 (or from
// the start for ”), in id order, at most $4. A refresh token's version is
// read from its "vault:vN:" prefix (the table keeps no column for it).
var cipherSources = map[string]string{
	credvault.CipherValue: `SELECT 'value' AS kind, id, org_id, ciphertext FROM credentials
		WHERE key_version < $1 AND ciphertext <> '' AND ($2 = '' OR org_id::text = $2) AND ($3 = '' OR id > $3::uuid)
		ORDER BY id LIMIT $4`,
	credvault.CipherRefreshToken: `SELECT 'refresh_token' AS kind, credential_id AS id, org_id, refresh_ciphertext AS ciphertext
		FROM credential_oauth
		WHERE refresh_ciphertext <> '' AND substring(refresh_ciphertext FROM '^vault:v([0-9]+):')::int < $1
		  AND ($2 = '' OR org_id::text = $2) AND ($3 = '' OR credential_id > $3::uuid)
		ORDER BY credential_id LIMIT $4`,
	credvault.CipherAppSecret: `SELECT 'oauth_app_secret' AS kind, id, org_id, secret_ciphertext AS ciphertext FROM oauth_apps
		WHERE secret_key_version < $1 AND ($2 = '' OR org_id::text = $2) AND ($3 = '' OR id > $3::uuid)
		ORDER BY id LIMIT $4`,
}

// CiphertextsBelow returns up to n rows whose ciphertext predates version,
// every kind in credvault.CipherKinds order, after the cursor afterID
// ("<kind>/<id>"; a bare id continues among credential values), in one
// org or all.
func (s *Store) CiphertextsBelow(ctx context.Context, orgID string, version int, afterID string, n int) ([]credvault.CipherRow, error) {
	kind, id, ok := strings.Cut(afterID, "/")
	if !ok {
		kind, id = credvault.CipherValue, afterID
	}
	var out []credvault.CipherRow
	started := false
	for _, k := range credvault.CipherKinds {
		if k == kind {
			started = true
		} else if !started {
			continue
		} else {
			id = ""
		}
		var rows []credvault.CipherRow
		if err := s.db.SelectContext(ctx, &rows, cipherSources[k], version, orgID, cursor(id), n-len(out)); err != nil {
			return nil, translate(err, "ciphertexts")
		}
		if out = append(out, rows...); len(out) == n {
			break
		}
	}
	return out, nil
}

// CountCiphertextsBelow counts the rows of every kind a rewrap still has
// to do.
func (s *Store) CountCiphertextsBelow(ctx context.Context, orgID string, version int) (int, error) {
	var n int
	err := s.db.GetContext(ctx, &n, `SELECT
		(SELECT count(*) FROM credentials WHERE key_version < $1 AND ciphertext <> '' AND ($2 = '' OR org_id::text = $2))
		+ (SELECT count(*) FROM credential_oauth WHERE refresh_ciphertext <> ''
			AND substring(refresh_ciphertext FROM '^vault:v([0-9]+):')::int < $1 AND ($2 = '' OR org_id::text = $2))
		+ (SELECT count(*) FROM oauth_apps WHERE secret_key_version < $1 AND ($2 = '' OR org_id::text = $2))`, version, orgID)
	return n, translate(err, "ciphertexts")
}

// UpdateCiphertexts stores a batch of rewrapped ciphertexts of any kinds in
// one statement; a row whose ciphertext changed meanwhile (rotated,
// refreshed, a new client secret) is left alone. It returns how many rows
// changed.
func (s *Store) UpdateCiphertexts(ctx context.Context, rows []credvault.CipherUpdate) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	kinds, ids, olds, news, vers := make([]string, len(rows)), make([]string, len(rows)), make([]string, len(rows)), make([]string, len(rows)), make([]int64, len(rows))
	for i, r := range rows {
		kinds[i], ids[i], olds[i], news[i], vers[i] = cmp.Or(r.Kind, credvault.CipherValue), r.ID, r.OldCiphertext, r.NewCiphertext, int64(r.KeyVersion)
	}
	var n int
	err := s.db.GetContext(ctx, &n, `
		WITH v AS (
			SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::int[]) AS v(kind, id, old, new, ver)
		), val AS (
			UPDATE credentials c SET ciphertext = v.new, key_version = v.ver
			FROM v WHERE v.kind = 'value' AND c.id = v.id AND c.ciphertext = v.old RETURNING 1
		), rt AS (
			UPDATE credential_oauth o SET refresh_ciphertext = v.new
			FROM v WHERE v.kind = 'refresh_token' AND o.credential_id = v.id AND o.refresh_ciphertext = v.old RETURNING 1
		), app AS (
			UPDATE oauth_apps a SET secret_ciphertext = v.new, secret_key_version = v.ver
			FROM v WHERE v.kind = 'oauth_app_secret' AND a.id = v.id AND a.secret_ciphertext = v.old RETURNING 1
		)
		SELECT (SELECT count(*) FROM val) + (SELECT count(*) FROM rt) + (SELECT count(*) FROM app)`,
		pq.StringArray(kinds), pq.StringArray(ids), pq.StringArray(olds), pq.StringArray(news), pq.Array(vers))
	return n, translate(err, "ciphertexts")
}
