package apikey_test

import (
	"context"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"credvault/internal/apikey"
	"credvault/internal/credvault"
	"credvault/internal/postgres"
	"credvault/internal/postgres/pgtest"
)

// newVerifier returns a verifier on a real, migrated database holding one
// org whose owner key is returned.
func newVerifier(tb testing.TB) (*apikey.Verifier, string) {
	tb.Helper()
	db, _ := pgtest.New(tb)
	store := postgres.NewStore(db)
	res, err := credvault.Bootstrap(context.Background(), store, apikey.Minter{Prefix: "cv"}, "bench", "owner@bench.test")
	if err != nil {
		tb.Fatal(err)
	}
	v := apikey.NewVerifier(store, apikey.NewLocalLimiter(), apikey.VerifierOptions{Prefix: "cv"})
	v.Reset(context.Background()) // load the known-key set, as the listener does on connect
	return v, res.APIKey.Reveal()
}

// otherLast returns key with its last character changed, always to a
// different one (appending a fixed "x" left a key that ended in x valid,
// 1 in 62).
func otherLast(key string) string {
	if strings.HasSuffix(key, "x") {
		return key[:len(key)-1] + "y"
	}
	return key[:len(key)-1] + "x"
}

func TestVerifierCodes(t *testing.T) {
	v, key := newVerifier(t)
	ctx := context.Background()
	unknown, _ := apikey.Generate("cv", "live")
	for name, tc := range map[string]struct{ key, want string }{
		"valid":     {key, credvault.VerifyValid},
		"malformed": {otherLast(key), credvault.VerifyMalformed},
		"unknown":   {unknown.Reveal(), credvault.VerifyNotFound},
		"empty":     {"", credvault.VerifyMalformed},
	} {
		got, err := v.Verify(ctx, tc.key)
		if err != nil || got.Code != tc.want {
			t.Errorf("%s: %s, %v; want %s", name, got.Code, err, tc.want)
		}
	}
	before := v.Stats().DBLookups.Load()
	for range 100 {
		if got, _ := v.Verify(ctx, key); got.Code != credvault.VerifyValid {
			t.Fatalf("cached key: %s", got.Code)
		}
	}
	if n := v.Stats().DBLookups.Load() - before; n != 0 {
		t.Fatalf("cached verifications made %d database lookups, want 0", n)
	}
	// An invalidation for the key sends the next verification to the database.
	v.Invalidate("key:" + hexHash(key))
	v.Verify(ctx, key)
	if n := v.Stats().DBLookups.Load() - before; n != 1 {
		t.Fatalf("after invalidation: %d lookups, want 1", n)
	}
}

func hexHash(key string) string {
	h := apikey.Hash(key)
	return hex.EncodeToString(h[:])
}

// BenchmarkVerifyCached is the hot path: a known key, no HTTP, no database.
func BenchmarkVerifyCached(b *testing.B) {
	v, key := newVerifier(b)
	ctx := context.Background()
	if got, err := v.Verify(ctx, key); err != nil || got.Code != credvault.VerifyValid {
		b.Fatalf("%s %v", got.Code, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if got, _ := v.Verify(ctx, key); got.Code != credvault.VerifyValid {
				b.Fatal(got.Code)
			}
		}
	})
}

// BenchmarkVerifyBadChecksum is a mistyped or forged key: refused by the
// checksum alone.
func BenchmarkVerifyBadChecksum(b *testing.B) {
	v, key := newVerifier(b)
	bad := otherLast(key)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if got, _ := v.Verify(ctx, bad); got.Code != credvault.VerifyMalformed {
			b.Fatal(got.Code)
		}
	}
}

// BenchmarkVerifyUnknown is a well-formed key that does not exist: refused
// from the known-key set without a database query.
func BenchmarkVerifyUnknown(b *testing.B) {
	v, _ := newVerifier(b)
	ctx := context.Background()
	keys := make([]string, 1024)
	for i := range keys {
		k, _ := apikey.Generate("cv", "live")
		keys[i] = k.Reveal()
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		v.Verify(ctx, keys[i%len(keys)])
		i++
	}
	b.ReportMetric(float64(v.Stats().DBLookups.Load())/float64(i), "db-lookups/op")
}

// TestVerifierRefreshesStaleEntriesInBackground: past the TTL an entry is
// still answered from while it reloads; a change the reload finds (here a
// revocation whose notification was "missed") then applies; past twice the
// TTL the reload is synchronous.
func TestVerifierRefreshesStaleEntriesInBackground(t *testing.T) {
	db, _ := pgtest.New(t)
	store := postgres.NewStore(db)
	res, err := credvault.Bootstrap(context.Background(), store, apikey.Minter{Prefix: "cv"}, "stale", "owner@stale.test")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	v := apikey.NewVerifier(store, apikey.NewLocalLimiter(), apikey.VerifierOptions{Prefix: "cv", CacheTTL: time.Minute, Now: clock})
	v.Reset(context.Background())
	ctx := context.Background()
	key := res.APIKey.Reveal()
	if got, _ := v.Verify(ctx, key); got.Code != credvault.VerifyValid {
		t.Fatal(got.Code)
	}
	// Revoked behind the verifier's back (no notification reaches it).
	if _, err := db.Exec(`UPDATE api_keys SET revoked_at = now()`); err != nil {
		t.Fatal(err)
	}
	advance(90 * time.Second)
	if got, _ := v.Verify(ctx, key); got.Code != credvault.VerifyValid {
		t.Fatalf("stale entry: %s, want VALID while it reloads", got.Code)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		got, _ := v.Verify(ctx, key)
		if got.Code == credvault.VerifyRevoked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the background reload never applied the revocation")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := db.Exec(`UPDATE api_keys SET revoked_at = NULL`); err != nil {
		t.Fatal(err)
	}
	advance(3 * time.Minute)
	if got, _ := v.Verify(ctx, key); got.Code != credvault.VerifyValid {
		t.Fatalf("past twice the TTL: %s, want a synchronous reload (VALID)", got.Code)
	}
}

// TestVerifierLoadedGatesReadiness: until the known-key set has loaded,
// the verifier's readiness check fails (every unknown key would cost a
// database lookup); after the first load it passes.
func TestVerifierLoadedGatesReadiness(t *testing.T) {
	db, _ := pgtest.New(t)
	store := postgres.NewStore(db)
	v := apikey.NewVerifier(store, apikey.NewLocalLimiter(), apikey.VerifierOptions{Prefix: "cv"})
	if err := v.Loaded(context.Background()); credvault.ErrorCode(err) != credvault.EUNAVAILABLE {
		t.Fatalf("before the first load: %v, want EUNAVAILABLE", err)
	}
	v.Reset(context.Background())
	if err := v.Loaded(context.Background()); err != nil {
		t.Fatalf("after the first load: %v", err)
	}
}
