package main

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"credvault/internal/apikey"
	"credvault/internal/credvault"
	"credvault/internal/postgres"
)

// TestKillBetweenCommitAndDelivery: a real `credvault serve` process
// commits 10 revocations (each event, its delivery and its job in the
// revocation's transaction) while the receiver is down, and is killed with
// SIGKILL right after the last commit, before any delivery succeeded. A
// new instance on the same database delivers every event, each under its
// one id.
func TestKillBetweenCommitAndDelivery(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"})
	rcv := newReceiver(t)
	rcv.setDown(true)

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
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	proc := &instance{url: stdout.waitFor(t, listeningRe, done)}

	db, err := postgres.Open(context.Background(), cl.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := credvault.Bootstrap(context.Background(), postgres.NewStore(db), apikey.Minter{Prefix: "cv"}, "acme", "owner@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	owner := res.APIKey.Reveal()
	cl.webhookFor(proc, owner, rcv)
	keys := cl.revokeKeys(proc, owner, 10)
	// Kill at once, at a moment no job is being worked (a job killed while
	// running waits for River's rescuer, which this test does not wait
	// for); the receiver is down, so nothing was delivered.
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
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
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

	rcv.setDown(false)
	b := cl.startWith(startOptions{events: fastEvents()})
	_ = b
	rcv.waitFor(t, "all 10 events after the kill", 30*time.Second, distinctIDs(10))
	sent, delivered, retried := deliveryFigures(t, rcv, keys)
	t.Logf("kill -9: events 10, requests sent %d, delivered %d, retried %d, lost %d", sent, delivered, retried, 10-delivered)
}
