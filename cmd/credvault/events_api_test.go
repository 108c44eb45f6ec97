package main

import (
	"strings"
	"testing"
	"time"
)

// TestMonitorAndWebhookInputs: every bad input is a 400 naming its field
// and writes nothing; members and other orgs are kept out.
func TestMonitorAndWebhookInputs(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"})
	a := cl.startWith(startOptions{events: fastEvents()})
	_, owner := cl.bootstrap(a, "acme")
	up := newHookUpstream(t, 200)
	credID := cl.checkedCredential(a, owner, up)
	bare := cl.createCredential(a, owner, map[string]any{"name": "No test", "service": "custom", "placement": "header",
		"param_name": "X-Key", "value": plantedValue, "allowed_hosts": []string{"api.example.com"}})["id"].(string)
	for _, tc := range []struct {
		id    string
		body  any
		field string
	}{
		{credID, map[string]any{"interval_seconds": 30, "value_expires_at": nil}, "interval_seconds"},
		{credID, map[string]any{"interval_seconds": 700000, "value_expires_at": nil}, "interval_seconds"},
		{credID, map[string]any{"value_expires_at": nil}, "interval_seconds"},
		{credID, map[string]any{"interval_seconds": 60}, "value_expires_at"},
		{credID, map[string]any{"interval_seconds": 0, "value_expires_at": rfc3339(time.Now().Add(-time.Hour))}, "value_expires_at"},
		{credID, map[string]any{"interval_seconds": 0, "value_expires_at": "2027-01-01"}, "value_expires_at"},
		{credID, map[string]any{"interval_seconds": "60", "value_expires_at": nil}, "interval_seconds"},
		{credID, map[string]any{"interval_seconds": 60, "value_expires_at": nil, "extra": 1}, "extra"},
		{bare, map[string]any{"interval_seconds": 60, "value_expires_at": nil}, "interval_seconds"},
	} {
		r := cl.as(owner, "PUT", a.url+"/v1/credentials/"+tc.id+"/monitor", tc.body)
		if r.status != 400 || !strings.Contains(r.errMessage(t), tc.field) {
			t.Errorf("%v: %d %s, want 400 naming %s", tc.body, r.status, r.body, tc.field)
		}
	}
	var n int
	if err := a.s.db.Get(&n, `SELECT count(*) FROM credential_monitors`); err != nil || n != 0 {
		t.Fatalf("refused monitors stored: %d %v", n, err)
	}
	for _, tc := range []struct {
		body  any
		field string
	}{
		{map[string]any{"url": "https://example.com/x", "event_types": []string{"*"}, "secret": "whsec_mine"}, "secret"},
		{map[string]any{"url": strings.Repeat("a", 3000), "event_types": []string{"*"}}, "url"},
		{map[string]any{"url": "https://example.com/x#frag", "event_types": []string{"*"}}, "url"},
		{map[string]any{"url": "https://example.com/x", "event_types": "api_key.revoked"}, "event_types"},
		{map[string]any{"url": "https://example.com/x", "event_types": []string{"*"}, "description": strings.Repeat("d", 501)}, "description"},
	} {
		r := cl.as(owner, "POST", a.url+"/v1/webhooks", tc.body)
		if r.status != 400 || !strings.Contains(r.errMessage(t), tc.field) {
			t.Errorf("%v: %d %s, want 400 naming %s", tc.body, r.status, r.body, tc.field)
		}
	}
	if err := a.s.db.Get(&n, `SELECT count(*) FROM webhooks`); err != nil || n != 0 {
		t.Fatalf("refused webhooks stored: %d %v", n, err)
	}
	whID, _ := cl.webhookFor(a, owner, newReceiver(t))
	if r := cl.as(owner, "PATCH", a.url+"/v1/webhooks/"+whID, map[string]any{}); r.status != 400 {
		t.Errorf("empty PATCH: %d", r.status)
	}
	if r := cl.as(owner, "PATCH", a.url+"/v1/webhooks/"+whID, map[string]any{"event_types": []string{"nope"}}); r.status != 400 || !strings.Contains(r.errMessage(t), "event_types") {
		t.Errorf("PATCH bad type: %d %s", r.status, r.body)
	}
	if r := cl.as(owner, "POST", a.url+"/v1/webhooks/"+whID+"/deliveries/999999/redeliver", nil); r.status != 404 {
		t.Errorf("redeliver unknown: %d", r.status)
	}

	// A member (no admin scope, no manager role) and another org.
	_, member := cl.createKey(a, owner, map[string]any{"name": "narrow", "scopes": []string{"keys:read", "credentials:read"}})
	if r := cl.as(member, "GET", a.url+"/v1/webhooks", nil); r.status != 403 {
		t.Errorf("key without admin lists webhooks: %d", r.status)
	}
	_, other := cl.bootstrap(a, "globex")
	for _, p := range []string{"/v1/webhooks/" + whID, "/v1/webhooks/" + whID + "/deliveries", "/v1/credentials/" + credID + "/monitor", "/v1/credentials/" + credID + "/health"} {
		if r := cl.as(other, "GET", a.url+p, nil); r.status != 404 {
			t.Errorf("another org reads %s: %d", p, r.status)
		}
	}
	if r := cl.as(other, "POST", a.url+"/v1/webhooks/"+whID+"/test", nil); r.status != 404 {
		t.Errorf("another org test-sends: %d", r.status)
	}
	if r := cl.as(other, "DELETE", a.url+"/v1/webhooks/"+whID, nil); r.status != 404 {
		t.Errorf("another org deletes: %d", r.status)
	}
	if r := cl.as(owner, "DELETE", a.url+"/v1/webhooks/"+whID, nil); r.status != 204 {
		t.Errorf("owner deletes: %d", r.status)
	}

	// The metrics of the stream exist, labelled by type and outcome only.
	m := scrape(t, cl, a)
	for _, name := range []string{`credvault_events_emitted_total{type="api_key.revoked"}`, `credvault_webhook_deliveries_total{outcome="delivered"}`,
		`credvault_webhook_outbox_depth`, `credvault_webhook_outbox_oldest_age_seconds`} {
		if _, ok := m[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
}

// TestRevokedWithItsCreatorIsAnEvent: removing a person revokes the
// service keys they made; each is an api_key.revoked event naming why.
func TestRevokedWithItsCreatorIsAnEvent(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"})
	a := cl.startWith(startOptions{events: fastEvents()})
	_, owner := cl.bootstrap(a, "acme")
	rcv := newReceiver(t)
	cl.webhookFor(a, owner, rcv)
	r := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "ada@acme.test", "name": "Ada", "role": "admin"})
	if r.status != 201 {
		t.Fatalf("create user: %d %s", r.status, r.body)
	}
	adaID := r.json(t)["id"].(string)
	_, adaKey := cl.createKey(a, owner, map[string]any{"name": "ada", "scopes": []string{"admin"}, "user_id": adaID})
	svcID, _ := cl.createKey(a, adaKey, map[string]any{"name": "runner", "kind": "service", "scopes": []string{"keys:read"}})
	if r := cl.as(owner, "DELETE", a.url+"/v1/users/"+adaID, nil); r.status != 204 {
		t.Fatalf("delete user: %d %s", r.status, r.body)
	}
	got := rcv.waitFor(t, "the revocation", 15*time.Second, ofType("api_key.revoked", 1))
	for _, g := range got {
		if g.typ == "api_key.revoked" && (g.data["key_id"] != svcID || g.data["reason"] != "creator_removed" || g.data["name"] != "runner") {
			t.Fatalf("revoked event data %v", g.data)
		}
	}
}
