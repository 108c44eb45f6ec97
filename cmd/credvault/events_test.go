package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"credvault/internal/credvault"
	"credvault/internal/events"
)

// fastEvents shortens the event stream's periods so that a test sees
// minutes of schedule in seconds. The spike rule keeps its 5-minute window
// and hour of baseline; only its floor is lower.
func fastEvents() eventOptions {
	return eventOptions{
		backoff:    events.Backoff{First: 100 * time.Millisecond, Max: 400 * time.Millisecond, GiveUpAfter: 24 * time.Hour},
		healthScan: time.Second, // River's shortest period
		aggregate:  time.Second,
		flush:      100 * time.Millisecond,
		remind:     time.Second,
		spikeRule:  events.SpikeRule{Window: 5 * time.Minute, Baseline: time.Hour, Min: 50, Factor: 10},
		jobPoll:    200 * time.Millisecond,
	}
}

// webhookFor creates a webhook for every event type to rcv and returns
// its id and secret.
func (cl *cluster) webhookFor(a *instance, owner string, rcv *receiver) (string, string) {
	cl.t.Helper()
	r := cl.as(owner, "POST", a.url+"/v1/webhooks", map[string]any{"url": rcv.srv.URL + "/hook", "event_types": []string{"*"}})
	if r.status != 201 {
		cl.t.Fatalf("create webhook: %d %s", r.status, r.body)
	}
	m := r.json(cl.t)
	secret, _ := m["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") {
		cl.t.Fatalf("secret %q is not whsec_…", secret)
	}
	return m["id"].(string), secret
}

// upstream is a third-party API whose answer the test switches.
type hookUpstream struct {
	srv    *httptest.Server
	status atomic.Int32
	hits   atomic.Int64
}

