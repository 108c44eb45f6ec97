package main

import (
	"strings"
	"testing"
)

// TestWebhookRoutesKeepOutsidersOut: on every webhook route, a key
// without scope admin and a member's key (scope admin, role member) get
// 403, another org's owner gets 404, and none of them changes anything:
// the webhook keeps its URL and no delivery is queued.
func TestWebhookRoutesKeepOutsidersOut(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"})
	a := cl.startWith(startOptions{events: fastEvents()})
	_, owner := cl.bootstrap(a, "acme")
	rcv := newReceiver(t)
	whID, _ := cl.webhookFor(a, owner, rcv)
	if r := cl.as(owner, "POST", a.url+"/v1/webhooks/"+whID+"/test", nil); r.status != 202 {
		t.Fatalf("test send: %d %s", r.status, r.body)
	}
	var deliveryID int64
	if err := a.s.db.Get(&deliveryID, `SELECT max(id) FROM webhook_deliveries`); err != nil {
		t.Fatal(err)
	}
	did := itoa(deliveryID)

	_, narrow := cl.createKey(a, owner, map[string]any{"name": "narrow", "scopes": []string{"keys:read", "credentials:read", "credentials:write"}})
	mem := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "m@acme.test", "role": "member"})
	memberID := mem.json(t)["id"].(string)
	_, member := cl.createKey(a, owner, map[string]any{"name": "member", "scopes": []string{"admin"}, "user_id": memberID})
	_, other := cl.bootstrap(a, "globex")

	patch := map[string]any{"url": "https://hooks.example.com/stolen"}
	create := map[string]any{"url": "https://hooks.example.com/x", "event_types": []string{"*"}}
	routes := []struct {
		method, path string
		body         any
		orgScoped    bool // another org gets 404 (a route about one webhook)
	}{
		{"POST", "/v1/webhooks", create, false},
		{"GET", "/v1/webhooks", nil, false},
		{"GET", "/v1/webhooks/" + whID, nil, true},
		{"PATCH", "/v1/webhooks/" + whID, patch, true},
		{"GET", "/v1/webhooks/" + whID + "/deliveries", nil, true},
		{"POST", "/v1/webhooks/" + whID + "/test", nil, true},
		{"POST", "/v1/webhooks/" + whID + "/deliveries/" + did + "/redeliver", nil, true},
		{"DELETE", "/v1/webhooks/" + whID, nil, true},
	}
	for _, rt := range routes {
		for _, who := range []struct{ name, key string }{{"key without admin", narrow}, {"member", member}} {
			if r := cl.as(who.key, rt.method, a.url+rt.path, rt.body); r.status != 403 {
				t.Errorf("%s %s %s: %d %s, want 403", who.name, rt.method, rt.path, r.status, r.body)
			}
		}
		if rt.orgScoped {
			r := cl.as(other, rt.method, a.url+rt.path, rt.body)
			if r.status != 404 {
				t.Errorf("another org %s %s: %d %s, want 404", rt.method, rt.path, r.status, r.body)
			}
			if strings.Contains(string(r.body), "acme") || strings.Contains(string(r.body), rcv.srv.URL) {
				t.Errorf("another org %s %s sees acme's webhook: %s", rt.method, rt.path, r.body)
			}
		}
	}
	var url string
	var n, deliveries int
	if err := a.s.db.Get(&url, `SELECT url FROM webhooks WHERE id = $1`, whID); err != nil || !strings.HasPrefix(url, rcv.srv.URL) {
		t.Errorf("webhook changed by an outsider: %q %v", url, err)
	}
	if err := a.s.db.Get(&n, `SELECT count(*) FROM webhooks`); err != nil || n != 1 {
		t.Errorf("outsiders created webhooks: %d %v", n, err)
	}
	// Other-org POST /v1/webhooks is that org's own webhook (allowed), so
	// only acme's deliveries are counted.
	if err := a.s.db.Get(&deliveries, `SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1`, whID); err != nil || deliveries != 1 {
		t.Errorf("outsiders queued deliveries to acme's webhook: %d %v", deliveries, err)
	}
}
