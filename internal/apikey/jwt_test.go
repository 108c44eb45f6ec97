package apikey_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"credvault/internal/apikey"
	"credvault/internal/credvault"
	"credvault/internal/postgres"
	"credvault/internal/postgres/pgtest"
	"credvault/vault"
	"credvault/vault/vaulttest"
)

const testIssuer = "https://credvault.test"

// jwtEnv is a verifier with JWT keys on a real database and the dev
// transit server (or a real Vault) through the real client.
type jwtEnv struct {
	v       *apikey.Verifier
	keys    *apikey.SigningKeys
	issuer  *apikey.JWTIssuer
	store   *postgres.Store
	vc      *vault.Client
	owner   *credvault.BootstrapResult
	service *credvault.APIKeyService
}

func newJWTEnv(tb testing.TB) *jwtEnv {
	tb.Helper()
	ctx := context.Background()
	db, _ := pgtest.New(tb)
	store := postgres.NewStore(db)
	tg := vaulttest.Start(tb)
	tg.CreateKey(tb, "credvault", true)
	vc, err := vault.New(ctx, vault.Config{Addr: tg.Addr, Token: credvault.NewSecret(tg.Token), Mount: tg.Mount, Key: "credvault"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(vc.Close)
	if err := vc.EnsureSigningKey(ctx, "credvault-jwt"); err != nil {
		tb.Fatal(err)
	}
	keys := apikey.NewSigningKeys(vc.SigningKey("credvault-jwt"), nil)
	if err := keys.Refresh(ctx); err != nil {
		tb.Fatal(err)
	}
	res, err := credvault.Bootstrap(ctx, store, apikey.Minter{Prefix: "cv"}, "jwt", "owner@jwt.test")
	if err != nil {
		tb.Fatal(err)
	}
	v := apikey.NewVerifier(store, apikey.NewLocalLimiter(), apikey.VerifierOptions{Prefix: "cv", SigningKeys: keys, Issuer: testIssuer})
	v.Reset(ctx)
	iss := &apikey.JWTIssuer{Keys: keys, Issuer: testIssuer}
	svc := &credvault.APIKeyService{Store: store, Users: store, Minter: apikey.Minter{Prefix: "cv"}, JWT: iss}
	return &jwtEnv{v: v, keys: keys, issuer: iss, store: store, vc: vc, owner: res, service: svc}
}

// create issues a JWT key as the bootstrap owner.
func (e *jwtEnv) create(tb testing.TB, in credvault.CreateAPIKeyInput) (*credvault.APIKey, string) {
	tb.Helper()
	ctx := context.Background()
	owner, err := e.v.Verify(ctx, e.owner.APIKey.Reveal())
	if err != nil || owner.Code != credvault.VerifyValid {
		tb.Fatalf("owner key: %v %v", owner.Code, err)
	}
	p := &credvault.Principal{OrgID: owner.Key.OrgID, UserID: owner.Key.UserID, KeyID: owner.Key.ID, Kind: owner.Key.Kind, Role: owner.Key.Role, Scopes: owner.Key.Scopes}
	in.Format = credvault.KeyFormatJWT
	if in.Name == "" {
		in.Name = "jwt"
	}
	if in.Scopes == nil {
		in.Scopes = []string{credvault.ScopeKeysRead}
	}
	k, secret, err := e.service.CreateAPIKey(credvault.WithCaller(ctx, p, "test"), in)
	if err != nil {
		tb.Fatal(err)
	}
	return k, secret.Reveal()
}

// TestJWTKeyFirstUseVerifiesThenCaches: the first verification checks the
// signature, later ones answer from the cache by hash; an invalidation
// (revoke on any instance) sends the next one through the full check again.
func TestJWTKeyFirstUseVerifiesThenCaches(t *testing.T) {
	e := newJWTEnv(t)
	ctx := context.Background()
	k, token := e.create(t, credvault.CreateAPIKeyInput{})
	if k.Format != "jwt" || !strings.HasPrefix(token, "eyJ") || strings.Count(token, ".") != 2 {
		t.Fatalf("got format %q token %.12s…, want a compact JWS", k.Format, token)
	}
	for range 50 {
		got, err := e.v.Verify(ctx, token)
		if err != nil || got.Code != credvault.VerifyValid || got.Key.ID != k.ID {
			t.Fatalf("got %v %v, want VALID for %s", got.Code, err, k.ID)
		}
	}
	if n := e.v.Stats().JWTSignatureChecks.Load(); n != 1 {
		t.Fatalf("50 verifications made %d full checks, want 1 (then the cache)", n)
	}
	e.v.Invalidate("key:" + hexHash(token))
	if got, _ := e.v.Verify(ctx, token); got.Code != credvault.VerifyValid {
		t.Fatal(got.Code)
	}
	if n := e.v.Stats().JWTSignatureChecks.Load(); n != 2 {
		t.Fatalf("after an invalidation: %d full checks, want 2", n)
	}
}

// TestJWTTamperedNeverReachesTheCache: a tampered token is refused by its
// signature and never looked up, even after the genuine one is cached.
func TestJWTTamperedNeverReachesTheCache(t *testing.T) {
	e := newJWTEnv(t)
	ctx := context.Background()
	_, token := e.create(t, credvault.CreateAPIKeyInput{})
	if got, _ := e.v.Verify(ctx, token); got.Code != credvault.VerifyValid {
		t.Fatal(got.Code)
	}
	parts := strings.Split(token, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := strings.Replace(string(payload), `"keys:read"`, `"admin"`, 1)
	if forged == string(payload) {
		t.Fatalf("payload has no scope to change: %s", payload)
	}
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
	before := e.v.Stats().DBLookups.Load()
	if got, _ := e.v.Verify(ctx, tampered); got.Code != credvault.VerifyBadSignature {
		t.Fatalf("tampered payload: got %s, want %s", got.Code, credvault.VerifyBadSignature)
	}
	if n := e.v.Stats().DBLookups.Load() - before; n != 0 {
		t.Fatalf("a tampered token made %d database lookups, want 0", n)
	}
}

// BenchmarkVerifyJWT is a JWT key's hot path after its first use: the
// same cache as BenchmarkVerifyCached, keyed by the token's SHA-256.
func BenchmarkVerifyJWT(b *testing.B) {
	e := newJWTEnv(b)
	_, token := e.create(b, credvault.CreateAPIKeyInput{Agent: ptr("bench-agent"), Scopes: []string{credvault.ScopeKeysRead, credvault.ScopeKeysVerify}})
	ctx := context.Background()
	if got, err := e.v.Verify(ctx, token); err != nil || got.Code != credvault.VerifyValid {
		b.Fatalf("%s %v", got.Code, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if got, _ := e.v.Verify(ctx, token); got.Code != credvault.VerifyValid {
				b.Fatal(got.Code)
			}
		}
	})
	b.ReportMetric(float64(len(token)), "token-bytes")
}

// BenchmarkVerifyJWTFirstUse is the full check a token gets the first
// time an instance sees it (parse, Ed25519, claims), without the database
// read that follows it.
func BenchmarkVerifyJWTFirstUse(b *testing.B) {
	e := newJWTEnv(b)
	_, token := e.create(b, credvault.CreateAPIKeyInput{})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if code := e.v.CheckJWT(ctx, token, time.Now()); code != "" {
			b.Fatal(code)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// BenchmarkVerifyJWTRatio measures a cached JWT key against a cached
// opaque key on the same verifier, interleaved in batches so that load
// from other processes hits both alike; it reports each one's ns/op and
// their ratio (jwt/opaque), the figure the 2x bound is about.
func BenchmarkVerifyJWTRatio(b *testing.B) {
	e := newJWTEnv(b)
	_, token := e.create(b, credvault.CreateAPIKeyInput{Agent: ptr("bench-agent"), Scopes: []string{credvault.ScopeKeysRead, credvault.ScopeKeysVerify}})
	opaque := e.owner.APIKey.Reveal()
	ctx := context.Background()
	for _, k := range []string{token, opaque} {
		if got, err := e.v.Verify(ctx, k); err != nil || got.Code != credvault.VerifyValid {
			b.Fatalf("%s %v", got.Code, err)
		}
	}
	const batch = 16
	var jwtTime, opaqueTime time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		start := time.Now()
		for range n {
			if got, _ := e.v.Verify(ctx, opaque); got.Code != credvault.VerifyValid {
				b.Fatal(got.Code)
			}
		}
		mid := time.Now()
		for range n {
			if got, _ := e.v.Verify(ctx, token); got.Code != credvault.VerifyValid {
				b.Fatal(got.Code)
			}
		}
		opaqueTime += mid.Sub(start)
		jwtTime += time.Since(mid)
	}
	b.ReportMetric(float64(opaqueTime.Nanoseconds())/float64(b.N), "opaque-ns/op")
	b.ReportMetric(float64(jwtTime.Nanoseconds())/float64(b.N), "jwt-ns/op")
	b.ReportMetric(float64(jwtTime)/float64(opaqueTime), "jwt/opaque")
}