func newHookUpstream(t *testing.T, status int) *hookUpstream {
	u := &hookUpstream{}
	u.status.Store(int32(status))
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		w.WriteHeader(int(u.status.Load()))
		fmt.Fprintf(w, `{"echo":%q}`, r.Header.Get("X-Key")) // a careless API echoing the key
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (cl *cluster) checkedCredential(a *instance, owner string, up *hookUpstream) string {
	cl.t.Helper()
	host := strings.TrimPrefix(up.srv.URL, "http://")
	c := cl.createCredential(a, owner, map[string]any{"name": "Billing API", "service": "custom", "placement": "header",
		"param_name": "X-Key", "value": plantedValue, "base_url": up.srv.URL, "allowed_hosts": []string{host},
		"test_request": map[string]any{"method": "GET", "path": "/ping", "expect_status": 200}})
	return c["id"].(string)
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// TestEveryEventTypeIsDeliveredSigned raises each event type and checks
// that it reaches the webhook, signed per Standard Webhooks (verified by
// verifyStandardWebhook, written from the specification); that tampering
// with the body, the timestamp or the id fails verification; that a
// refusal spike and a failing health check each make one event; and that
// no secret appears in any delivery, the delivery log, the audit trail,
// the log lines or the metrics.
func TestEveryEventTypeIsDeliveredSigned(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"})
	a := cl.startWith(startOptions{events: fastEvents()})
	res, owner := cl.bootstrap(a, "acme")
	org := res.OrgID
	rcv := newReceiver(t)
	whID, secret := cl.webhookFor(a, owner, rcv)
	planted := []string{plantedValue, owner, secret, strings.TrimPrefix(secret, "whsec_")}
	ctx := context.Background()

	// api_key.revoked
	revID, revKey := cl.createKey(a, owner, map[string]any{"name": "to revoke", "scopes": []string{"keys:read"}})
	planted = append(planted, revKey)
	if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+revID+"/revoke", nil); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	// api_key.expiring, 7 days and 1 day before
	_, k7 := cl.createKey(a, owner, map[string]any{"name": "ends in 3 days", "scopes": []string{"keys:read"}, "expires_at": rfc3339(time.Now().Add(72 * time.Hour))})
	_, k1 := cl.createKey(a, owner, map[string]any{"name": "ends in 12 hours", "scopes": []string{"keys:read"}, "expires_at": rfc3339(time.Now().Add(12 * time.Hour))})
	// api_key.expired: a key whose end the test moves into the past
	expID, kx := cl.createKey(a, owner, map[string]any{"name": "ended", "scopes": []string{"keys:read"}, "expires_at": rfc3339(time.Now().Add(48 * time.Hour))})
	if _, err := a.s.db.Exec(`UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE id = $1`, expID); err != nil {
		t.Fatal(err)
	}
	// api_key.rate_limited: 2 a minute, 5 calls
	_, limited := cl.createKey(a, owner, map[string]any{"name": "throttled", "scopes": []string{"keys:read"}, "rate_limit": map[string]any{"requests": 2, "window_seconds": 60}})
	for range 5 {
		cl.as(limited, "GET", a.url+"/v1/whoami", nil)
	}
	// api_key.refusals_spike: one key refused 80 times (its baseline is 0)
	_, noisy := cl.createKey(a, owner, map[string]any{"name": "noisy", "scopes": []string{"keys:read"}})
	for range 80 {
		if r := cl.as(noisy, "GET", a.url+"/v1/users", nil); r.status != 403 {
			t.Fatalf("noisy key: %d", r.status)
		}
	}
	planted = append(planted, k7, k1, kx, limited, noisy)
	// integration.* and oauth.*: the hooks the integrations and OAuth
	// services call with their change's audit record.
	for _, ev := range []*credvault.AuditEvent{
		credvault.IntegrationEvent(sysEvent(org, "integration.disable", "integration"), "6f1c4a4e-0000-4000-8000-000000000001", "CRM agent", false, 3),
		credvault.IntegrationEvent(sysEvent(org, "integration.enable", "integration"), "6f1c4a4e-0000-4000-8000-000000000001", "CRM agent", true, 3),
		credvault.OAuthEvent(sysEvent(org, "oauth.status", "credential"), "6f1c4a4e-0000-4000-8000-000000000002", "Google Drive", "connected", "refresh_failing", "temporarily_unavailable", 1),
		credvault.OAuthEvent(sysEvent(org, "oauth.status", "credential"), "6f1c4a4e-0000-4000-8000-000000000002", "Google Drive", "refresh_failing", "needs_reauth", "invalid_grant", 3),
		credvault.OAuthEvent(sysEvent(org, "oauth.status", "credential"), "6f1c4a4e-0000-4000-8000-000000000002", "Google Drive", "needs_reauth", "connected", "", 0),
	} {
		if err := a.s.store.EmitEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	// credential.expiring and credential.health_failed, then recovered
	up := newHookUpstream(t, 500)
	credID := cl.checkedCredential(a, owner, up)
	if r := cl.as(owner, "PUT", a.url+"/v1/credentials/"+credID+"/monitor", map[string]any{
		"interval_seconds": 60, "value_expires_at": rfc3339(time.Now().Add(72 * time.Hour))}); r.status != 200 {
		t.Fatalf("monitor: %d %s", r.status, r.body)
	}
	rcv.waitFor(t, "health_failed", 20*time.Second, ofType(credvault.EventHealthFailed, 1))
	// Every second from now (below the API's minimum, set in the store),
	// so that several failing checks run before it recovers.
	m, err := a.s.store.FindMonitor(ctx, org, credID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.s.store.SetMonitor(ctx, org, credID, 1, m.ValueExpiresAt, sysEvent(org, "credential.monitor", "credential")); err != nil {
		t.Fatal(err)
	}
	waitChecks(t, a, credID, 3)
	up.status.Store(200)
	// webhook.test
	if r := cl.as(owner, "POST", a.url+"/v1/webhooks/"+whID+"/test", nil); r.status != 202 {
		t.Fatalf("test send: %d %s", r.status, r.body)
	}

	want := append(append([]string{}, credvault.EventTypes...), credvault.EventWebhookTest)
	rcv.waitFor(t, "every event type", 30*time.Second, func(got []received) bool {
		for _, typ := range want {
			if !ofType(typ, 1)(got) {
				return false
			}
		}
		return true
	})
	time.Sleep(3 * time.Second) // more aggregations and checks: no second spike, no second failure
	got := rcv.delivered()

	count := map[string]int{}
	for _, g := range got {
		count[g.typ]++
		if err := verifyStandardWebhook(secret, g.header, g.body, time.Now()); err != nil {
			t.Errorf("%s: signature does not verify: %v", g.typ, err)
		}
		tamper := func(what string, h http.Header, body []byte) {
			if verifyStandardWebhook(secret, h, body, time.Now()) == nil {
				t.Errorf("%s: tampered %s still verifies", g.typ, what)
			}
		}
		tamper("body", g.header, append(append([]byte{}, g.body...), ' '))
		h := g.header.Clone()
		ts, _ := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
		h.Set("webhook-timestamp", strconv.FormatInt(ts+1, 10))
		tamper("timestamp", h, g.body)
		h = g.header.Clone()
		h.Set("webhook-id", h.Get("webhook-id")+"x")
		tamper("id", h, g.body)
		if g.data["org_id"] != org || g.data["event_id"] != g.header.Get("webhook-id") {
			t.Errorf("%s: data %v does not name the org and the event id %s", g.typ, g.data, g.header.Get("webhook-id"))
		}
	}
	for _, typ := range want {
		t.Logf("delivered %-28s x%d", typ, count[typ])
	}
	for _, one := range []string{credvault.EventKeyRefusalsSpike, credvault.EventHealthFailed, credvault.EventHealthRecovered, credvault.EventKeyRevoked, credvault.EventKeyExpired, credvault.EventCredentialExpiring} {
		if count[one] != 1 {
			t.Errorf("%s delivered %d times, want 1", one, count[one])
		}
	}
	if count[credvault.EventKeyExpiring] != 2 {
		t.Errorf("api_key.expiring delivered %d times, want 2 (7 d and 1 d)", count[credvault.EventKeyExpiring])
	}
	for _, g := range got {
		// The event reports the count when the rule tripped: an aggregation
		// may run while the 80 calls are still arriving (each second, here),
		// so anything from the rule's floor (50) to all 80 is right.
		if n, _ := g.data["refusals"].(float64); g.typ == credvault.EventKeyRefusalsSpike && (n < 50 || n > 80 || g.data["name"] != "noisy") {
			t.Errorf("spike event data %v, want 50-80 refusals of key noisy", g.data)
		}
	}

	// Every event is in the audit trail too.
	r := cl.as(owner, "GET", a.url+"/v1/audit?limit=500", nil)
	for _, typ := range want[:len(want)-1] {
		if !strings.Contains(string(r.body), `"event":"`+typ+`"`) {
			t.Errorf("audit trail has no record of event %s", typ)
		}
	}

	// No secret anywhere.
	var outputs []string
	for _, g := range got {
		outputs = append(outputs, string(g.body), fmt.Sprint(g.header))
	}
	outputs = append(outputs,
		string(cl.as(owner, "GET", a.url+"/v1/webhooks/"+whID+"/deliveries", nil).body),
		string(cl.as(owner, "GET", a.url+"/v1/webhooks/"+whID, nil).body),
		string(cl.as(owner, "GET", a.url+"/v1/webhooks", nil).body),
		string(cl.as(owner, "GET", a.url+"/v1/credentials/"+credID+"/health", nil).body),
		string(cl.as(owner, "GET", a.url+"/v1/credentials/"+credID+"/monitor", nil).body),
		string(r.body), a.logs.String(), string(cl.call("GET", a.url+"/metrics", nil, nil).body))
	var data string
	if err := a.s.db.Get(&data, `SELECT COALESCE(string_agg(data::text, ' '), '') FROM events`); err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, data)
	for _, out := range outputs {
		for _, p := range planted {
			if strings.Contains(out, p) {
				t.Fatalf("a secret (%s…) appears in an output:\n%.400s", p[:6], out)
			}
		}
	}
}

func sysEvent(orgID, action, resourceType string) *credvault.AuditEvent {
	return &credvault.AuditEvent{OrgID: orgID, ActorType: "system", Action: action, ResourceType: resourceType, Data: map[string]any{}}
}

// waitChecks waits until the credential has at least n health checks.
func waitChecks(t *testing.T, a *instance, credID string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got int
		if err := a.s.db.Get(&got, `SELECT count(*) FROM credential_health_checks WHERE credential_id = $1`, credID); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d health checks after 20 s, want %d", got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
