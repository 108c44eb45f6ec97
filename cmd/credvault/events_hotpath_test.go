package main

import (
	"io"
	"net/http"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// TestHotPathsNeitherWriteNorSend: with a webhook subscribed to every
// event type, successful checks (GET /v1/auth/check), proxied calls and a
// few refusals (below the spike rule's floor) add no event, no outbox row,
// no delivery job and no webhook request (the revocation before the
// baseline is one of each), neither at once nor after the
// refusal counter's flush and the aggregator's pass: the hot paths only
// count in memory (issue 22: "The hot paths only count; they never write
// or send"). A change that emitted an event per verification or per
// proxied call fails here.
func TestHotPathsNeitherWriteNorSend(t *testing.T) {
	cl := newCluster(t, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"})
	a := cl.startWith(startOptions{events: fastEvents()})
	_, owner := cl.bootstrap(a, "hotpaths")
	rcv := newReceiver(t)
	cl.webhookFor(a, owner, rcv)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	id := cl.createCredential(a, owner, map[string]any{"name": "hot", "placement": "bearer", "value": "sk_hot_path_0123456789",
		"base_url": up.URL, "allowed_hosts": []string{up.HostP}})["id"].(string)

	revokedID, revoked := cl.createKey(a, owner, map[string]any{"name": "revoked", "scopes": []string{"keys:read"}})
	if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+revokedID+"/revoke", nil); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}

	snapshot := func() [4]int {
		return [4]int{
			countRows(t, cl.dbURL, `SELECT count(*) FROM events`),
			countRows(t, cl.dbURL, `SELECT count(*) FROM webhook_deliveries`),
			countRows(t, cl.dbURL, `SELECT count(*) FROM river_job WHERE kind = $1`, credvault.JobDelivery),
			len(rcv.requests()),
		}
	}
	// Whatever the setup caused (none of it is on the hot paths) is
	// written and sent before the baseline is taken.
	time.Sleep(time.Second)
	before := snapshot()

	for i := range 300 {
		if r := cl.as(owner, "GET", a.url+"/v1/auth/check", nil); r.status != 200 {
			t.Fatalf("check %d: %d %s", i, r.status, r.body)
		}
	}
	for i := range 100 {
		if r := cl.as(owner, "GET", a.url+"/v1/proxy/"+id+"/v1/thing", nil); r.status != 200 {
			t.Fatalf("proxied call %d: %d %s", i, r.status, r.body)
		}
	}
	for i := range 20 {
		if r := cl.as(revoked, "GET", a.url+"/v1/auth/check", nil); r.status != 401 {
			t.Fatalf("refusal %d: %d %s", i, r.status, r.body)
		}
	}
	if got := snapshot(); got != before {
		t.Fatalf("right after the calls: events, outbox rows, delivery jobs, webhook requests %v, before %v", got, before)
	}
	// fastEvents flushes the refusal counts every 100 ms and aggregates
	// every second: past both, 20 refusals are still no event.
	time.Sleep(2500 * time.Millisecond)
	if got := snapshot(); got != before {
		t.Fatalf("after the flush and the aggregator: events, outbox rows, delivery jobs, webhook requests %v, before %v", got, before)
	}
}
