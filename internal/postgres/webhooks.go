package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/lib/pq"

	"credvault/internal/credvault"
)

type webhookRow struct {
	ID               string         `db:"id"`
	OrgID            string         `db:"org_id"`
	URL              string         `db:"url"`
	Description      string         `db:"description"`
	EventTypes       pq.StringArray `db:"event_types"`
	Enabled          bool           `db:"enabled"`
	SecretCiphertext string         `db:"secret_ciphertext"`
	CreatedBy        sql.NullString `db:"created_by"`
	CreatedAt        time.Time      `db:"created_at"`
	UpdatedAt        time.Time      `db:"updated_at"`
}

func (r *webhookRow) toDomain() *credvault.Webhook {
	return &credvault.Webhook{ID: r.ID, OrgID: r.OrgID, URL: r.URL, Description: r.Description,
		EventTypes: append([]string{}, r.EventTypes...), Enabled: r.Enabled, SecretCiphertext: r.SecretCiphertext,
		CreatedBy: nullString(r.CreatedBy), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

const webhookColumns = `id, org_id, url, description, event_types, enabled, secret_ciphertext, created_by, created_at, updated_at`

// CreateWebhook stores w (its id is set by the service, which derived the
// secret's encryption context from it).
func (s *Store) CreateWebhook(ctx context.Context, w *credvault.Webhook, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "webhook", func(tx *txn) error {
		var row webhookRow
		if err := tx.GetContext(ctx, &row, `
			INSERT INTO webhooks (id, org_id, url, description, event_types, enabled, secret_ciphertext, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+webhookColumns,
			w.ID, w.OrgID, w.URL, w.Description, eventTypes(w.EventTypes), w.Enabled, w.SecretCiphertext, w.CreatedBy); err != nil {
			return translate(err, "webhook")
		}
		*w = *row.toDomain()
		return insertAudit(ctx, tx, ev)
	})
}

// FindWebhookByID returns ENOTFOUND for an id outside orgID ("" = any org,
// for the sender).
func (s *Store) FindWebhookByID(ctx context.Context, orgID, id string) (*credvault.Webhook, error) {
	if !isUUID(id) {
		return nil, credvault.Errorf(credvault.ENOTFOUND, "webhook not found")
	}
	var row webhookRow
	if err := s.db.GetContext(ctx, &row, `SELECT `+webhookColumns+` FROM webhooks WHERE id = $1 AND ($2 = '' OR org_id::text = $2)`, id, orgID); err != nil {
		return nil, translate(err, "webhook")
	}
	return row.toDomain(), nil
}

// FindWebhooks lists an org's webhooks newest first after page.Cursor.
func (s *Store) FindWebhooks(ctx context.Context, orgID string, page credvault.Page) ([]*credvault.Webhook, error) {
	var rows []webhookRow
	at, id := keyset(page.Cursor)
	if err := s.db.SelectContext(ctx, &rows, `
		SELECT `+webhookColumns+` FROM webhooks
		WHERE org_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
		ORDER BY created_at DESC, id DESC LIMIT $4`, orgID, at, id, limit(page.Limit)); err != nil {
		return nil, translate(err, "webhooks")
	}
	out := make([]*credvault.Webhook, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
	}
	return out, nil
}

// UpdateWebhook applies upd; ENOTFOUND outside orgID.
func (s *Store) UpdateWebhook(ctx context.Context, orgID, id string, upd credvault.WebhookUpdate, ev *credvault.AuditEvent) (*credvault.Webhook, error) {
	if !isUUID(id) {
		return nil, credvault.Errorf(credvault.ENOTFOUND, "webhook not found")
	}
	var row webhookRow
	var types any
	if upd.EventTypes != nil {
		types = eventTypes(upd.EventTypes)
	}
	err := s.inTx(ctx, "webhook", func(tx *txn) error {
		if err := tx.GetContext(ctx, &row, `
			UPDATE webhooks SET url = COALESCE($3, url), description = COALESCE($4, description),
				event_types = COALESCE($5, event_types), enabled = COALESCE($6, enabled), updated_at = now()
			WHERE org_id = $1 AND id = $2 RETURNING `+webhookColumns, orgID, id, upd.URL, upd.Description, types, upd.Enabled); err != nil {
			return translate(err, "webhook")
		}
		return insertAudit(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return row.toDomain(), nil
}

// DeleteWebhook removes it with its deliveries; ENOTFOUND outside orgID.
func (s *Store) DeleteWebhook(ctx context.Context, orgID, id string, ev *credvault.AuditEvent) error {
	if !isUUID(id) {
		return credvault.Errorf(credvault.ENOTFOUND, "webhook not found")
	}
	return s.inTx(ctx, "webhook", func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhooks WHERE org_id = $1 AND id = $2`, orgID, id)
		if err != nil {
			return translate(err, "webhook")
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return credvault.Errorf(credvault.ENOTFOUND, "webhook not found")
		}
		return insertAudit(ctx, tx, ev)
	})
}

type deliveryRow struct {
	ID            int64          `db:"id"`
	WebhookID     string         `db:"webhook_id"`
	EventID       string         `db:"event_id"`
	EventType     string         `db:"type"`
	Status        string         `db:"status"`
	Attempts      int            `db:"attempts"`
	LastStatus    int            `db:"last_status"`
	LastError     string         `db:"last_error"`
	NextAttemptAt sql.NullTime   `db:"next_attempt_at"`
	DeliveredAt   sql.NullTime   `db:"delivered_at"`
	CreatedAt     time.Time      `db:"created_at"`
	OrgID         string         `db:"org_id"`
	Data          []byte         `db:"data"`
	EventAt       time.Time      `db:"event_at"`
	SubjectID     string         `db:"subject_id"`
	Log           sql.NullString `db:"log"`
}

func (r *deliveryRow) toDomain() (*credvault.Delivery, error) {
	d := &credvault.Delivery{ID: r.ID, WebhookID: r.WebhookID, EventID: r.EventID, MessageID: "evt_" + r.EventID,
		EventType: r.EventType, Status: r.Status, Attempts: r.Attempts, LastStatus: r.LastStatus, LastError: r.LastError,
		NextAttemptAt: nullTime(r.NextAttemptAt), DeliveredAt: nullTime(r.DeliveredAt), CreatedAt: r.CreatedAt, Log: []credvault.Attempt{}}
	if r.Log.Valid {
		if err := json.Unmarshal([]byte(r.Log.String), &d.Log); err != nil {
			return nil, credvault.Wrap(credvault.EINTERNAL, err, "decode delivery attempts")
		}
	}
	return d, nil
}

const deliverySelect = `
	SELECT d.id, d.webhook_id, d.event_id, e.type, d.status, d.attempts, d.last_status, d.last_error,
		d.next_attempt_at, d.delivered_at, d.created_at, e.org_id, e.data, e.created_at AS event_at, e.subject_id,
		(SELECT json_agg(json_build_object('attempt', a.attempt, 'status', a.status, 'latency_ms', a.latency_ms,
			'error', a.error, 'created_at', a.created_at) ORDER BY a.id)
		 FROM webhook_attempts a WHERE a.delivery_id = d.id) AS log
	FROM webhook_deliveries d JOIN events e ON e.id = d.event_id`

// FindDeliveries lists a webhook's deliveries newest first, before cursor.
func (s *Store) FindDeliveries(ctx context.Context, orgID, webhookID string, cursor int64, n int) ([]*credvault.Delivery, error) {
	var rows []deliveryRow
	if err := s.db.SelectContext(ctx, &rows, deliverySelect+`
		WHERE d.webhook_id = $1 AND e.org_id = $2 AND ($3 = 0 OR d.id < $3)
		ORDER BY d.id DESC LIMIT $4`, webhookID, orgID, cursor, limit(n)); err != nil {
		return nil, translate(err, "deliveries")
	}
	out := make([]*credvault.Delivery, len(rows))
	for i := range rows {
		d, err := rows[i].toDomain()
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}

// CreateTestDelivery stores the test event and one delivery of it to the
// webhook, and enqueues it; ENOTFOUND outside orgID.
func (s *Store) CreateTestDelivery(ctx context.Context, orgID, webhookID string, e *credvault.Event, ev *credvault.AuditEvent) (*credvault.Delivery, error) {
	if !isUUID(webhookID) {
		return nil, credvault.Errorf(credvault.ENOTFOUND, "webhook not found")
	}
	var id int64
	err := s.inTx(ctx, "webhook", func(tx *txn) error {
		var found bool
		if err := tx.GetContext(ctx, &found, `SELECT EXISTS (SELECT 1 FROM webhooks WHERE org_id = $1 AND id = $2)`, orgID, webhookID); err != nil {
			return translate(err, "webhook")
		}
		if !found {
			return credvault.Errorf(credvault.ENOTFOUND, "webhook not found")
		}
		data, _ := json.Marshal(e.Data)
		if _, err := tx.ExecContext(ctx, `INSERT INTO events (id, org_id, type, subject_id, data) VALUES ($1, $2, $3, $4, $5)`,
			e.ID, orgID, e.Type, e.SubjectID, data); err != nil {
			return translate(err, "event")
		}
		if err := tx.GetContext(ctx, &id, `INSERT INTO webhook_deliveries (webhook_id, event_id) VALUES ($1, $2) RETURNING id`, webhookID, e.ID); err != nil {
			return translate(err, "webhook delivery")
		}
		if err := tx.enqueue(ctx, []int64{id}); err != nil {
			return err
		}
		tx.events = append(tx.events, e.Type)
		return insertAudit(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return s.findDelivery(ctx, id)
}

// RedeliverDelivery makes a delivery pending again and enqueues a manual
// job for it (credvault.Job.Manual).
func (s *Store) RedeliverDelivery(ctx context.Context, orgID, webhookID string, deliveryID int64, ev *credvault.AuditEvent) (*credvault.Delivery, error) {
	if !isUUID(webhookID) {
		return nil, credvault.Errorf(credvault.ENOTFOUND, "delivery not found")
	}
	err := s.inTx(ctx, "webhook delivery", func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE webhook_deliveries d SET status = 'pending', next_attempt_at = now()
			FROM webhooks w WHERE d.id = $1 AND d.webhook_id = $2 AND w.id = d.webhook_id AND w.org_id = $3`,
			deliveryID, webhookID, orgID)
		if err != nil {
			return translate(err, "webhook delivery")
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return credvault.Errorf(credvault.ENOTFOUND, "delivery not found")
		}
		if err := tx.queue(ctx, []credvault.Job{{Kind: credvault.JobDelivery, DeliveryID: deliveryID, Manual: true}}); err != nil {
			return err
		}
		return insertAudit(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return s.findDelivery(ctx, deliveryID)
}

func (s *Store) findDelivery(ctx context.Context, id int64) (*credvault.Delivery, error) {
	var row deliveryRow
	if err := s.db.GetContext(ctx, &row, deliverySelect+` WHERE d.id = $1`, id); err != nil {
		return nil, translate(err, "webhook delivery")
	}
	return row.toDomain()
}

// FindOutgoing loads a delivery for sending; ENOTFOUND when it (or its
// webhook) was deleted meanwhile.
func (s *Store) FindOutgoing(ctx context.Context, deliveryID int64) (*credvault.Outgoing, error) {
	var row deliveryRow
	if err := s.db.GetContext(ctx, &row, deliverySelect+` WHERE d.id = $1`, deliveryID); err != nil {
		return nil, translate(err, "webhook delivery")
	}
	d, err := row.toDomain()
	if err != nil {
		return nil, err
	}
	e := &credvault.Event{ID: row.EventID, OrgID: row.OrgID, Type: row.EventType, SubjectID: row.SubjectID, CreatedAt: row.EventAt}
	if err := json.Unmarshal(row.Data, &e.Data); err != nil {
		return nil, credvault.Wrap(credvault.EINTERNAL, err, "decode event")
	}
	w, err := s.FindWebhookByID(ctx, "", row.WebhookID)
	if err != nil {
		return nil, err
	}
	return &credvault.Outgoing{Delivery: d, Event: e, Webhook: w}, nil
}

// RecordAttempt appends one attempt to a delivery's log and sets its
// status: delivered, failed (given up), or pending until next.
func (s *Store) RecordAttempt(ctx context.Context, deliveryID int64, a credvault.Attempt, status string, next *time.Time) error {
	return s.inTx(ctx, "webhook delivery", func(tx *txn) error {
		var n int
		if err := tx.GetContext(ctx, &n, `
			UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3, status = $4,
				next_attempt_at = $5, delivered_at = CASE WHEN $4 = 'delivered' THEN now() ELSE delivered_at END
			WHERE id = $1 RETURNING attempts`, deliveryID, a.Status, a.Error, status, next); err != nil {
			return translate(err, "webhook delivery")
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_attempts (delivery_id, attempt, status, latency_ms, error) VALUES ($1, $2, $3, $4, $5)`,
			deliveryID, n, a.Status, a.LatencyMS, a.Error)
		return translate(err, "webhook attempt")
	})
}

// OverdueDeliveries lists pending deliveries due before before, oldest
// first.
func (s *Store) OverdueDeliveries(ctx context.Context, before time.Time, n int) ([]int64, error) {
	var ids []int64
	err := s.db.SelectContext(ctx, &ids, `
		SELECT id FROM webhook_deliveries WHERE status = 'pending' AND COALESCE(next_attempt_at, created_at) < $1
		ORDER BY created_at LIMIT $2`, before, n)
	return ids, translate(err, "webhook deliveries")
}
