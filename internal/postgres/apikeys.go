package postgres

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"credvault/internal/credvault"
)

// #nosec G101 -- column names, not a credential
const apiKeyColumns = `id, org_id, user_id, kind, name, mode, environment, key_hash, prefix, last4, scopes, tags,
	rate_limit, rate_window_secs, expires_at, revoked_at, replaced_by, created_by, legacy, created_at, updated_at, last_used_at,
	format, agent, signing_version, integration_id, disabled_at, disabled_by`

// apiKeyRow is the table's shape; toDomain turns it into an APIKey.
type apiKeyRow struct {
	ID             string         `db:"id"`
	OrgID          string         `db:"org_id"`
	UserID         sql.NullString `db:"user_id"`
	Kind           string         `db:"kind"`
	Name           string         `db:"name"`
	Mode           string         `db:"mode"`
	Environment    string         `db:"environment"`
	KeyHash        []byte         `db:"key_hash"`
	Prefix         string         `db:"prefix"`
	Last4          string         `db:"last4"`
	Scopes         pq.StringArray `db:"scopes"`
	Tags           []byte         `db:"tags"`
	RateLimit      sql.NullInt64  `db:"rate_limit"`
	RateWindowSecs sql.NullInt64  `db:"rate_window_secs"`
	ExpiresAt      sql.NullTime   `db:"expires_at"`
	RevokedAt      sql.NullTime   `db:"revoked_at"`
	ReplacedBy     sql.NullString `db:"replaced_by"`
	CreatedBy      sql.NullString `db:"created_by"`
	Legacy         bool           `db:"legacy"`
	CreatedAt      time.Time      `db:"created_at"`
	UpdatedAt      time.Time      `db:"updated_at"`
	LastUsedAt     sql.NullTime   `db:"last_used_at"`
	Format         string         `db:"format"`
	Agent          sql.NullString `db:"agent"`
	SigningVersion sql.NullInt64  `db:"signing_version"`
	IntegrationID  sql.NullString `db:"integration_id"`
	DisabledAt     sql.NullTime   `db:"disabled_at"`
	DisabledBy     sql.NullString `db:"disabled_by"`
}

func (r *apiKeyRow) toDomain() (*credvault.APIKey, error) {
	k := &credvault.APIKey{
		ID: r.ID, OrgID: r.OrgID, UserID: nullString(r.UserID), Kind: r.Kind, Name: r.Name,
		Mode: r.Mode, Environment: r.Environment, Prefix: r.Prefix, Last4: r.Last4, Display: r.Prefix + "_…" + r.Last4,
		Scopes: []string(r.Scopes), ExpiresAt: nullTime(r.ExpiresAt), RevokedAt: nullTime(r.RevokedAt),
		ReplacedBy: nullString(r.ReplacedBy), CreatedBy: nullString(r.CreatedBy), Legacy: r.Legacy,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, LastUsedAt: nullTime(r.LastUsedAt),
		Format: r.Format, Agent: nullString(r.Agent), SigningVersion: int(r.SigningVersion.Int64),
		IntegrationID: nullString(r.IntegrationID), Enabled: !r.DisabledAt.Valid, DisabledAt: nullTime(r.DisabledAt),
		DisabledBy: nullString(r.DisabledBy),
	}
	copy(k.Hash[:], r.KeyHash)
	if err := json.Unmarshal(r.Tags, &k.Tags); err != nil {
		return nil, credvault.Wrap(credvault.EINTERNAL, err, "decode key tags")
	}
	if r.RateLimit.Valid {
		k.RateLimit = &credvault.RateLimit{Requests: int(r.RateLimit.Int64), WindowSeconds: int(r.RateWindowSecs.Int64)}
	}
	if k.Scopes == nil {
		k.Scopes = []string{}
	}
	return k, nil
}

