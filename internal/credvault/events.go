package credvault

import (
	"context"
	"time"
)

// Event types: everything credvault tells an org's webhooks. Each is also
// an audit event (action = the type). Data holds ids, names and figures,
// never a secret.
const (
	EventKeyExpiring         = "api_key.expiring"       // 7 days and 1 day before expires_at
	EventKeyExpired          = "api_key.expired"        // once, after expires_at
	EventKeyRevoked          = "api_key.revoked"        // POST /v1/api-keys/{id}/revoke
	EventKeyRefusalsSpike    = "api_key.refusals_spike" // see SpikeRule
	EventKeyRateLimited      = "api_key.rate_limited"   // once per key per rate-limit window
	EventIntegrationDisabled = "integration.disabled"
	EventIntegrationEnabled  = "integration.enabled"
	EventHealthFailed        = "credential.health_failed"    // a scheduled check failed after passing (or first)
	EventHealthRecovered     = "credential.health_recovered" // a scheduled check passed after failing
	EventCredentialExpiring  = "credential.expiring"         // 7 days and 1 day before the value's expires_at
	EventOAuthNeedsReauth    = "oauth.needs_reauth"
	EventOAuthRefreshFailing = "oauth.refresh_failing"
	EventOAuthRecovered      = "oauth.recovered"
	// EventWebhookTest is what "send test event" sends; it goes only to
	// the webhook it was asked for and cannot be subscribed to.
	EventWebhookTest = "webhook.test"
)

// EventTypes lists the types a webhook may subscribe to, in the order the
// API documents them.
var EventTypes = []string{
	EventKeyExpiring, EventKeyExpired, EventKeyRevoked, EventKeyRefusalsSpike, EventKeyRateLimited,
	EventIntegrationDisabled, EventIntegrationEnabled,
	EventHealthFailed, EventHealthRecovered, EventCredentialExpiring,
	EventOAuthNeedsReauth, EventOAuthRefreshFailing, EventOAuthRecovered,
}

// IsEventType reports whether t is one of EventTypes.
func IsEventType(t string) bool {
	for _, e := range EventTypes {
		if e == t {
			return true
		}
	}
	return false
}

// Event is one entry of the event stream. ID is a UUID; the webhook-id of
// every delivery of it is "evt_" + ID, the same on every attempt.
type Event struct {
	ID        string         `json:"id"`
	OrgID     string         `json:"org_id"`
	Type      string         `json:"type"`
	SubjectID string         `json:"subject_id"` // the key, credential or integration it is about
	Data      map[string]any `json:"data"`
	// DedupeKey, when set, makes the event happen once: a second event
	// with the same key is dropped, its audit record too.
	DedupeKey string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// MessageID is the webhook-id of the event's deliveries.
func (e *Event) MessageID() string { return "evt_" + e.ID }

// WithEvent makes ev (the audit record of a change) also the event typ
// about subject with data, so that the store writes the event and its
// deliveries in the change's transaction. It returns ev.
func WithEvent(ev *AuditEvent, typ, subjectID string, data map[string]any) *AuditEvent {
	if data == nil {
		data = map[string]any{}
	}
	ev.Emit = &Event{OrgID: ev.OrgID, Type: typ, SubjectID: subjectID, Data: data}
	return ev
}

// EventStore writes events that go with no other change (a reminder, a
// spike, a health transition). EmitEvent stores ev and its event in one
// transaction; it is a no-op for an event whose DedupeKey was seen.
type EventStore interface {
	EmitEvent(ctx context.Context, ev *AuditEvent) error
}

// IntegrationEvent is the hook the integrations service calls when an
// integration is disabled or enabled: it marks ev (the audit record the
// store writes with the change) as integration.disabled or
// integration.enabled, with the integration's id and name and how many
// keys it holds. It returns ev.
func IntegrationEvent(ev *AuditEvent, integrationID, name string, enabled bool, keys int) *AuditEvent {
	typ := EventIntegrationDisabled
	if enabled {
		typ = EventIntegrationEnabled
	}
	return WithEvent(ev, typ, integrationID, map[string]any{"integration_id": integrationID, "name": name, "enabled": enabled, "keys": keys})
}

// OAuth connection states that raise an event, as oauth.status names them.
const (
	OAuthStatusNeedsReauth    = "needs_reauth"
	OAuthStatusRefreshFailing = "refresh_failing"
	OAuthStatusConnected      = "connected"
)

// OAuthEvent is the hook the OAuth refresher calls when a connection
// changes state: to needs_reauth or refresh_failing, or back to connected
// after one of them (oauth.recovered). It marks ev as the matching event
// with the credential's id and name, the status before and after, and
// failures (consecutive failed refreshes; 0 when recovered); it returns
// ev, or ev unchanged when the change tells nothing (connected after
// connected). reason is a short code (such as "invalid_grant"), never a
// token or a provider's response body.
func OAuthEvent(ev *AuditEvent, credentialID, name, from, to, reason string, failures int) *AuditEvent {
	var typ string
	switch {
	case to == OAuthStatusNeedsReauth:
		typ = EventOAuthNeedsReauth
	case to == OAuthStatusRefreshFailing:
		typ = EventOAuthRefreshFailing
	case to == OAuthStatusConnected && (from == OAuthStatusNeedsReauth || from == OAuthStatusRefreshFailing):
		typ = EventOAuthRecovered
	default:
		return ev
	}
	return WithEvent(ev, typ, credentialID, map[string]any{"credential_id": credentialID, "name": name,
		"from": from, "to": to, "reason": reason, "failures": failures})
}

// EmitSystemEvent stores an event with no change around it, as the
// system: its audit record (action = typ) and the event, in one
// transaction. dedupe, when set, makes it happen once. Errors: those of
// the store (EUNAVAILABLE).
func EmitSystemEvent(ctx context.Context, store EventStore, orgID, typ, resourceType, subjectID, dedupe string, data map[string]any) error {
	ev := newAuditEvent(context.WithoutCancel(ctx), orgID, typ, resourceType, subjectID, copyData(data))
	WithEvent(ev, typ, subjectID, data)
	ev.Emit.DedupeKey = dedupe
	return store.EmitEvent(ctx, ev)
}

func copyData(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Job is work a store hands to the job queue in the transaction that made
// it: the sending of one delivery, or one scheduled health check.
type Job struct {
	Kind       string
	DeliveryID int64 // JobDelivery
	// Manual marks a JobDelivery asked for by a person (a redelivery): a
	// job of its own, never folded into the delivery's automatic one, that
	// sends on its first run whatever the delivery's status then.
	Manual       bool
	CredentialID string    // JobHealthCheck
	OrgID        string    // JobHealthCheck
	Slot         time.Time // JobHealthCheck: the interval it is the check of
}

// Job kinds.
const (
	JobDelivery    = "webhook_delivery"
	JobHealthCheck = "credential_health_check"
)
