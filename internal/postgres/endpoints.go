package postgres

import (
	"context"
	"time"

	"github.com/lib/pq"

	"credvault/internal/credvault"
)

type endpointRow struct {
	ID             string         `db:"id"`
	OrgID          string         `db:"org_id"`
	Name           string         `db:"name"`
	AuthMode       string         `db:"auth_mode"`
	RequiredScopes pq.StringArray `db:"required_scopes"`
	CreatedAt      time.Time      `db:"created_at"`
	UpdatedAt      time.Time      `db:"updated_at"`
}

func (r *endpointRow) toDomain() *credvault.Endpoint {
	sc := []string(r.RequiredScopes)
	if sc == nil {
		sc = []string{}
	}
	return &credvault.Endpoint{ID: r.ID, OrgID: r.OrgID, Name: r.Name, AuthMode: r.AuthMode,
		RequiredScopes: sc, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

const endpointColumns = `id, org_id, name, auth_mode, required_scopes, created_at, updated_at`

// CreateEndpoint returns ECONFLICT when the name is taken in the org.
func (s *Store) CreateEndpoint(ctx context.Context, e *credvault.Endpoint, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "endpoint", func(tx *txn) error {
		var row endpointRow
		err := tx.GetContext(ctx, &row, `
			INSERT INTO endpoints (org_id, name, auth_mode, required_scopes) VALUES ($1, $2, $3, $4)
			RETURNING `+endpointColumns, e.OrgID, e.Name, e.AuthMode, pq.StringArray(e.RequiredScopes))
		if err != nil {
			return endpointErr(err, e.Name)
		}
		*e = *row.toDomain()
		ev.ResourceID = e.ID
		return insertAudit(ctx, tx, ev)
	})
}

// FindEndpoint finds by id, or by name within orgID. ENOTFOUND otherwise.
func (s *Store) FindEndpoint(ctx context.Context, orgID, idOrName string) (*credvault.Endpoint, error) {
	var row endpointRow
	var err error
	switch {
	case isUUID(idOrName):
		err = s.db.GetContext(ctx, &row, `SELECT `+endpointColumns+` FROM endpoints WHERE id = $1 AND ($2 = '' OR org_id::text = $2)`, idOrName, orgID)
	case orgID != "":
		err = s.db.GetContext(ctx, &row, `SELECT `+endpointColumns+` FROM endpoints WHERE org_id = $1 AND name = $2`, orgID, idOrName)
	default:
		return nil, credvault.Errorf(credvault.ENOTFOUND, "endpoint not found")
	}
	if err != nil {
		return nil, translate(err, "endpoint")
	}
	return row.toDomain(), nil
}

// FindEndpoints lists an org's endpoints newest first after page.Cursor.
func (s *Store) FindEndpoints(ctx context.Context, orgID string, page credvault.Page) ([]*credvault.Endpoint, error) {
	var rows []endpointRow
	at, id := keyset(page.Cursor)
	if err := s.db.SelectContext(ctx, &rows, `
		SELECT `+endpointColumns+` FROM endpoints
		WHERE org_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
		ORDER BY created_at DESC, id DESC LIMIT $4`, orgID, at, id, limit(page.Limit)); err != nil {
		return nil, translate(err, "endpoints")
	}
	out := make([]*credvault.Endpoint, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
	}
	return out, nil
}

// UpdateEndpoint applies upd. ENOTFOUND, ECONFLICT (name taken).
func (s *Store) UpdateEndpoint(ctx context.Context, orgID, id string, upd credvault.EndpointUpdate, ev *credvault.AuditEvent) (*credvault.Endpoint, error) {
	if !isUUID(id) {
		return nil, credvault.Errorf(credvault.ENOTFOUND, "endpoint not found")
	}
	var scopes any
	if upd.RequiredScopes != nil {
		scopes = pq.StringArray(*upd.RequiredScopes)
	}
	var row endpointRow
	err := s.inTx(ctx, "endpoint", func(tx *txn) error {
		err := tx.GetContext(ctx, &row, `
			UPDATE endpoints SET name = COALESCE($3, name), auth_mode = COALESCE($4, auth_mode),
				required_scopes = COALESCE($5, required_scopes), updated_at = now()
			WHERE org_id = $1 AND id = $2 RETURNING `+endpointColumns, orgID, id, upd.Name, upd.AuthMode, scopes)
		if err != nil {
			name := ""
			if upd.Name != nil {
				name = *upd.Name
			}
			return endpointErr(err, name)
		}
		return insertAudit(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return row.toDomain(), nil
}

// DeleteEndpoint removes an endpoint; ENOTFOUND when there is none.
func (s *Store) DeleteEndpoint(ctx context.Context, orgID, id string, ev *credvault.AuditEvent) error {
	if !isUUID(id) {
		return credvault.Errorf(credvault.ENOTFOUND, "endpoint not found")
	}
	return s.inTx(ctx, "endpoint", func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM endpoints WHERE org_id = $1 AND id = $2`, orgID, id)
		if err != nil {
			return translate(err, "endpoint")
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return credvault.Errorf(credvault.ENOTFOUND, "endpoint not found")
		}
		return insertAudit(ctx, tx, ev)
	})
}

func endpointErr(err error, name string) error {
	e := translate(err, "endpoint")
	if credvault.ErrorCode(e) == credvault.ECONFLICT {
		return credvault.Errorf(credvault.ECONFLICT, "an endpoint named %q already exists", name)
	}
	return e
}
