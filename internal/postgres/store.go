package postgres

import (
	"context"
	"encoding/json"

	"github.com/jmoiron/sqlx"

	"credvault/internal/credvault"
)

// InvalidationChannel is the LISTEN/NOTIFY channel on which every change
// that affects verification is announced to every instance. Payloads are
// "key:<hex sha256>" (drop that key), "user:<uuid>" (drop that user's keys)
// and "new:<hex sha256>" (a key was created).
const InvalidationChannel = "credvault_invalidate"

// Store implements the domain's store interfaces on PostgreSQL.
type Store struct {
	db *sqlx.DB
}

// NewStore returns a Store on db.
func NewStore(db *sqlx.DB) *Store { return &Store{db: db} }

// DB exposes the pool (for readiness checks and jobs).
func (s *Store) DB() *sqlx.DB { return s.db }

// inTx runs fn in a transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, what string, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return translate(err, what)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return translate(tx.Commit(), what)
}

// insertAudit appends ev inside tx, so that a change and its audit record
// are stored together or not at all.
func insertAudit(ctx context.Context, tx *sqlx.Tx, ev *credvault.AuditEvent) error {
	if ev == nil {
		return nil
	}
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return credvault.Wrap(credvault.EINTERNAL, err, "encode audit event")
	}
	var orgID any
	if ev.OrgID != "" {
		orgID = ev.OrgID
	}
	err = tx.QueryRowxContext(ctx, `
		INSERT INTO audit_events (org_id, actor_type, actor_id, action, resource_type, resource_id, request_id, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		RETURNING id, created_at`,
		orgID, ev.ActorType, ev.ActorID, ev.Action, ev.ResourceType, ev.ResourceID, ev.RequestID, data,
	).Scan(&ev.ID, &ev.CreatedAt)
	return translate(err, "audit event")
}

// notify announces an invalidation; PostgreSQL delivers it on commit.
func notify(ctx context.Context, tx *sqlx.Tx, payload string) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, InvalidationChannel, payload)
	return translate(err, "notify")
}

// limit clamps a page size to 1..500, 100 by default.
func limit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 500:
		return 500
	}
	return n
}
