// Package events sends credvault's event stream to webhooks: the payload
// and its Standard Webhooks signature, the sender with its retry schedule,
// the jobs that run them once across replicas, the scheduled credential
// health checks and the aggregator that turns the hot paths' counts into
// spike and rate-limit events.
package events

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"credvault/internal/credvault"
)

// Payload is the JSON body of a delivery, in the shape the Standard
// Webhooks specification recommends: type, timestamp (of the event, RFC
// 3339) and data. data carries the org id and what the event is about;
// never a secret.
type Payload struct {
	Type      string         `json:"type"`
	Timestamp time.Time      `json:"timestamp"`
	Data      map[string]any `json:"data"`
}

// Body is the delivery body of e. It is the same bytes on every attempt.
func Body(e *credvault.Event) ([]byte, error) {
	data := make(map[string]any, len(e.Data)+2)
	for k, v := range e.Data {
		data[k] = v
	}
	data["org_id"] = e.OrgID
	data["event_id"] = e.MessageID()
	return json.Marshal(Payload{Type: e.Type, Timestamp: e.CreatedAt.UTC(), Data: data})
}

// Sign sets the three Standard Webhooks headers on h: webhook-id (msgID,
// the same on every attempt), webhook-timestamp (at, Unix seconds) and
// webhook-signature ("v1," + base64 HMAC-SHA256 of "id.timestamp.body"
// under the secret's base64-decoded bytes), through the specification's
// own library. Errors: a secret that is not whsec_ + base64.
func Sign(h http.Header, secret credvault.Secret, msgID string, at time.Time, body []byte) error {
	wh, err := standardwebhooks.NewWebhook(secret.Reveal())
	if err != nil {
		return credvault.Errorf(credvault.EINTERNAL, "webhook signing secret is not whsec_ base64")
	}
	sig, err := wh.Sign(msgID, at, body)
	if err != nil {
		return credvault.Wrap(credvault.EINTERNAL, err, "sign webhook")
	}
	h.Set(standardwebhooks.HeaderWebhookID, msgID)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, formatUnix(at))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	return nil
}

func formatUnix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
