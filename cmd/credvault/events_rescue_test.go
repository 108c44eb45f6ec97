package main

import (
	"testing"
	"time"

	"credvault/internal/credvault"
)

// TestDeliveryKilledMidSendIsRetriedSoon: a real `credvault serve` process
// sends a delivery to a receiver that reads the request and does not
// answer, and is killed with SIGKILL mid-send: the request went out, the
// job still counts as running. A second instance sends it again, under the
// same webhook-id, within the job queue's lost-job bound (about a minute,
// from the delivery timeout), not after River's default hour.
func TestDeliveryKilledMidSendIsRetriedSoon(t *testing.T) {
	t.Parallel()
	cl, rcv, db, kill, keys := revokedInServeProcess(t, 1, func(r *receiver) { r.setHang(true) })

	rcv.waitRequests(t, 1, 20*time.Second)
	var running int
	if err := db.Get(&running, `SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'running'`, credvault.JobDelivery); err != nil {
		t.Fatal(err)
	}
	if running != 1 {
		t.Fatalf("%d delivery jobs running while the receiver holds the request, want 1", running)
	}
	kill()
	killedAt := time.Now()
	rcv.setHang(false)

	b := cl.start()
	bound := b.s.jobs.LostJobRerunWithin()
	// The bound counts from when the job started, before the request went
	// out; the test measures from the kill, which is later, and allows the
	// loaded machine 10 s more.
	got := rcv.waitFor(t, "the delivery sent again after the kill", bound+10*time.Second, distinctIDs(1))
	took := got[0].at.Sub(killedAt)
	sent, delivered, retried := deliveryFigures(t, rcv, keys)
	t.Logf("killed mid-send: delivered again %v after the kill (bound %v); requests sent %d, delivered %d, retried %d, lost %d",
		took.Round(100*time.Millisecond), bound, sent, delivered, retried, 1-delivered)
	if sent != 2 || retried != 1 {
		t.Errorf("requests: %d sent, %d retried; want the held one and one more under the same id", sent, retried)
	}
	if bound > 90*time.Second {
		t.Errorf("lost-job bound %v: not about a minute", bound)
	}
}
