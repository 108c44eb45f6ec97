package main

import (
	"testing"
	"time"
)

// TestJobsRunOnceAcrossInstances: three instances on one database each
// register the session purge (internal/jobs: run at each start, then every
// 10 minutes once across the cluster). Each start runs it at most once
// (a start while a run is still queued shares it), so three starts make
// one to three runs, never one per instance per period.
func TestJobsRunOnceAcrossInstances(t *testing.T) {
	cl := newCluster(t, nil)
	for range 3 {
		cl.start()
	}
	const q = `SELECT count(*) FROM river_job WHERE kind = 'credvault_every' AND args->>'name' = 'purge_sessions'`
	deadline := time.Now().Add(15 * time.Second)
	for countRows(t, cl.dbURL, q+` AND state <> 'completed'`) > 0 || countRows(t, cl.dbURL, q) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the session purge did not run within 15 s of three starts")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Give the instances time to (wrongly) enqueue more.
	time.Sleep(2 * time.Second)
	if n := countRows(t, cl.dbURL, q); n < 1 || n > 3 {
		t.Errorf("session purge jobs after three starts: %d, want one to three (at most one a start)", n)
	}
}
