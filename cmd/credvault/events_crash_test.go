package main

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"credvault/internal/apikey"
	"credvault/internal/credvault"
	"credvault/internal/postgres"
)

// serveProcess runs `credvault serve` on the cluster's configuration as a
// process of its own (the test binary's helper), and returns it and a
// function that kills it with SIGKILL and waits for it to end.
func (cl *cluster) serveProcess(t *testing.T) (*instance, func()) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestDevProcessHelper$", "-test.count=1")
	cmd.Env = []string{"CREDVAULT_TEST_DEV_PROCESS=serve", "PATH=" + os.Getenv("PATH")}
	for k, v := range cl.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, stderr := &lineBuffer{}, &lineBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var once sync.Once
	kill := func() {
		once.Do(func() {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Error(err)
			}
			<-done
		})
	}
	t.Cleanup(kill)
	return &instance{url: stdout.waitFor(t, listeningRe, done), logs: stderr}, kill
}

// revokedInServeProcess starts a cluster, a receiver (set up by prepare)
// and a `credvault serve` process (serveProcess); creates the org acme
// beside it, a webhook to the receiver for every event, and n
// api_key.revoked events through the process. It returns them, the
// database and the process's kill.
func revokedInServeProcess(t *testing.T, n int, prepare func(*receiver)) (*cluster, *receiver, *sqlx.DB, func(), []string) {
	t.Helper()
	cl := newCluster(t, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"})
	rcv := newReceiver(t)
	prepare(rcv)
	proc, kill := cl.serveProcess(t)
	db, err := postgres.Open(context.Background(), cl.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	res, err := credvault.Bootstrap(context.Background(), postgres.NewStore(db), apikey.Minter{Prefix: "cv"}, "acme", "owner@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	owner := res.APIKey.Reveal()
	cl.webhookFor(proc, owner, rcv)
	return cl, rcv, db, kill, cl.revokeKeys(proc, owner, n)
}

// TestKillBetweenCommitAndDelivery: a real `credvault serve` process
// commits 10 revocations (each event, its delivery and its job in the
// revocation's transaction) while the receiver is down, and is killed with
// SIGKILL right after the last commit, before any delivery succeeded. A
// new instance on the same database delivers every event, each under its
// one id.
func TestKillBetweenCommitAndDelivery(t *testing.T) {
	t.Parallel()
	cl, rcv, db, kill, keys := revokedInServeProcess(t, 10, func(r *receiver) { r.setDown(true) })
	// Kill at once, at a moment no job is being worked (a job killed while
	// running is rescued after about a minute, which
	// TestDeliveryKilledMidSendIsRetriedSoon covers); the receiver is down,
	// so nothing was delivered.
	for {
		var running int
		if err := db.Get(&running, `SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'running'`, credvault.JobDelivery); err != nil {
			t.Fatal(err)
		}
		if running == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	kill()
	var states []struct {
		State string `db:"state"`
		N     int    `db:"n"`
	}
	if err := db.Select(&states, `SELECT state::text, count(*) AS n FROM river_job WHERE kind = $1 GROUP BY state ORDER BY state`, credvault.JobDelivery); err != nil {
		t.Fatal(err)
	}
	var pending, attempted int
	if err := db.Get(&pending, `SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'`); err != nil {
		t.Fatal(err)
	}
	if err := db.Get(&attempted, `SELECT count(*) FROM webhook_deliveries WHERE attempts > 0`); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed: %d deliveries pending (%d tried once or more), jobs by state %v", pending, attempted, states)
	if pending != 10 {
		t.Fatalf("%d deliveries pending at the kill, want 10", pending)
	}
	runningAtKill := 0
	for _, st := range states {
		if st.State == "running" {
			runningAtKill = st.N
		}
	}

	rcv.setDown(false)
	b := cl.startWith(startOptions{events: fastEvents()})
	wait := 30 * time.Second
	if runningAtKill > 0 {
		// A retry began between the check above and the kill (the
		// receiver is down, so retries come every few hundred ms): that
		// job was killed mid-run and is rerun within the lost-job bound,
		// as TestDeliveryKilledMidSendIsRetriedSoon asserts.
		wait += b.s.jobs.LostJobRerunWithin()
		t.Logf("%d delivery job(s) running at the kill: waiting up to %s", runningAtKill, wait)
	}
	rcv.waitFor(t, "all 10 events after the kill", wait, distinctIDs(10))
	sent, delivered, retried := deliveryFigures(t, rcv, keys)
	t.Logf("kill -9: events 10, requests sent %d, delivered %d, retried %d, lost %d", sent, delivered, retried, 10-delivered)
}
