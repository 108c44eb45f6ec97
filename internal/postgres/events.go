package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"credvault/internal/credvault"
)

// OnJobs sets the function that hands jobs to the job queue (its
// transactional insert). It runs inside the transaction that made them, so
// that a change, its event, the deliveries and their jobs commit together
// or not at all. Without it (commands that serve nothing) jobs are not
// queued; the deliveries stay pending for the next instance that serves.
func (s *Store) OnJobs(fn func(ctx context.Context, tx *sql.Tx, jobs []credvault.Job) error) {
	s.enqueue = fn
}

// OnEmitted sets the function told each event type once its transaction
// has committed (the events-emitted metric).
func (s *Store) OnEmitted(fn func(eventType string)) { s.emitted = fn }

// EmitEvent stores ev (an audit record carrying an event) with its event
// and deliveries in one transaction; a no-op when the event's DedupeKey
// was stored before.
func (s *Store) EmitEvent(ctx context.Context, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "event", func(tx *txn) error { return insertAudit(ctx, tx, ev) })
}

// insertEvent stores e and one delivery of it per enabled webhook of its
// org subscribed to its type, and enqueues them. stored is false when e's
// DedupeKey was already taken (nothing written).
func insertEvent(ctx context.Context, tx *txn, e *credvault.Event) (stored bool, err error) {
	if e.ID == "" {
		e.ID = uuid.NewString()
	}
	data, err := json.Marshal(e.Data)
	if err != nil {
		return false, credvault.Wrap(credvault.EINTERNAL, err, "encode event")
	}
	var dedupe any
	if e.DedupeKey != "" {
		dedupe = e.DedupeKey
	}
	err = tx.QueryRowxContext(ctx, `
		INSERT INTO events (id, org_id, type, subject_id, data, dedupe_key)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (dedupe_key) DO NOTHING
		RETURNING created_at`, e.ID, e.OrgID, e.Type, e.SubjectID, data, dedupe).Scan(&e.CreatedAt)
	if err == sql.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, translate(err, "event")
	}
	var ids []int64
	if err := tx.SelectContext(ctx, &ids, `
		INSERT INTO webhook_deliveries (webhook_id, event_id)
		SELECT id, $1 FROM webhooks
		WHERE org_id = $2 AND enabled AND ($3 = ANY (event_types) OR '*' = ANY (event_types))
		RETURNING id`, e.ID, e.OrgID, e.Type); err != nil {
		return false, translate(err, "webhook delivery")
	}
	if err := tx.enqueue(ctx, ids); err != nil {
		return false, err
	}
	tx.events = append(tx.events, e.Type)
	return true, nil
}

// enqueue hands the sending of new deliveries to the job queue inside tx.
func (tx *txn) enqueue(ctx context.Context, ids []int64) error {
	jobs := make([]credvault.Job, len(ids))
	for i, id := range ids {
		jobs[i] = credvault.Job{Kind: credvault.JobDelivery, DeliveryID: id}
	}
	return tx.queue(ctx, jobs)
}

// queue hands jobs to the job queue inside tx.
func (tx *txn) queue(ctx context.Context, jobs []credvault.Job) error {
	if len(jobs) == 0 || tx.store.enqueue == nil {
		return nil
	}
	if err := tx.store.enqueue(ctx, tx.Tx.Tx, jobs); err != nil {
		return credvault.Wrap(credvault.EUNAVAILABLE, err, "enqueue jobs")
	}
	return nil
}

// FindEvents lists an org's events newest first, created after since.
func (s *Store) FindEvents(ctx context.Context, orgID string, since time.Time, limit int) ([]*credvault.Event, error) {
	var rows []struct {
		ID        string    `db:"id"`
		Type      string    `db:"type"`
		SubjectID string    `db:"subject_id"`
		Data      []byte    `db:"data"`
		CreatedAt time.Time `db:"created_at"`
	}
	if err := s.db.SelectContext(ctx, &rows, `
		SELECT id, type, subject_id, data, created_at FROM events
		WHERE org_id = $1 AND created_at > $2 ORDER BY created_at DESC LIMIT $3`, orgID, since, limit); err != nil {
		return nil, translate(err, "events")
	}
	out := make([]*credvault.Event, len(rows))
	for i, r := range rows {
		e := &credvault.Event{ID: r.ID, OrgID: orgID, Type: r.Type, SubjectID: r.SubjectID, CreatedAt: r.CreatedAt}
		if err := json.Unmarshal(r.Data, &e.Data); err != nil {
			return nil, credvault.Wrap(credvault.EINTERNAL, err, "decode event")
		}
		out[i] = e
	}
	return out, nil
}

// OutboxStats is what the outbox metrics read: deliveries not yet
// delivered (nor given up) and the age of the oldest of them.
func (s *Store) OutboxStats(ctx context.Context) (depth int64, oldest time.Duration, err error) {
	var row struct {
		N      int64           `db:"n"`
		Oldest sql.NullFloat64 `db:"oldest"`
	}
	if err := s.db.GetContext(ctx, &row, `
		SELECT count(*) AS n, EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS oldest
		FROM webhook_deliveries WHERE status = 'pending'`); err != nil {
		return 0, 0, translate(err, "outbox")
	}
	return row.N, time.Duration(row.Oldest.Float64 * float64(time.Second)), nil
}

// eventTypes is a text[] parameter.
func eventTypes(t []string) any { return pq.StringArray(t) }

// revokedEvents records, inside tx, an api_key.revoked event (and its
// audit record, by parent's actor) for each key a user change revoked:
// reason says why ("creator_removed", "creator_demoted").
func revokedEvents(ctx context.Context, tx *txn, parent *credvault.AuditEvent, ids []string, reason string) error {
	for _, id := range ids {
		var k struct {
			Name        string `db:"name"`
			Display     string `db:"display"`
			Environment string `db:"environment"`
		}
		if err := tx.GetContext(ctx, &k, `SELECT name, prefix || '_…' || last4 AS display, environment FROM api_keys WHERE id = $1`, id); err != nil {
			return translate(err, "API key")
		}
		ev := &credvault.AuditEvent{OrgID: parent.OrgID, ActorType: parent.ActorType, ActorID: parent.ActorID, RequestID: parent.RequestID,
			Action: "api_key.revoke", ResourceType: "api_key", ResourceID: id, Data: map[string]any{"display": k.Display, "reason": reason}}
		credvault.WithEvent(ev, credvault.EventKeyRevoked, id, map[string]any{"key_id": id, "name": k.Name, "display": k.Display,
			"environment": k.Environment, "reason": reason})
		if err := insertAudit(ctx, tx, ev); err != nil {
			return err
		}
	}
	return nil
}
