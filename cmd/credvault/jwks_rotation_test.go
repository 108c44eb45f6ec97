package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"credvault/internal/credvault"
)

// cachingJWKS caches the JWKS the way panva/jose's createRemoteJWKSet
// does: it fetches once, and on a kid it does not hold it fetches again
// only when its last fetch is more than 30 s old (jose's cooldown);
// otherwise the token is refused (jose's ERR_JWKS_NO_MATCHING_KEY). It
// sends If-None-Match with the ETag of the set it holds.
type cachingJWKS struct {
	url     string
	now     func() time.Time
	set     jose.JSONWebKeySet
	etag    string
	fetched time.Time
	fetches int // 200 answers
	reused  int // 304 answers
}

const joseCooldown = 30 * time.Second

func (c *cachingJWKS) fetch() error {
	req, _ := http.NewRequest(http.MethodGet, c.url+"/.well-known/jwks.json", nil)
	if c.etag != "" {
		req.Header.Set("If-None-Match", c.etag)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	c.fetched = c.now()
	switch resp.StatusCode {
	case http.StatusNotModified:
		c.reused++
		return nil
	case http.StatusOK:
		c.fetches++
		c.etag = resp.Header.Get("ETag")
		return json.NewDecoder(resp.Body).Decode(&c.set)
	}
	return errors.New("jwks: " + resp.Status)
}

func (c *cachingJWKS) verify(token, issuer string) error {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return err
	}
	keys := c.set.Key(tok.Headers[0].KeyID)
	if len(keys) == 0 && c.now().Sub(c.fetched) > joseCooldown {
		if err := c.fetch(); err != nil {
			return err
		}
		keys = c.set.Key(tok.Headers[0].KeyID)
	}
	if len(keys) != 1 {
		return errors.New("ERR_JWKS_NO_MATCHING_KEY " + tok.Headers[0].KeyID)
	}
	var claims jwt.Claims
	if err := tok.Claims(keys[0].Key, &claims); err != nil {
		return err
	}
	return claims.Validate(jwt.Expected{Issuer: issuer, Time: c.now()})
}

