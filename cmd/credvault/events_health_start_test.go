package main

import (
	"context"
	"testing"
	"time"
)

// TestHealthCheckPromptAfterRestart: a credential's check is due; the
// only instance restarts within the health scan's period (here a day, so
// that the restart is always within it). The restarted instance runs the
// due check within seconds of starting, not a period later: each start
// runs the periodic work once (internal/jobs Every), whatever already ran
// in the period.
func TestHealthCheckPromptAfterRestart(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"})
	opts := startOptions{events: fastEvents()}
	opts.events.healthScan = 24 * time.Hour
	a := cl.startWith(opts)
	res, owner := cl.bootstrap(a, "acme")
	up := newHookUpstream(t, 200)
	credID := cl.checkedCredential(a, owner, up)
	// Let a's own first scan pass (it ran at start, before the schedule
	// existed), so that only a start can claim the check.
	time.Sleep(2 * time.Second)
	if _, err := a.s.store.SetMonitor(context.Background(), res.OrgID, credID, 3600, nil, sysEvent(res.OrgID, "credential.monitor", "credential")); err != nil {
		t.Fatal(err)
	}
	a.stop()
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM credential_health_checks WHERE credential_id = $1`, credID); n != 0 {
		t.Fatalf("%d checks before the restart, want 0 (the schedule came after the first scan)", n)
	}

	start := time.Now()
	b := cl.startWith(opts)
	deadline := start.Add(10 * time.Second)
	for countRows(t, cl.dbURL, `SELECT count(*) FROM credential_health_checks WHERE credential_id = $1`, credID) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no health check within 10 s of the instance starting (scan period %v)", opts.events.healthScan)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("restart: the due health check ran %v after the instance started", time.Since(start).Round(10*time.Millisecond))
	_ = b
}
