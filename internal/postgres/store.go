package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"sync"

	"github.com/jmoiron/sqlx"

	"credvault/internal/credvault"
)

// InvalidationChannel is the LISTEN/NOTIFY channel on which every change
// that affects verification is announced to every instance, as
// "log:<seq>:<payload>" where seq is the change's key_state_log row.
// Payloads are "key:<hex sha256>" (drop that key), "user:<uuid>" (drop that
// user's keys), "new:<hex sha256>" (a key was created) and "cred:<uuid>"
// (drop that credential's cached value).
const InvalidationChannel = "credvault_invalidate"

// Store implements the domain's store interfaces on PostgreSQL.
type Store struct {
	db *sqlx.DB
	// local receives this instance's own invalidations right after commit
	// (all of one transaction in one call), so that it never answers from
	// stale cache while the notification travels through PostgreSQL.
	local func(payloads ...string)

	prepMu  sync.Mutex
	authKey *sqlx.Stmt // the verification lookup, prepared on first use

	// enqueue schedules the sending of new deliveries inside the
	// transaction that stored them (OnJobs); emitted counts events
	// once their transaction commits (OnEmitted).
	enqueue func(ctx context.Context, tx *sql.Tx, jobs []credvault.Job) error
	emitted func(eventType string)
}

// OnInvalidate sets the function that receives this instance's own
// invalidation payloads as soon as their transaction commits (the same
// payloads every instance gets through LISTEN/NOTIFY), those of one
// transaction in one call.
func (s *Store) OnInvalidate(fn func(payloads ...string)) { s.local = fn }

// txn is a transaction that remembers the key state changes it made.
type txn struct {
	*sqlx.Tx
	changes []stateChange
	events  []string // types of the events stored, counted after commit
	store   *Store
}

// NewStore returns a Store on db.
func NewStore(db *sqlx.DB) *Store { return &Store{db: db} }

// DB exposes the pool (for readiness checks and jobs).
func (s *Store) DB() *sqlx.DB { return s.db }

// inTx runs fn in a transaction, committing when it returns nil; then it
// hands the transaction's invalidations to this instance at once.
func (s *Store) inTx(ctx context.Context, what string, fn func(tx *txn) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return translate(err, what)
	}
	return s.runTx(ctx, tx, what, fn)
}

// runTx runs fn in tx (begun by the caller, on the pool or on a connection
// of its own), commits, and hands the transaction's invalidations and
// events to this instance.
func (s *Store) runTx(ctx context.Context, tx *sqlx.Tx, what string, fn func(tx *txn) error) error {
	defer tx.Rollback()
	t := &txn{Tx: tx, store: s}
	if err := fn(t); err != nil {
		return err
	}
	if err := t.writeChanges(ctx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return translate(err, what)
	}
	if s.local != nil && len(t.changes) > 0 {
		payloads := make([]string, len(t.changes))
		for i, c := range t.changes {
			payloads[i] = c.payload
		}
		s.local(payloads...)
	}
	if s.emitted != nil {
		for _, e := range t.events {
			s.emitted(e)
		}
	}
	return nil
}

// insertAudits appends every one of evs inside tx, as insertAudit.
func insertAudits(ctx context.Context, tx *txn, evs []*credvault.AuditEvent) error {
	for _, ev := range evs {
		if err := insertAudit(ctx, tx, ev); err != nil {
			return err
		}
	}
	return nil
}

// insertAudit appends ev inside tx, so that a change and its audit record
// are stored together or not at all.
func insertAudit(ctx context.Context, tx *txn, ev *credvault.AuditEvent) error {
	if ev == nil {
		return nil
	}
	if ev.Emit != nil {
		stored, err := insertEvent(ctx, tx, ev.Emit)
		if err != nil || !stored {
			return err // a duplicate: neither event nor audit record again
		}
		if ev.Data == nil {
			ev.Data = map[string]any{}
		}
		ev.Data["event"], ev.Data["event_id"] = ev.Emit.Type, ev.Emit.ID
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