// TestJWKSRotationOfflineVerifierSurvives: a verifier that cached the
// JWKS just before a signing-key rotation verifies every key credvault
// issues afterwards without refetching: the new version is published at
// once, and signs only after credvault.SigningPublishDelay (more than the
// JWKS's max-age). The JWKS answers 304 to its own ETag.
func TestJWKSRotationOfflineVerifierSurvives(t *testing.T) {
	cl := newCluster(t, nil)
	var skew atomic.Int64 // how far the test has moved credvault's signing clock
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	a := cl.startWith(startOptions{now: clock})
	_, owner := cl.bootstrap(a, "acme")
	v := &cachingJWKS{url: a.url, now: clock}
	if err := v.fetch(); err != nil {
		t.Fatal(err)
	}
	if v.etag == "" || v.fetches != 1 {
		t.Fatalf("JWKS without an ETag: %q", v.etag)
	}
	// Conditional requests: the same set answers 304 with no body.
	r := cl.call("GET", a.url+"/.well-known/jwks.json", map[string]string{"If-None-Match": `"other", W/` + v.etag}, nil)
	if r.status != 304 || len(r.body) != 0 || r.header.Get("ETag") != v.etag || r.header.Get("Cache-Control") == "" {
		t.Fatalf("If-None-Match with the current ETag: %d %q %v", r.status, r.body, r.header)
	}
	if r := cl.call("GET", a.url+"/.well-known/jwks.json", map[string]string{"If-None-Match": `"other"`}, nil); r.status != 200 {
		t.Fatalf("If-None-Match with another ETag: %d", r.status)
	}

	ctx := context.Background()
	if err := a.s.vault.RotateSigningKey(ctx, "credvault-jwt"); err != nil {
		t.Fatal(err)
	}
	// Right after the rotation (the verifier fetched moments ago, inside
	// jose's cooldown): keys are still signed with v1, which it holds.
	_, k1 := cl.createKey(a, owner, map[string]any{"name": "right-after", "scopes": []string{"keys:read"}, "format": "jwt"})
	if kid := jwtHeader(t, k1).KeyID; kid != "credvault-jwt:v1" {
		t.Fatalf("key created right after the rotation: kid %q, want credvault-jwt:v1 until v2 is published", kid)
	}
	if err := v.verify(k1, a.s.issuer); err != nil {
		t.Fatalf("verifier that cached the JWKS before the rotation: %v", err)
	}
	// The new version is published at once, under a new ETag.
	if kids := jwksKids(t, cl, a); kids != "credvault-jwt:v2,credvault-jwt:v1" {
		t.Fatalf("JWKS right after the rotation: %s", kids)
	}
	old := v.etag
	skew.Store(int64(credvault.JWKSMaxAge)) // the cache expires: the verifier refetches
	if err := v.fetch(); err != nil || v.etag == old || v.fetches != 2 {
		t.Fatalf("refetch after max-age: err %v, etag %q (was %q), 200s %d", err, v.etag, old, v.fetches)
	}
	// Just before the publication delay ends: still v1.
	skew.Store(int64(credvault.SigningPublishDelay - time.Second))
	_, k2 := cl.createKey(a, owner, map[string]any{"name": "almost", "scopes": []string{"keys:read"}, "format": "jwt"})
	if kid := jwtHeader(t, k2).KeyID; kid != "credvault-jwt:v1" {
		t.Fatalf("key created before the publication delay: kid %q, want credvault-jwt:v1", kid)
	}
	// After it, v2 signs, and the verifier holds it without a refetch
	// (its last fetch is within the JWKS's max-age of the publication).
	skew.Store(int64(credvault.SigningPublishDelay + time.Second))
	_, k3 := cl.createKey(a, owner, map[string]any{"name": "later", "scopes": []string{"keys:read"}, "format": "jwt"})
	if kid := jwtHeader(t, k3).KeyID; kid != "credvault-jwt:v2" {
		t.Fatalf("key created after the publication delay: kid %q, want credvault-jwt:v2", kid)
	}
	v.fetched = clock() // inside the cooldown again: no refetch allowed
	for _, k := range []string{k1, k2, k3} {
		if err := v.verify(k, a.s.issuer); err != nil {
			t.Errorf("cached verifier: %v", err)
		}
	}
	if v.fetches != 2 {
		t.Errorf("verifier fetched the JWKS %d times, want 2", v.fetches)
	}
	// credvault itself accepts all three.
	for _, k := range []string{k1, k2, k3} {
		if r := cl.as(k, "GET", a.url+"/v1/whoami", nil); r.status != 200 {
			t.Errorf("whoami: %d %s", r.status, r.body)
		}
	}
}

// TestJWTKeyExpiryClaim: a JWT key made with expires_in carries exp equal
// to its expires_at; one made without carries no exp (expires_at null),
// so a verifier that requires exp refuses it and one that does not
// accepts it until the revocation feed says otherwise (README).
func TestJWTKeyExpiryClaim(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	r := cl.as(owner, "POST", a.url+"/v1/api-keys", map[string]any{"name": "dated", "scopes": []string{"keys:read"}, "format": "jwt", "expires_in": "30d"})
	var dated struct {
		Key       string     `json:"key"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
	if r.status != 201 || json.Unmarshal(r.body, &dated) != nil || dated.ExpiresAt == nil {
		t.Fatalf("create with expires_in: %d %s", r.status, r.body)
	}
	if exp, ok := jwtClaims(t, dated.Key)["exp"].(float64); !ok || int64(exp) != dated.ExpiresAt.Unix() {
		t.Errorf("exp %v, want expires_at %v", jwtClaims(t, dated.Key)["exp"], dated.ExpiresAt.Unix())
	}
	r = cl.as(owner, "POST", a.url+"/v1/api-keys", map[string]any{"name": "open", "scopes": []string{"keys:read"}, "format": "jwt"})
	var open struct {
		Key       string     `json:"key"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
	if r.status != 201 || json.Unmarshal(r.body, &open) != nil || open.ExpiresAt != nil {
		t.Fatalf("create without expires_in: %d %s", r.status, r.body)
	}
	if exp, ok := jwtClaims(t, open.Key)["exp"]; ok {
		t.Errorf("key without expiry carries exp %v", exp)
	}
	v := &cachingJWKS{url: a.url, now: time.Now}
	if err := v.fetch(); err != nil {
		t.Fatal(err)
	}
	if err := v.verify(open.Key, a.s.issuer); err != nil {
		t.Errorf("a verifier that does not require exp: %v", err)
	}
}
