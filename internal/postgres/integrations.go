package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"credvault/internal/credvault"
)

const integrationColumns = `id, org_id, name, agent, environment, tags, enabled, created_by, created_at, updated_at`

type integrationRow struct {
	ID          string         `db:"id"`
	OrgID       string         `db:"org_id"`
	Name        string         `db:"name"`
	Agent       sql.NullString `db:"agent"`
	Environment string         `db:"environment"`
	Tags        []byte         `db:"tags"`
	Enabled     bool           `db:"enabled"`
	CreatedBy   sql.NullString `db:"created_by"`
	CreatedAt   time.Time      `db:"created_at"`
	UpdatedAt   time.Time      `db:"updated_at"`
}

func (r *integrationRow) toDomain() (*credvault.Integration, error) {
	i := &credvault.Integration{ID: r.ID, OrgID: r.OrgID, Name: r.Name, Agent: nullString(r.Agent),
		Environment: r.Environment, Enabled: r.Enabled, CreatedBy: nullString(r.CreatedBy),
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if err := json.Unmarshal(r.Tags, &i.Tags); err != nil {
		return nil, credvault.Wrap(credvault.EINTERNAL, err, "decode integration tags")
	}
	if i.Tags == nil {
		i.Tags = map[string]string{}
	}
	return i, nil
}

func integrationErr(err error, name string) error {
	e := translate(err, "integration")
	if credvault.ErrorCode(e) == credvault.ECONFLICT {
		return credvault.Errorf(credvault.ECONFLICT, "an integration named %q already exists", name)
	}
	return e
}

// CreateIntegration stores i with its audit event; ECONFLICT when the
// org has an integration of that name.
func (s *Store) CreateIntegration(ctx context.Context, i *credvault.Integration, ev *credvault.AuditEvent) error {
	tags, err := json.Marshal(i.Tags)
	if err != nil {
		return credvault.Wrap(credvault.EINTERNAL, err, "encode integration tags")
	}
	return s.inTx(ctx, "integration", func(tx *txn) error {
		var row integrationRow
		if err := tx.GetContext(ctx, &row, `
			INSERT INTO integrations (org_id, name, agent, environment, tags, enabled, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+integrationColumns,
			i.OrgID, i.Name, i.Agent, i.Environment, tags, i.Enabled, i.CreatedBy); err != nil {
			return integrationErr(err, i.Name)
		}
		got, err := row.toDomain()
		if err != nil {
			return err
		}
		*i = *got
		ev.ResourceID = i.ID
		return insertAudit(ctx, tx, ev)
	})
}

// FindIntegrationByID returns ENOTFOUND for an unknown id or one in
// another org.
func (s *Store) FindIntegrationByID(ctx context.Context, orgID, id string) (*credvault.Integration, error) {
	if !isUUID(id) {
		return nil, credvault.Errorf(credvault.ENOTFOUND, "integration not found")
	}
	var row integrationRow
	if err := s.db.GetContext(ctx, &row, `SELECT `+integrationColumns+` FROM integrations WHERE org_id = $1 AND id = $2`, orgID, id); err != nil {
		return nil, translate(err, "integration")
	}
	return row.toDomain()
}

// FindIntegrations lists an org's integrations newest first after
// f.Cursor, narrowed by f (the name search escapes LIKE's wildcards).
func (s *Store) FindIntegrations(ctx context.Context, orgID string, f credvault.IntegrationFilter) ([]*credvault.Integration, error) {
	at, id := keyset(f.Cursor)
	var tagValue any
	if f.TagValue != nil {
		tagValue = *f.TagValue
	}
	var rows []integrationRow
	if err := s.db.SelectContext(ctx, &rows, `
		SELECT `+integrationColumns+` FROM integrations
		WHERE org_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
		  AND ($4::boolean IS NULL OR enabled = $4)
		  AND ($5 = '' OR environment = $5)
		  AND ($6 = '' OR agent = $6)
		  AND ($7 = '' OR tags ? $7)
		  AND ($8::text IS NULL OR tags ->> $7 = $8)
		  AND ($9 = '' OR name ILIKE '%' || $9 || '%' ESCAPE '\')
		ORDER BY created_at DESC, id DESC LIMIT $10`,
		orgID, at, id, f.Enabled, f.Environment, f.Agent, f.TagKey, tagValue, escapeLike(f.Query), limit(f.Limit)); err != nil {
		return nil, translate(err, "integrations")
	}
	out := make([]*credvault.Integration, 0, len(rows))
	for i := range rows {
		in, err := rows[i].toDomain()
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

// UpdateIntegration applies upd in one statement. When enabled changes it
// notifies every instance ("integration:<id>") in the same transaction,
// the path of a revocation: each drops the integration's keys from its
// caches and reads them again on their next use. The revocation feed
// learns of the JWT keys it switches by trigger (migration 0011).
func (s *Store) UpdateIntegration(ctx context.Context, orgID, id string, upd credvault.IntegrationUpdate, ev *credvault.AuditEvent) (*credvault.Integration, error) {
	if !isUUID(id) {
		return nil, credvault.Errorf(credvault.ENOTFOUND, "integration not found")
	}
	var tags any
	if upd.Tags != nil {
		b, err := json.Marshal(upd.Tags)
		if err != nil {
			return nil, credvault.Wrap(credvault.EINTERNAL, err, "encode integration tags")
		}
		tags = b
	}
	name := ""
	if upd.Name != nil {
		name = *upd.Name
	}
	var row integrationRow
	err := s.inTx(ctx, "integration", func(tx *txn) error {
		var was bool
		if err := tx.GetContext(ctx, &was, `SELECT enabled FROM integrations WHERE org_id = $1 AND id = $2 FOR UPDATE`, orgID, id); err != nil {
			return translate(err, "integration")
		}
		if err := tx.GetContext(ctx, &row, `
			UPDATE integrations SET
				name = COALESCE($3, name),
				agent = CASE WHEN $4 THEN NULL ELSE COALESCE($5, agent) END,
				environment = COALESCE($6, environment),
				tags = COALESCE($7::jsonb, tags),
				enabled = COALESCE($8, enabled),
				updated_at = now()
			WHERE org_id = $1 AND id = $2 RETURNING `+integrationColumns,
			orgID, id, upd.Name, upd.ClearAgent, upd.Agent, upd.Environment, tags, upd.Enabled); err != nil {
			return integrationErr(err, name)
		}
		if row.Enabled != was {
			tx.logChange(ChangeIntegration, "integration:"+id)
		}
		return insertAudit(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return row.toDomain()
}

// DeleteIntegration removes an integration that has no usable key. The
// row is locked first, so that a key being put into it meanwhile (whose
// foreign key check takes a share lock on the row) either commits before
// the count or waits and then fails. Revoked and expired keys are
// detached (ON DELETE SET NULL). Errors: ENOTFOUND, ECONFLICT
// integration_has_keys.
func (s *Store) DeleteIntegration(ctx context.Context, orgID, id string, ev *credvault.AuditEvent) error {
	if !isUUID(id) {
		return credvault.Errorf(credvault.ENOTFOUND, "integration not found")
	}
	return s.inTx(ctx, "integration", func(tx *txn) error {
		var one int
		if err := tx.GetContext(ctx, &one, `SELECT 1 FROM integrations WHERE org_id = $1 AND id = $2 FOR UPDATE`, orgID, id); err != nil {
			return translate(err, "integration")
		}
		var n int
		if err := tx.GetContext(ctx, &n, `
			SELECT count(*) FROM api_keys WHERE integration_id = $1 AND revoked_at IS NULL
			  AND (expires_at IS NULL OR expires_at > now())`, id); err != nil {
			return translate(err, "API keys")
		}
		if n > 0 {
			return &credvault.Error{Code: credvault.ECONFLICT, Reason: "integration_has_keys",
				Message: "this integration still has usable API keys: move them (PATCH /v1/api-keys/{id} {\"integration_id\": …}) or revoke them first",
				Details: map[string]any{"keys": n}}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM integrations WHERE org_id = $1 AND id = $2`, orgID, id); err != nil {
			return translate(err, "integration")
		}
		return insertAudit(ctx, tx, ev)
	})
}