func insertAPIKey(ctx context.Context, tx *txn, k *credvault.APIKey) error {
	tags, err := json.Marshal(k.Tags)
	if err != nil {
		return credvault.Wrap(credvault.EINTERNAL, err, "encode key tags")
	}
	var rl, rw any
	if k.RateLimit != nil {
		rl, rw = k.RateLimit.Requests, k.RateLimit.WindowSeconds
	}
	if err := checkCreator(ctx, tx, k); err != nil {
		return err
	}
	format, signed := k.Format, sql.NullInt64{Int64: int64(k.SigningVersion), Valid: k.SigningVersion > 0}
	if format == "" {
		format = credvault.KeyFormatOpaque
	}
	var row apiKeyRow
	err = tx.GetContext(ctx, &row, `
		INSERT INTO api_keys (id, org_id, user_id, kind, name, mode, environment, key_hash, prefix, last4, scopes, tags,
			rate_limit, rate_window_secs, expires_at, created_by, legacy, format, agent, signing_version, integration_id)
		VALUES (COALESCE(NULLIF($1, '')::uuid, gen_random_uuid()), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
			$15, $16, $17, $18, $19, $20, $21)
		RETURNING `+apiKeyColumns,
		k.ID, k.OrgID, k.UserID, k.Kind, k.Name, k.Mode, k.Environment, k.Hash[:], k.Prefix, k.Last4, pq.StringArray(k.Scopes), tags,
		rl, rw, k.ExpiresAt, k.CreatedBy, k.Legacy, format, k.Agent, signed, k.IntegrationID)
	if err != nil {
		return translate(err, "API key")
	}
	got, err := row.toDomain()
	if err != nil {
		return err
	}
	*k = *got
	tx.logChange(ChangeCreated, "new:"+hex.EncodeToString(k.Hash[:]))
	return nil
}

// checkCreator re-reads, under a share lock, the role of the person a new
// key's power comes from, for a service key and for a user key made for
// someone else (whose secret its creator received): a deletion or
// demotion takes that row's update lock, so either it commits first and
// the key is refused here, or it waits for this transaction and then
// revokes the new key too. (A key of one's own acts with one's own role.)
func checkCreator(ctx context.Context, tx *txn, k *credvault.APIKey) error {
	forOther := k.Kind == credvault.KeyKindUser && k.UserID != nil && k.CreatedBy != nil && *k.UserID != *k.CreatedBy
	if (k.Kind != credvault.KeyKindService && !forOther) || k.CreatedBy == nil || k.Legacy {
		return nil
	}
	var role credvault.Role
	err := tx.GetContext(ctx, &role, `SELECT role FROM users WHERE org_id = $1 AND id = $2 FOR SHARE`, k.OrgID, *k.CreatedBy)
	if err == sql.ErrNoRows {
		return &credvault.Error{Code: credvault.EFORBIDDEN, Reason: "creator_removed",
			Message: "the person this key's power comes from is no longer a user of the org"}
	}
	if err != nil {
		return translate(err, "user")
	}
	allowed := credvault.RoleAllowsServiceKey(role, k.Scopes)
	if forOther {
		var holder credvault.Role
		if err := tx.GetContext(ctx, &holder, `SELECT role FROM users WHERE org_id = $1 AND id = $2`, k.OrgID, *k.UserID); err != nil {
			return translate(err, "user")
		}
		allowed = credvault.RoleAllowsKeyFor(role, holder)
	}
	if !allowed {
		return &credvault.Error{Code: credvault.EFORBIDDEN, Reason: "forbidden_role",
			Message: "the role of the person this key's power comes from does not allow this key"}
	}
	return nil
}

// createdKey is an active key a user stands behind (created_by): a service
// key, or a user key they made for someone else, with that person's role.
type createdKey struct {
	ID      string         `db:"id"`
	KeyHash []byte         `db:"key_hash"`
	Kind    string         `db:"kind"`
	Scopes  pq.StringArray `db:"scopes"`
	Holder  sql.NullString `db:"holder_role"`
}

