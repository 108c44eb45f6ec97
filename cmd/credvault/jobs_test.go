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

// waitStartRuns waits (up to 20 s) until the periodic function name has
// run at least once and no run of it is queued or running: each instance's
// start queues one (see jobs.Runner.Every), and a test that plants rows
// for the function to find must not have a start run take them first.
func waitStartRuns(t *testing.T, dbURL, name string) {
	t.Helper()
	q := `SELECT count(*) FILTER (WHERE state <> 'completed') + CASE WHEN count(*) FILTER (WHERE state = 'completed') = 0 THEN 1 ELSE 0 END
		FROM river_job WHERE kind = 'credvault_every' AND args->>'name' = '` + name + `'`
	for deadline := time.Now().Add(20 * time.Second); countRows(t, dbURL, q) > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the periodic function %s did not finish its start run within 20 s", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
