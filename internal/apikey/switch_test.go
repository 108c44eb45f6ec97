package apikey_test

import (
	"context"
	"testing"
	"time"

	"credvault/internal/apikey"
	"credvault/internal/credvault"
	"credvault/internal/postgres"
	"credvault/internal/postgres/pgtest"
)

// TestVerifierIntegrationSwitch: a cached key of an integration keeps its
// answer until "integration:<id>" arrives (NOTIFY, in production), then
// the next verification reads the key again and answers
// INTEGRATION_DISABLED, without touching its rate limit; another
// integration's notification leaves the cache alone. The refusals are
// counted per key and per integration by reason in the write-back.
// integrationKey is a store with one org, one enabled integration and a
// key of it limited to requests per hour, and a verifier on the store.
type integrationKey struct {
	store *postgres.Store
	v     *apikey.Verifier
	org   string
	integ *credvault.Integration
	k     *credvault.APIKey
	key   string
}

func newIntegrationKey(tb testing.TB, requests int) *integrationKey {
	tb.Helper()
	ctx := context.Background()
	db, _ := pgtest.New(tb)
	store := postgres.NewStore(db)
	res, err := credvault.Bootstrap(ctx, store, apikey.Minter{Prefix: "cv"}, "acme", "owner@acme.test")
	if err != nil {
		tb.Fatal(err)
	}
	integ := &credvault.Integration{OrgID: res.OrgID, Name: "bot", Tags: map[string]string{}, Enabled: true}
	if err := store.CreateIntegration(ctx, integ, &credvault.AuditEvent{OrgID: res.OrgID, ActorType: "system", Action: "integration.create", ResourceType: "integration", Data: map[string]any{}}); err != nil {
		tb.Fatal(err)
	}
	m, err := apikey.Minter{Prefix: "cv"}.Mint("live")
	if err != nil {
		tb.Fatal(err)
	}
	uid := res.UserID
	k := &credvault.APIKey{OrgID: res.OrgID, UserID: &uid, Kind: credvault.KeyKindUser, Name: "k", Mode: "live", Scopes: []string{"keys:read"},
		Tags: map[string]string{}, Hash: m.Hash, Prefix: m.Prefix, Last4: m.Last4, IntegrationID: &integ.ID}
	if requests > 0 {
		k.RateLimit = &credvault.RateLimit{Requests: requests, WindowSeconds: 3600}
	}
	if err := store.CreateAPIKey(ctx, k, &credvault.AuditEvent{OrgID: res.OrgID, ActorType: "system", Action: "api_key.create", ResourceType: "api_key", Data: map[string]any{}}); err != nil {
		tb.Fatal(err)
	}
	v := apikey.NewVerifier(store, apikey.NewLocalLimiter(), apikey.VerifierOptions{Prefix: "cv", CacheTTL: time.Hour})
	v.Reset(ctx)
	return &integrationKey{store: store, v: v, org: res.OrgID, integ: integ, k: k, key: m.Key.Reveal()}
}

func TestVerifierIntegrationSwitch(t *testing.T) {
	ctx := context.Background()
	ik := newIntegrationKey(t, 4)
	store, v, integ, k, key := ik.store, ik.v, ik.integ, ik.k, ik.key
	if got, _ := v.Verify(ctx, key); got.Code != credvault.VerifyValid || got.Rate.Remaining != 3 {
		t.Fatalf("first: %s remaining %d", got.Code, got.Rate.Remaining)
	}
	off := false
	ev := &credvault.AuditEvent{OrgID: ik.org, ActorType: "system", Action: "integration.disable", ResourceType: "integration", Data: map[string]any{}}
	if _, err := store.UpdateIntegration(ctx, ik.org, integ.ID, credvault.IntegrationUpdate{Enabled: &off}, ev); err != nil {
		t.Fatal(err)
	}
	if got, _ := v.Verify(ctx, key); got.Code != credvault.VerifyValid {
		t.Fatalf("before the notification the cache answers: %s", got.Code)
	}
	lookups := v.Stats().DBLookups.Load()
	v.Invalidate("integration:00000000-0000-0000-0000-000000000000")
	v.Verify(ctx, key)
	if n := v.Stats().DBLookups.Load() - lookups; n != 0 {
		t.Fatalf("another integration's notification cost %d lookups, want 0", n)
	}
	v.Invalidate("integration:" + integ.ID)
	for range 5 {
		if got, _ := v.Verify(ctx, key); got.Code != credvault.VerifyIntegrationDisabled || got.Rate.Limited {
			t.Fatalf("after the notification: %s (rate counted: %v)", got.Code, got.Rate.Limited)
		}
	}
	if n := v.Stats().DBLookups.Load() - lookups; n != 1 {
		t.Fatalf("%d lookups after the notification, want 1", n)
	}
	on := true
	ev.Action = "integration.enable"
	if _, err := store.UpdateIntegration(ctx, ik.org, integ.ID, credvault.IntegrationUpdate{Enabled: &on}, ev); err != nil {
		t.Fatal(err)
	}
	v.Invalidate("integration:" + integ.ID)
	if got, _ := v.Verify(ctx, key); got.Code != credvault.VerifyValid || got.Rate.Remaining != 0 {
		t.Fatalf("after enable: %s remaining %d, want VALID 0 (four uses of 4; refusals not counted)", got.Code, got.Rate.Remaining)
	}
	// The write-back: per key and per integration, by reason.
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { v.Run(runCtx); close(done) }()
	cancel()
	<-done
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for name, rows := range map[string]func() ([]credvault.KeyDayCount, error){
		"key": func() ([]credvault.KeyDayCount, error) { return store.KeyVerificationsPerDay(ctx, k.ID, today) },
		"integration": func() ([]credvault.KeyDayCount, error) {
			return store.IntegrationVerificationsPerDay(ctx, integ.ID, today)
		},
	} {
		got, err := rows()
		if err != nil || len(got) != 1 {
			t.Fatalf("%s counters: %v %v", name, got, err)
		}
		if c := got[0]; c.Valid != 4 || c.IntegrationDisabled != 5 || c.Refused != 5 || c.RateLimited != 0 {
			t.Fatalf("%s counters: %+v, want 4 valid, 5 refused (integration_disabled)", name, c)
		}
	}
}

// BenchmarkVerifyCachedIntegrationKey is BenchmarkVerifyCached for a key
// of an (enabled) integration: the switches cost two field reads, and the
// counters a longer map key. Run both in one go test run and compare.
func BenchmarkVerifyCachedIntegrationKey(b *testing.B) {
	ik := newIntegrationKey(b, 0)
	ctx := context.Background()
	if got, err := ik.v.Verify(ctx, ik.key); err != nil || got.Code != credvault.VerifyValid {
		b.Fatalf("%s %v", got.Code, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if got, _ := ik.v.Verify(ctx, ik.key); got.Code != credvault.VerifyValid {
				b.Fatal(got.Code)
			}
		}
	})
}
