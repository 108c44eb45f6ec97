package credvault

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Webhook is an org's subscription to events: where to POST them and which
// types. Its signing secret is write-only: shown once at creation (Secret
// is set only then) and stored encrypted through Vault transit.
type Webhook struct {
	ID          string    `json:"id"`
	OrgID       string    `json:"org_id"`
	URL         string    `json:"url"`
	Description string    `json:"description"`
	EventTypes  []string  `json:"event_types"`
	Enabled     bool      `json:"enabled"`
	CreatedBy   *string   `json:"created_by"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// SecretCiphertext is the transit ciphertext of the signing secret.
	SecretCiphertext string `json:"-"`
}

// WebhookUpdate holds what PATCH /v1/webhooks/{id} may change; nil leaves
// a field as it is.
type WebhookUpdate struct {
	URL         *string
	Description *string
	EventTypes  []string // nil: unchanged
	Enabled     *bool
}

// Delivery is one event sent (or to be sent) to one webhook, with its
// attempts: the delivery log.
type Delivery struct {
	ID            int64      `json:"id"`
	WebhookID     string     `json:"webhook_id"`
	EventID       string     `json:"event_id"`
	MessageID     string     `json:"message_id"` // the webhook-id header
	EventType     string     `json:"event_type"`
	Status        string     `json:"status"` // pending, delivered, failed
	Attempts      int        `json:"attempts"`
	LastStatus    int        `json:"last_status"`
	LastError     string     `json:"last_error"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	DeliveredAt   *time.Time `json:"delivered_at"`
	CreatedAt     time.Time  `json:"created_at"`
	Log           []Attempt  `json:"attempt_log"`
}

// Attempt is one try of a delivery: the receiver's HTTP status (0 when
// none came back), the time to the response, and a short error text that
// never holds a body or a secret.
type Attempt struct {
	Attempt   int       `json:"attempt"`
	Status    int       `json:"status"`
	LatencyMS int       `json:"latency_ms"`
	Error     string    `json:"error"`
	CreatedAt time.Time `json:"created_at"`
}

