package main

import (
	"testing"
	"time"

	"credvault/internal/credvault"
)

// TestRedeliveryWhileTheJobRuns: a manual redelivery asked while the
// delivery's automatic job is still sending (the receiver holds its
// request) is sent as a request of its own, under the same webhook-id;
// it is not folded into the running job, which then finishes too.
func TestRedeliveryWhileTheJobRuns(t *testing.T) {
	t.Parallel()
	hs := revokedWithWebhook(t, 1, func(r *receiver) { r.setHang(true) })
	cl, a, owner, rcv, whID, keys := hs.cl, hs.a, hs.owner, hs.rcv, hs.whID, hs.keys
	rcv.waitRequests(t, 1, 20*time.Second)
	rcv.setHang(false) // requests from now on are answered at once

	r := cl.as(owner, "GET", a.url+"/v1/webhooks/"+whID+"/deliveries", nil)
	var log struct {
		Data []credvault.Delivery `json:"data"`
	}
	decodeJSON(t, r.body, &log)
	if len(log.Data) != 1 {
		t.Fatalf("%d deliveries, want 1: %s", len(log.Data), r.body)
	}
	d := log.Data[0]
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'running'`, credvault.JobDelivery); n != 1 {
		t.Fatalf("%d delivery jobs running while the receiver holds the request, want 1", n)
	}
	if r := cl.as(owner, "POST", a.url+"/v1/webhooks/"+whID+"/deliveries/"+itoa(d.ID)+"/redeliver", nil); r.status != 202 {
		t.Fatalf("redeliver: %d %s", r.status, r.body)
	}
	// The redelivery is sent while the first request is still held.
	rcv.waitRequests(t, 2, 10*time.Second)
	rcv.releaseHeld()
	got := rcv.waitFor(t, "both requests answered", 10*time.Second, func(got []received) bool { return len(got) == 2 })
	for _, g := range got {
		if id := g.header.Get("webhook-id"); id != d.MessageID {
			t.Errorf("request under webhook-id %q, want the delivery's %q", id, d.MessageID)
		}
	}
	sent, delivered, retried := deliveryFigures(t, rcv, keys)
	t.Logf("redelivery while the job runs: requests sent %d, delivered %d, resent %d", sent, delivered, retried)
	// The delivery log ends delivered, with both attempts.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = cl.as(owner, "GET", a.url+"/v1/webhooks/"+whID+"/deliveries", nil)
		decodeJSON(t, r.body, &log)
		d = log.Data[0]
		if d.Status == credvault.DeliveryDelivered && d.Attempts == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s after %d attempts (log %v), want delivered after 2", d.Status, d.Attempts, d.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
