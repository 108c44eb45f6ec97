package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/lib/pq"

	"credvault/internal/credvault"
)

const oauthAppColumns = `id, org_id, name, preset, issuer, iss_required, authorize_url, token_url, revocation_url, scope_separator,
	authorize_params, api_hosts, base_url, client_id, secret_ciphertext, secret_key_version, scopes, token_auth_method,
	created_by, created_at, updated_at`

type oauthAppRow struct {
	ID               string         `db:"id"`
	OrgID            string         `db:"org_id"`
	Name             string         `db:"name"`
	Preset           string         `db:"preset"`
	Issuer           string         `db:"issuer"`
	IssRequired      bool           `db:"iss_required"`
	AuthorizeURL     string         `db:"authorize_url"`
	TokenURL         string         `db:"token_url"`
	RevocationURL    string         `db:"revocation_url"`
	ScopeSeparator   string         `db:"scope_separator"`
	AuthorizeParams  []byte         `db:"authorize_params"`
	APIHosts         pq.StringArray `db:"api_hosts"`
	BaseURL          string         `db:"base_url"`
	ClientID         string         `db:"client_id"`
	SecretCiphertext string         `db:"secret_ciphertext"`
	SecretKeyVersion int            `db:"secret_key_version"`
	Scopes           pq.StringArray `db:"scopes"`
	TokenAuthMethod  string         `db:"token_auth_method"`
	CreatedBy        sql.NullString `db:"created_by"`
	CreatedAt        time.Time      `db:"created_at"`
	UpdatedAt        time.Time      `db:"updated_at"`
}

func (r *oauthAppRow) toDomain() (*credvault.OAuthApp, error) {
	a := &credvault.OAuthApp{
		ID: r.ID, OrgID: r.OrgID, Name: r.Name, Preset: r.Preset, Issuer: r.Issuer, IssRequired: r.IssRequired, AuthorizeURL: r.AuthorizeURL,
		TokenURL: r.TokenURL, RevocationURL: r.RevocationURL, ScopeSeparator: r.ScopeSeparator,
		APIHosts: nonNil(r.APIHosts), BaseURL: r.BaseURL, ClientID: r.ClientID, SecretCiphertext: r.SecretCiphertext,
		SecretKeyVersion: r.SecretKeyVersion, Scopes: nonNil(r.Scopes), TokenAuthMethod: r.TokenAuthMethod,
		CreatedBy: nullString(r.CreatedBy), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	if err := json.Unmarshal(r.AuthorizeParams, &a.AuthorizeParams); err != nil {
		return nil, credvault.Wrap(credvault.EINTERNAL, err, "decode authorize params")
	}
	return a, nil
}

// CreateOAuthApp stores the app and its audit event; ECONFLICT when the
// name is taken in the org.
func (s *Store) CreateOAuthApp(ctx context.Context, a *credvault.OAuthApp, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "oauth app", func(tx *txn) error {
		var row oauthAppRow
		err := tx.GetContext(ctx, &row, `
			INSERT INTO oauth_apps (id, org_id, name, preset, issuer, authorize_url, token_url, revocation_url, scope_separator,
				authorize_params, api_hosts, base_url, client_id, secret_ciphertext, secret_key_version, scopes, token_auth_method, created_by,
				iss_required)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
			RETURNING `+oauthAppColumns,
			a.ID, a.OrgID, a.Name, a.Preset, a.Issuer, a.AuthorizeURL, a.TokenURL, a.RevocationURL, a.ScopeSeparator,
			encodeParams(a.AuthorizeParams), pq.StringArray(nonNil(a.APIHosts)), a.BaseURL, a.ClientID, a.SecretCiphertext,
			a.SecretKeyVersion, pq.StringArray(nonNil(a.Scopes)), a.TokenAuthMethod, a.CreatedBy, a.IssRequired)
		if err != nil {
			return translate(err, "oauth app named "+a.Name)
		}
		stored, err := row.toDomain()
		if err != nil {
			return err
		}
		*a = *stored
		return insertAudit(ctx, tx, ev)
	})
}

// FindOAuthAppByID returns ENOTFOUND for an unknown id or one of another org.
func (s *Store) FindOAuthAppByID(ctx context.Context, orgID, id string) (*credvault.OAuthApp, error) {
	if !isUUID(id) {
		return nil, credvault.Errorf(credvault.ENOTFOUND, "oauth app not found")
	}
	var row oauthAppRow
	if err := s.db.GetContext(ctx, &row, `SELECT `+oauthAppColumns+` FROM oauth_apps WHERE org_id = $1 AND id = $2`, orgID, id); err != nil {
		return nil, translate(err, "oauth app")
	}
	return row.toDomain()
}

// FindOAuthApps lists the org's apps, newest first.
func (s *Store) FindOAuthApps(ctx context.Context, orgID string, page credvault.Page) ([]*credvault.OAuthApp, error) {
	var rows []oauthAppRow
	at, id := keyset(page.Cursor)
	err := s.db.SelectContext(ctx, &rows, `SELECT `+oauthAppColumns+` FROM oauth_apps
		WHERE org_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
		ORDER BY created_at DESC, id DESC LIMIT $4`, orgID, at, id, limit(page.Limit))
	if err != nil {
		return nil, translate(err, "oauth apps")
	}
	out := make([]*credvault.OAuthApp, len(rows))
	for i := range rows {
		if out[i], err = rows[i].toDomain(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// UpdateOAuthApp stores the app's editable fields and, when secretChanged,
// its secret.
func (s *Store) UpdateOAuthApp(ctx context.Context, a *credvault.OAuthApp, secretChanged bool, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "oauth app", func(tx *txn) error {
		err := tx.QueryRowxContext(ctx, `
			UPDATE oauth_apps SET name = $3, client_id = $4, scopes = $5, token_auth_method = $6,
				secret_ciphertext = CASE WHEN $7 THEN $8 ELSE secret_ciphertext END,
				secret_key_version = CASE WHEN $7 THEN $9 ELSE secret_key_version END, updated_at = now()
			WHERE org_id = $1 AND id = $2 RETURNING updated_at`,
			a.OrgID, a.ID, a.Name, a.ClientID, pq.StringArray(nonNil(a.Scopes)), a.TokenAuthMethod,
			secretChanged, a.SecretCiphertext, a.SecretKeyVersion).Scan(&a.UpdatedAt)
		if err != nil {
			return translate(err, "oauth app named "+a.Name)
		}
		return insertAudit(ctx, tx, ev)
	})
}

// DeleteOAuthApp removes an app; ECONFLICT while credentials use it.
func (s *Store) DeleteOAuthApp(ctx context.Context, orgID, id string, ev *credvault.AuditEvent) error {
	if !isUUID(id) {
		return credvault.Errorf(credvault.ENOTFOUND, "oauth app not found")
	}
	return s.inTx(ctx, "oauth app", func(tx *txn) error {
		var n int
		if err := tx.GetContext(ctx, &n, `SELECT count(*) FROM credential_oauth WHERE app_id = $1`, id); err != nil {
			return translate(err, "oauth app")
		}
		if n > 0 {
			return &credvault.Error{Code: credvault.ECONFLICT, Reason: "oauth_app_in_use", Details: map[string]any{"credentials": n},
				Message: "credentials still connect through this OAuth app: delete them first"}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM oauth_apps WHERE org_id = $1 AND id = $2`, orgID, id)
		if err != nil {
			return translate(err, "oauth app")
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return credvault.Errorf(credvault.ENOTFOUND, "oauth app not found")
		}
		return insertAudit(ctx, tx, ev)
	})
}