// revokeCreatedKeys revokes, inside tx, the active keys userID stands
// behind (created_by) for which allowed is false: their service keys and
// the user keys they made for other people (their own go with them on
// deletion and act with their role otherwise). It tells every instance to
// drop them and returns their ids.
func revokeCreatedKeys(ctx context.Context, tx *txn, orgID, userID string, allowed func(k createdKey) bool) ([]string, error) {
	var rows []createdKey
	if err := tx.SelectContext(ctx, &rows, `
		SELECT k.id, k.key_hash, k.kind, k.scopes, u.role AS holder_role FROM api_keys k
		LEFT JOIN users u ON u.id = k.user_id
		WHERE k.org_id = $1 AND k.created_by = $2 AND k.revoked_at IS NULL
		  AND (k.kind = 'service' OR k.user_id IS DISTINCT FROM $2)
		ORDER BY k.id FOR UPDATE OF k`, orgID, userID); err != nil {
		return nil, translate(err, "API keys")
	}
	ids := []string{}
	for _, r := range rows {
		if allowed(r) {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = now(), updated_at = now() WHERE id = $1`, r.ID); err != nil {
			return nil, translate(err, "API key")
		}
		tx.logChange(ChangeRevoked, "key:"+hex.EncodeToString(r.KeyHash))
		ids = append(ids, r.ID)
	}
	return ids, nil
}

// CreateAPIKey stores a key (hash only) with its audit event.
func (s *Store) CreateAPIKey(ctx context.Context, k *credvault.APIKey, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "API key", func(tx *txn) error {
		if err := insertAPIKey(ctx, tx, k); err != nil {
			return err
		}
		ev.ResourceID = k.ID
		return insertAudit(ctx, tx, ev)
	})
}

// FindAPIKeyByID returns ENOTFOUND for an unknown id or one in another org.
func (s *Store) FindAPIKeyByID(ctx context.Context, orgID, id string) (*credvault.APIKey, error) {
	if !isUUID(id) {
		return nil, credvault.Errorf(credvault.ENOTFOUND, "API key not found")
	}
	var row apiKeyRow
	if err := s.db.GetContext(ctx, &row, `SELECT `+apiKeyColumns+` FROM api_keys WHERE org_id = $1 AND id = $2`, orgID, id); err != nil {
		return nil, translate(err, "API key")
	}
	return row.toDomain()
}

// FindAPIKeys lists keys newest first (created_at, then id, descending)
// after f.Cursor, narrowed by f; f.CreatedBy is a user id or "legacy" for
// the legacy keys. The name search escapes LIKE's wildcards, so "%" and
// "_" match themselves.
func (s *Store) FindAPIKeys(ctx context.Context, orgID string, f credvault.APIKeyFilter) ([]*credvault.APIKey, error) {
	legacy := f.CreatedBy == credvault.CreatedByLegacy
	createdBy := f.CreatedBy
	if legacy {
		createdBy = ""
	}
	if (f.UserID != "" && !isUUID(f.UserID)) || (createdBy != "" && !isUUID(createdBy)) {
		return []*credvault.APIKey{}, nil
	}
	afterAt, afterID := keyset(f.Cursor)
	var tagValue any
	if f.TagValue != nil {
		tagValue = *f.TagValue
	}
	var expiresBy any
	if f.ExpiresBy != nil {
		expiresBy = *f.ExpiresBy
	}
	var rows []apiKeyRow
	err := s.db.SelectContext(ctx, &rows, `
		SELECT `+apiKeyColumns+` FROM api_keys
		WHERE org_id = $1
		  AND ($2 = '' OR user_id = $2::uuid)
		  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
		  AND CASE $5
		      WHEN 'all' THEN true
		      WHEN 'revoked' THEN revoked_at IS NOT NULL
		      WHEN 'expired' THEN revoked_at IS NULL AND expires_at <= $6
		      ELSE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $6) END
		  AND ($7 = '' OR environment = $7)
		  AND ($8 = '' OR tags ? $8)
		  AND ($9::text IS NULL OR tags ->> $8 = $9)
		  AND ($10 = '' OR created_by = $10::uuid) AND (NOT $14 OR legacy)
		  AND ($11 = '' OR name ILIKE '%' || $11 || '%' ESCAPE '\')
		  AND ($12::timestamptz IS NULL OR (expires_at IS NOT NULL AND expires_at <= $12))
		  AND CASE $15 WHEN '' THEN true WHEN 'none' THEN integration_id IS NULL ELSE integration_id = $15::uuid END
		  AND ($16::boolean IS NULL OR (disabled_at IS NULL) = $16)
		ORDER BY created_at DESC, id DESC LIMIT $13`,
		orgID, f.UserID, afterAt, afterID, f.Status, f.Now, f.Environment, f.TagKey, tagValue,
		createdBy, escapeLike(f.Query), expiresBy, limit(f.Limit), legacy, f.IntegrationID, f.Enabled)
	if err != nil {
		return nil, translate(err, "API keys")
	}
	out := make([]*credvault.APIKey, 0, len(rows))
	for i := range rows {
		k, err := rows[i].toDomain()
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// UpdateAPIKey applies upd in one statement and tells every instance to
// reload the key (its scopes, limit or expiry may have changed).
func (s *Store) UpdateAPIKey(ctx context.Context, orgID, id string, upd credvault.APIKeyUpdate, ev *credvault.AuditEvent) (*credvault.APIKey, error) {
	if !isUUID(id) {
		return nil, credvault.Errorf(credvault.ENOTFOUND, "API key not found")
	}
	var tags, scopes, rl, rw any
	if upd.Tags != nil {
		b, err := json.Marshal(upd.Tags)
		if err != nil {
			return nil, credvault.Wrap(credvault.EINTERNAL, err, "encode key tags")
		}
		tags = b
	}
	if upd.Scopes != nil {
		scopes = pq.StringArray(upd.Scopes)
	}
	if upd.RateLimit != nil {
		rl, rw = upd.RateLimit.Requests, upd.RateLimit.WindowSeconds
	}
	return s.changeAPIKey(ctx, ev, func(tx *txn, row *apiKeyRow) error {
		err := tx.GetContext(ctx, row, `
			UPDATE api_keys SET
				name = COALESCE($3, name),
				environment = COALESCE($4, environment),
				tags = COALESCE($5::jsonb, tags),
				scopes = COALESCE($6::text[], scopes),
				rate_limit = COALESCE($7, rate_limit),
				rate_window_secs = COALESCE($8, rate_window_secs),
				expires_at = COALESCE($9, expires_at),
				integration_id = CASE WHEN $10::text IS NULL THEN integration_id ELSE NULLIF($10, '')::uuid END,
				updated_at = now()
			WHERE org_id = $1 AND id = $2 RETURNING `+apiKeyColumns,
			orgID, id, upd.Name, upd.Environment, tags, scopes, rl, rw, upd.ExpiresAt, upd.IntegrationID)
		return translate(err, "API key")
	})
}

// changeAPIKey runs update (one UPDATE … RETURNING of a key into row) in a
// transaction that also tells every instance to reload the key, the path
// of a revocation, and records ev.
func (s *Store) changeAPIKey(ctx context.Context, ev *credvault.AuditEvent, update func(tx *txn, row *apiKeyRow) error) (*credvault.APIKey, error) {
	var row apiKeyRow
	err := s.inTx(ctx, "API key", func(tx *txn) error {
		if err := update(tx, &row); err != nil {
			return err
		}
		tx.logChange(ChangeUpdated, "key:"+hex.EncodeToString(row.KeyHash))
		return insertAudit(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return row.toDomain()
}

// RollAPIKey stores next and ends the old key at oldExpiresAt, in one
// transaction, and tells every instance to reload the old key.
func (s *Store) RollAPIKey(ctx context.Context, orgID, oldID string, next *credvault.APIKey, oldExpiresAt time.Time, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "API key", func(tx *txn) error {
		if err := insertAPIKey(ctx, tx, next); err != nil {
			return err
		}
		var hash []byte
		err := tx.GetContext(ctx, &hash, `
			UPDATE api_keys SET expires_at = $3, replaced_by = $4, updated_at = now()
			WHERE org_id = $1 AND id = $2 AND replaced_by IS NULL AND revoked_at IS NULL
			RETURNING key_hash`, orgID, oldID, oldExpiresAt, next.ID)
		if err == sql.ErrNoRows {
			return credvault.Errorf(credvault.ECONFLICT, "this key was rolled or revoked meanwhile")
		}
		if err != nil {
			return translate(err, "API key")
		}
		tx.logChange(ChangeRolled, "key:"+hex.EncodeToString(hash))
		ev.Data["new_key_id"] = next.ID
		return insertAudit(ctx, tx, ev)
	})
}

// RevokeAPIKey marks the key revoked and tells every instance to drop it.
func (s *Store) RevokeAPIKey(ctx context.Context, orgID, id string, ev *credvault.AuditEvent) (*credvault.APIKey, error) {
	var row apiKeyRow
	err := s.inTx(ctx, "API key", func(tx *txn) error {
		if err := tx.GetContext(ctx, &row, `
			UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()), updated_at = now()
			WHERE org_id = $1 AND id = $2 RETURNING `+apiKeyColumns, orgID, id); err != nil {
			return translate(err, "API key")
		}
		tx.logChange(ChangeRevoked, "key:"+hex.EncodeToString(row.KeyHash))
		return insertAudit(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return row.toDomain()
}

// SetAPIKeyDisabled switches the key's own state and tells every instance
// to reload it, in the transaction of the change (the path of a
// revocation). A JWT key's change of effective state enters the
// revocation feed by trigger (migration 0011).
func (s *Store) SetAPIKeyDisabled(ctx context.Context, orgID, id string, disabled bool, disabledBy string, ev *credvault.AuditEvent) (*credvault.APIKey, error) {
	if !isUUID(id) {
		return nil, credvault.Errorf(credvault.ENOTFOUND, "API key not found")
	}
	return s.changeAPIKey(ctx, ev, func(tx *txn, row *apiKeyRow) error {
		err := tx.GetContext(ctx, row, `
			UPDATE api_keys SET
				disabled_at = CASE WHEN $3 THEN COALESCE(disabled_at, now()) END,
				disabled_by = CASE WHEN NOT $3 THEN NULL WHEN disabled_at IS NULL THEN NULLIF($4, '')::uuid ELSE disabled_by END,
				updated_at = now()
			WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING `+apiKeyColumns, orgID, id, disabled, disabledBy)
		if err == sql.ErrNoRows {
			return credvault.Errorf(credvault.ECONFLICT, "this key was revoked meanwhile")
		}
		return translate(err, "API key")
	})
}

// FindAuthKeyByHash is the verification lookup (a unique index on the
// hash): the key with its user's role. ENOTFOUND when no key matches.
func (s *Store) FindAuthKeyByHash(ctx context.Context, hash [32]byte) (*credvault.AuthKey, error) {
	// The verification lookup reads only what verification needs: no
	// tags to decode, no display fields.
	var row struct {
		ID             string         `db:"id"`
		OrgID          string         `db:"org_id"`
		UserID         sql.NullString `db:"user_id"`
		Kind           string         `db:"kind"`
		Role           sql.NullString `db:"role"`
		Scopes         pq.StringArray `db:"scopes"`
		ExpiresAt      sql.NullTime   `db:"expires_at"`
		RevokedAt      sql.NullTime   `db:"revoked_at"`
		RateLimit      sql.NullInt64  `db:"rate_limit"`
		RateWindowSecs sql.NullInt64  `db:"rate_window_secs"`
		Format         string         `db:"format"`
		SigningVersion sql.NullInt64  `db:"signing_version"`
		Disabled       bool           `db:"disabled"`
		IntegrationID  sql.NullString `db:"integration_id"`
		IntegrationOff bool           `db:"integration_disabled"`
	}
	stmt, err := s.authKeyStmt(ctx)
	if err != nil {
		return nil, err
	}
	if err := stmt.GetContext(ctx, &row, hash[:]); err != nil {
		return nil, translate(err, "API key")
	}
	scopes := []string(row.Scopes)
	if scopes == nil {
		scopes = []string{}
	}
	ak := &credvault.AuthKey{
		ID: row.ID, OrgID: row.OrgID, UserID: row.UserID.String, Kind: row.Kind, Role: credvault.Role(row.Role.String),
		Scopes: scopes, ScopeHeader: strings.Join(scopes, ","), ExpiresAt: nullTime(row.ExpiresAt),
		RevokedAt: nullTime(row.RevokedAt), Hash: hash, Format: row.Format, SigningVersion: int(row.SigningVersion.Int64),
		Disabled: row.Disabled, IntegrationID: row.IntegrationID.String, IntegrationDisabled: row.IntegrationOff,
	}
	if row.RateLimit.Valid {
		ak.RateLimit = &credvault.RateLimit{Requests: int(row.RateLimit.Int64), WindowSeconds: int(row.RateWindowSecs.Int64)}
	}
	return ak, nil
}

const authKeyQuery = `
	SELECT k.id, k.org_id, k.user_id, k.kind, u.role, k.scopes, k.expires_at, k.revoked_at, k.rate_limit, k.rate_window_secs,
		k.format, k.signing_version, k.disabled_at IS NOT NULL AS disabled, k.integration_id,
		COALESCE(NOT i.enabled, false) AS integration_disabled
	FROM api_keys k LEFT JOIN users u ON u.id = k.user_id LEFT JOIN integrations i ON i.id = k.integration_id
	WHERE k.key_hash = $1`

// authKeyStmt prepares the verification lookup once: a prepared statement
// costs one round trip per lookup instead of two (lib/pq parses an
// unprepared query with arguments in a round trip of its own).
func (s *Store) authKeyStmt(ctx context.Context) (*sqlx.Stmt, error) {
	s.prepMu.Lock()
	defer s.prepMu.Unlock()
	if s.authKey == nil {
		stmt, err := s.db.PreparexContext(ctx, authKeyQuery)
		if err != nil {
			return nil, translate(err, "API key")
		}
		s.authKey = stmt
	}
	return s.authKey, nil
}

// KeyHashPrefixes calls fn with the first 8 bytes of every stored key's
// hash (revoked and expired ones too, so that they are refused as such),
// for the verifier's known-key filter. Only the prefix crosses the wire:
// 18 bytes of text a row instead of 66, which keeps a reload of
// 10,000,000 keys within seconds (credvault bench --keys).
func (s *Store) KeyHashPrefixes(ctx context.Context, fn func(prefix [8]byte)) error {
	rows, err := s.db.QueryContext(ctx, `SELECT substring(key_hash FROM 1 FOR 8) FROM api_keys`)
	if err != nil {
		return translate(err, "API keys")
	}
	defer rows.Close()
	var b []byte
	var p [8]byte
	for rows.Next() {
		if err := rows.Scan(&b); err != nil {
			return translate(err, "API keys")
		}
		copy(p[:], b)
		fn(p)
	}
	return translate(rows.Err(), "API keys")
}

// TouchAPIKeys records last_used_at for many keys in one statement; the
// verifier calls it in batches, never once per request.
func (s *Store) TouchAPIKeys(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	ids := make([]string, 0, len(used))
	times := make([]time.Time, 0, len(used))
	for id, t := range used {
		ids, times = append(ids, id), append(times, t)
	}
	_, err := s.db.ExecContext(ctx, `
		UPDATE api_keys k SET last_used_at = v.t
		FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, t)
		WHERE k.id = v.id AND (k.last_used_at IS NULL OR k.last_used_at < v.t)`,
		pq.StringArray(ids), pq.Array(times))
	return translate(err, "API keys")
}

// prefixed qualifies every column of a comma-separated list with p.
func prefixed(p, columns string) string {
	parts := strings.Split(columns, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// FindRevocations reads the revocation feed of orgID after cursor since,
// oldest first (the table is filled by triggers; see migration 0007).
func (s *Store) FindRevocations(ctx context.Context, orgID string, since int64, limit int) ([]*credvault.Revocation, error) {
	var rows []struct {
		Seq      int64     `db:"seq"`
		KeyID    string    `db:"key_id"`
		NotAfter time.Time `db:"not_after"`
		Reason   string    `db:"reason"`
	}
	err := s.db.SelectContext(ctx, &rows, `
		SELECT seq, key_id, not_after, reason FROM api_key_revocations
		WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, orgID, since, limit)
	if err != nil {
		return nil, translate(err, "revocations")
	}
	out := make([]*credvault.Revocation, len(rows))
	for i, r := range rows {
		out[i] = &credvault.Revocation{Cursor: r.Seq, JTI: r.KeyID, NotAfter: r.NotAfter.UTC(), Reason: r.Reason}
	}
	return out, nil
}