// Outgoing is what the sender needs for one delivery: the delivery, its
// event and its webhook.
type Outgoing struct {
	Delivery *Delivery
	Event    *Event
	Webhook  *Webhook
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// WebhookStore persists webhooks and their delivery log. Creating a
// delivery (a test send, a redelivery) also enqueues its sending job in
// the same transaction.
type WebhookStore interface {
	CreateWebhook(ctx context.Context, w *Webhook, ev *AuditEvent) error
	// FindWebhookByID returns ENOTFOUND for an id outside orgID.
	FindWebhookByID(ctx context.Context, orgID, id string) (*Webhook, error)
	FindWebhooks(ctx context.Context, orgID string, page Page) ([]*Webhook, error)
	UpdateWebhook(ctx context.Context, orgID, id string, upd WebhookUpdate, ev *AuditEvent) (*Webhook, error)
	DeleteWebhook(ctx context.Context, orgID, id string, ev *AuditEvent) error
	// FindDeliveries lists a webhook's deliveries, newest first, before
	// cursor (a delivery id; 0 for the first page), with their attempts.
	FindDeliveries(ctx context.Context, orgID, webhookID string, cursor int64, limit int) ([]*Delivery, error)
	// CreateTestDelivery stores e (a webhook.test event) and one delivery
	// of it to webhookID, and enqueues it.
	CreateTestDelivery(ctx context.Context, orgID, webhookID string, e *Event, ev *AuditEvent) (*Delivery, error)
	// RedeliverDelivery makes a delivery pending again and enqueues it;
	// ENOTFOUND outside the org or webhook.
	RedeliverDelivery(ctx context.Context, orgID, webhookID string, deliveryID int64, ev *AuditEvent) (*Delivery, error)
}

// WebhookService manages an org's webhooks: owners and admins whose key
// holds scope admin.
type WebhookService struct {
	Store   WebhookStore
	Transit Transit
	// CheckURL is the egress policy of the proxy applied to a delivery
	// URL before it is stored (injector.CheckDestination); the sender
	// checks every address again at dial time.
	CheckURL func(u *url.URL) error
}

// CreateWebhookInput is POST /v1/webhooks.
type CreateWebhookInput struct {
	URL         string
	Description string
	EventTypes  []string
	Enabled     *bool
}

// WebhookContext is the transit derivation context of a webhook's signing
// secret.
func WebhookContext(orgID, webhookID string) []byte {
	return []byte("org:" + orgID + "|webhook:" + webhookID)
}

// CreateWebhook stores a webhook and returns it with its signing secret
// (whsec_ + base64 of 32 random bytes, per Standard Webhooks), which is
// never shown again. Errors: EFORBIDDEN, EINVALID naming the field,
// EUNAVAILABLE when Vault is down (nothing is stored).
func (s *WebhookService) CreateWebhook(ctx context.Context, in CreateWebhookInput) (*Webhook, Secret, error) {
	p, err := webhookAdmin(ctx)
	if err != nil {
		return nil, Secret{}, err
	}
	w := &Webhook{ID: uuid.NewString(), OrgID: p.OrgID, Description: strings.TrimSpace(in.Description), Enabled: true}
	if in.Enabled != nil {
		w.Enabled = *in.Enabled
	}
	if w.URL, err = s.checkURL(in.URL); err != nil {
		return nil, Secret{}, err
	}
	if w.EventTypes, err = checkEventTypes(in.EventTypes); err != nil {
		return nil, Secret{}, err
	}
	if len(w.Description) > 500 {
		return nil, Secret{}, Errorf(EINVALID, "field \"description\" is longer than 500 characters")
	}
	if p.UserID != "" {
		w.CreatedBy = &p.UserID
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, Secret{}, Wrap(EINTERNAL, err, "generate signing secret")
	}
	secret := NewSecret("whsec_" + base64.StdEncoding.EncodeToString(raw))
	if w.SecretCiphertext, err = s.Transit.Encrypt(ctx, []byte(secret.Reveal()), WebhookContext(w.OrgID, w.ID)); err != nil {
		return nil, Secret{}, err
	}
	ev := newAuditEvent(ctx, p.OrgID, "webhook.create", "webhook", w.ID, map[string]any{"url": w.URL, "event_types": w.EventTypes})
	if err := s.Store.CreateWebhook(ctx, w, ev); err != nil {
		return nil, Secret{}, err
	}
	return w, secret, nil
}

// FindWebhooks lists the org's webhooks. Errors: EFORBIDDEN.
func (s *WebhookService) FindWebhooks(ctx context.Context, page Page) ([]*Webhook, error) {
	p, err := webhookAdmin(ctx)
	if err != nil {
		return nil, err
	}
	return s.Store.FindWebhooks(ctx, p.OrgID, page)
}

// FindWebhook returns one webhook. Errors: EFORBIDDEN, ENOTFOUND.
func (s *WebhookService) FindWebhook(ctx context.Context, id string) (*Webhook, error) {
	p, err := webhookAdmin(ctx)
	if err != nil {
		return nil, err
	}
	return s.Store.FindWebhookByID(ctx, p.OrgID, id)
}

// UpdateWebhook changes URL, description, event types or enabled.
// Errors: EFORBIDDEN, EINVALID naming the field, ENOTFOUND.
func (s *WebhookService) UpdateWebhook(ctx context.Context, id string, upd WebhookUpdate) (*Webhook, error) {
	p, err := webhookAdmin(ctx)
	if err != nil {
		return nil, err
	}
	changed := []string{}
	if upd.URL != nil {
		u, err := s.checkURL(*upd.URL)
		if err != nil {
			return nil, err
		}
		upd.URL, changed = &u, append(changed, "url")
	}
	if upd.EventTypes != nil {
		if upd.EventTypes, err = checkEventTypes(upd.EventTypes); err != nil {
			return nil, err
		}
		changed = append(changed, "event_types")
	}
	if upd.Description != nil {
		d := strings.TrimSpace(*upd.Description)
		if len(d) > 500 {
			return nil, Errorf(EINVALID, "field \"description\" is longer than 500 characters")
		}
		upd.Description, changed = &d, append(changed, "description")
	}
	if upd.Enabled != nil {
		changed = append(changed, "enabled")
	}
	if len(changed) == 0 {
		return nil, Errorf(EINVALID, "nothing to change: send \"url\", \"description\", \"event_types\" and/or \"enabled\"")
	}
	ev := newAuditEvent(ctx, p.OrgID, "webhook.update", "webhook", id, map[string]any{"changed": changed})
	return s.Store.UpdateWebhook(ctx, p.OrgID, id, upd, ev)
}

// DeleteWebhook removes a webhook and its delivery log; pending
// deliveries are dropped. Errors: EFORBIDDEN, ENOTFOUND.
func (s *WebhookService) DeleteWebhook(ctx context.Context, id string) error {
	p, err := webhookAdmin(ctx)
	if err != nil {
		return err
	}
	return s.Store.DeleteWebhook(ctx, p.OrgID, id, newAuditEvent(ctx, p.OrgID, "webhook.delete", "webhook", id, nil))
}

// FindDeliveries is the delivery log of a webhook, newest first. Errors:
// EFORBIDDEN, ENOTFOUND.
func (s *WebhookService) FindDeliveries(ctx context.Context, id string, cursor int64, limit int) ([]*Delivery, error) {
	p, err := webhookAdmin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := s.Store.FindWebhookByID(ctx, p.OrgID, id); err != nil {
		return nil, err
	}
	return s.Store.FindDeliveries(ctx, p.OrgID, id, cursor, limit)
}

// SendTestEvent queues a webhook.test event to the webhook (enabled or
// not), signed like every other. Errors: EFORBIDDEN, ENOTFOUND.
func (s *WebhookService) SendTestEvent(ctx context.Context, id string) (*Delivery, error) {
	p, err := webhookAdmin(ctx)
	if err != nil {
		return nil, err
	}
	e := &Event{ID: uuid.NewString(), OrgID: p.OrgID, Type: EventWebhookTest, SubjectID: id,
		Data: map[string]any{"webhook_id": id, "message": "test event sent from credvault"}}
	ev := newAuditEvent(ctx, p.OrgID, "webhook.test", "webhook", id, map[string]any{"event_id": e.ID})
	return s.Store.CreateTestDelivery(ctx, p.OrgID, id, e, ev)
}

// Redeliver sends a delivery again (with the same webhook-id), whatever
// its status. Errors: EFORBIDDEN, ENOTFOUND.
func (s *WebhookService) Redeliver(ctx context.Context, id string, deliveryID int64) (*Delivery, error) {
	p, err := webhookAdmin(ctx)
	if err != nil {
		return nil, err
	}
	ev := newAuditEvent(ctx, p.OrgID, "webhook.redeliver", "webhook", id, map[string]any{"delivery_id": deliveryID})
	return s.Store.RedeliverDelivery(ctx, p.OrgID, id, deliveryID, ev)
}

// webhookAdmin is the check every webhook call starts with: scope admin
// and an owner's or admin's key. Errors: EUNAUTHORIZED, EFORBIDDEN.
func webhookAdmin(ctx context.Context) (*Principal, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireScope(p, ScopeAdmin); err != nil {
		return nil, err
	}
	if err := requireManager(p, "manage webhooks"); err != nil {
		return nil, err
	}
	return p, nil
}

// checkURL parses and checks a delivery URL: absolute http(s), a host, no
// user info or fragment, at most 2048 characters, and the egress policy.
// Errors: EINVALID naming field "url" (egress_denied for a refused
// address).
func (s *WebhookService) checkURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", Errorf(EINVALID, "field \"url\" is required")
	}
	if len(raw) > 2048 {
		return "", Errorf(EINVALID, "field \"url\" is longer than 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Hostname() == "" {
		return "", Errorf(EINVALID, "field \"url\" must be an absolute http:// or https:// URL")
	}
	if u.User != nil || u.Fragment != "" {
		return "", Errorf(EINVALID, "field \"url\" must not carry user info or a #fragment")
	}
	if s.CheckURL != nil {
		if err := s.CheckURL(u); err != nil {
			return "", &Error{Code: EINVALID, Reason: "egress_denied", Message: "field \"url\": " + ErrorMessage(err), Err: err}
		}
	}
	return u.String(), nil
}

// checkEventTypes validates a subscription: at least one type, each known,
// or "*" for all; duplicates removed. Errors: EINVALID naming
// "event_types".
func checkEventTypes(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, Errorf(EINVALID, "field \"event_types\" needs at least one event type (or \"*\" for all)")
	}
	seen := map[string]bool{}
	out := []string{}
	for _, t := range in {
		if t != "*" && !IsEventType(t) {
			return nil, Errorf(EINVALID, "field \"event_types\": unknown event type %q; known: %s", t, strings.Join(EventTypes, ", "))
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}
