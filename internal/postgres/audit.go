package postgres

import (
	"context"
	"encoding/json"
	"time"

	"credvault/internal/credvault"
)

// CreateAuditEvent appends one event on its own (for events that go with
// no other change, such as a burst of failed verifications).
func (s *Store) CreateAuditEvent(ctx context.Context, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "audit event", func(tx *txn) error { return insertAudit(ctx, tx, ev) })
}

// FindAuditEvents lists an org's events, newest first, before f.Cursor.
func (s *Store) FindAuditEvents(ctx context.Context, orgID string, f credvault.AuditFilter) ([]*credvault.AuditEvent, error) {
	var rows []struct {
		ID           int64     `db:"id"`
		OrgID        string    `db:"org_id"`
		ActorType    string    `db:"actor_type"`
		ActorID      string    `db:"actor_id"`
		Action       string    `db:"action"`
		ResourceType string    `db:"resource_type"`
		ResourceID   string    `db:"resource_id"`
		RequestID    string    `db:"request_id"`
		Data         []byte    `db:"data"`
		CreatedAt    time.Time `db:"created_at"`
	}
	err := s.db.SelectContext(ctx, &rows, `
		SELECT id, org_id, actor_type, actor_id, action, resource_type, resource_id, request_id, data, created_at
		FROM audit_events
		WHERE org_id = $1
		  AND ($2 = '' OR resource_type = $2) AND ($3 = '' OR resource_id = $3)
		  AND ($4 = '' OR actor_id = $4) AND ($5 = '' OR action = $5)
		  AND ($6 = 0 OR id < $6)
		ORDER BY id DESC LIMIT $7`,
		orgID, f.ResourceType, f.ResourceID, f.ActorID, f.Action, f.Cursor, limit(f.Limit))
	if err != nil {
		return nil, translate(err, "audit events")
	}
	out := make([]*credvault.AuditEvent, len(rows))
	for i, r := range rows {
		ev := &credvault.AuditEvent{ID: r.ID, OrgID: r.OrgID, ActorType: r.ActorType, ActorID: r.ActorID, Action: r.Action,
			ResourceType: r.ResourceType, ResourceID: r.ResourceID, RequestID: r.RequestID, CreatedAt: r.CreatedAt}
		if err := json.Unmarshal(r.Data, &ev.Data); err != nil {
			return nil, credvault.Wrap(credvault.EINTERNAL, err, "decode audit event")
		}
		out[i] = ev
	}
	return out, nil
}
