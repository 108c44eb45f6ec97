package main

import (
	"testing"
	"time"
)

// TestJobsRunOnceAcrossInstances: three instances on one database each
// register the session purge (internal/jobs, run on start, then every 10
// minutes); it is enqueued and worked once, not once per instance.
func TestJobsRunOnceAcrossInstances(t *testing.T) {
	cl := newCluster(t, nil)
	for range 3 {
		cl.start()
	}
	const q = `SELECT count(*) FROM river_job WHERE kind = 'credvault_every' AND args->>'name' = 'purge_sessions'`
	deadline := time.Now().Add(15 * time.Second)
	for countRows(t, cl.dbURL, q+` AND state = 'completed'`) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the session purge did not run within 15 s of three starts")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Give the other two instances time to (wrongly) enqueue their own.
	time.Sleep(2 * time.Second)
	if n := countRows(t, cl.dbURL, q); n != 1 {
		t.Errorf("session purge jobs after three starts: %d, want 1", n)
	}
}
