package postgres_test

import (
	"context"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"credvault/internal/credvault"
	"credvault/internal/postgres"
	"credvault/internal/postgres/pgtest"
)

// usageCredential inserts a credential row of org for uses to point to.
func usageCredential(t *testing.T, store *postgres.Store, org string) string {
	t.Helper()
	var id string
	if err := store.DB().Get(&id, `INSERT INTO credentials (id, org_id, name, service, placement, ciphertext, key_version, hint)
		VALUES (gen_random_uuid(), $1, 'usage', 'custom', 'bearer', 'vault:v1:AAAA', 1, '…abcd') RETURNING id`, org); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestUsageWriterFlushesFullBatchEarly: a batch of FlushAtUsage uses is
// written without waiting for the interval, so that what waits in memory
// does not grow with the call rate. Before, uses waited for the interval
// whatever their number (a second's worth at 25,000 calls a second, and
// the request context each pointed to).
func TestUsageWriterFlushesFullBatchEarly(t *testing.T) {
	db, _ := pgtest.New(t)
	store := postgres.NewStore(db)
	org, _, _ := bootstrapKey(t, store)
	cred := usageCredential(t, store, org)
	w := postgres.NewUsageWriter(store, slog.New(slog.DiscardHandler), time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	now := time.Now()
	for i := 0; i < postgres.FlushAtUsage; i++ {
		w.Record(credvault.Usage{CredentialID: cred, OrgID: org, WorkflowID: "wf", DestinationHost: "api.example.com", Status: 200, CreatedAt: now})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := db.Get(&n, `SELECT count(*) FROM credential_usage WHERE credential_id = $1`, cred); err != nil {
			t.Fatal(err)
		}
		if n == postgres.FlushAtUsage {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d uses written 10s after the batch filled (interval 1h)", n, postgres.FlushAtUsage)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUsageWriterKeepsNoCallerMemory: a queued use does not keep the
// memory its UserID pointed into (the request's context), and its user id
// is written as given.
func TestUsageWriterKeepsNoCallerMemory(t *testing.T) {
	db, _ := pgtest.New(t)
	store := postgres.NewStore(db)
	org, _, _ := bootstrapKey(t, store)
	cred := usageCredential(t, store, org)
	var user string
	if err := db.Get(&user, `SELECT id FROM users WHERE org_id = $1 LIMIT 1`, org); err != nil {
		t.Fatal(err)
	}
	w := postgres.NewUsageWriter(store, slog.New(slog.DiscardHandler), time.Hour)
	type request struct {
		_      [4096]byte // makes the request large, as a context with its principal is
		userID string
	}
	collected := make(chan struct{})
	func() {
		r := &request{userID: string([]byte(user))}
		runtime.SetFinalizer(r, func(*request) { close(collected) })
		w.Record(credvault.Usage{CredentialID: cred, OrgID: org, UserID: &r.userID, Status: 200, CreatedAt: time.Now()})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for freed := false; !freed; {
		runtime.GC()
		select {
		case <-collected:
			freed = true
		case <-time.After(20 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("the request a queued use's UserID pointed into is still reachable (the use keeps it alive until the flush)")
			}
		}
	}
	w.Flush(context.Background())
	var got string
	if err := db.Get(&got, `SELECT user_id FROM credential_usage WHERE credential_id = $1`, cred); err != nil {
		t.Fatal(err)
	}
	if got != user {
		t.Fatalf("user_id written %q, want %q", got, user)
	}
}
