package main

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestSignInLinkNeverHandsOutMoreThanTheCallerHolds: a sign-in link opens
// a console session with the scopes of its user's role, so a key that
// lacks any of them cannot issue one. Before, a key with users:write alone
// signed its owner in and, from the console, created an unlimited admin key.
func TestSignInLinkNeverHandsOutMoreThanTheCallerHolds(t *testing.T) {
	cl, inst, ownerKey := consoleCluster(t)
	ownerID := whoamiUser(t, cl, inst, ownerKey)
	member := cl.as(ownerKey, "POST", inst.url+"/v1/users", map[string]any{"email": "m@acme.test", "role": "member"}).json(t)["id"].(string)
	admin := cl.as(ownerKey, "POST", inst.url+"/v1/users", map[string]any{"email": "a@acme.test", "role": "admin"}).json(t)["id"].(string)
	_, usersOnly := cl.createKey(inst, ownerKey, map[string]any{"name": "users-only", "scopes": []string{"users:write", "users:read"},
		"expires_in": "7d", "rate_limit": map[string]any{"requests": 5, "window_seconds": 60}})
	memberScopes := []string{"users:write", "users:read", "keys:read", "keys:write", "credentials:read", "credentials:use", "credentials:write"}
	_, memberLevel := cl.createKey(inst, ownerKey, map[string]any{"name": "member-level", "scopes": memberScopes})
	_, adminService := cl.createKey(inst, ownerKey, map[string]any{"name": "svc", "kind": "service", "scopes": []string{"users:write"}})

	before := countRows(t, cl.dbURL, `SELECT count(*) FROM sign_in_links`)
	for _, tc := range []struct {
		name, key, user string
	}{
		{"users:write key for its own owner", usersOnly, ownerID},
		{"users:write key for an admin", usersOnly, admin},
		{"users:write key for a member", usersOnly, member},
		{"member-level key for an admin", memberLevel, admin},
		{"users:write service key for a member", adminService, member},
	} {
		r := cl.as(tc.key, "POST", inst.url+"/v1/users/"+tc.user+"/sign-in-links", nil)
		if r.status != 403 || r.errCode(t) != "insufficient_scope" {
			t.Errorf("%s: %d %s, want 403 insufficient_scope", tc.name, r.status, r.body)
		}
		if strings.Contains(string(r.body), "/sign-in/link/") {
			t.Errorf("%s: a link was handed out", tc.name)
		}
	}
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM sign_in_links`); n != before {
		t.Fatalf("refused requests stored %d links", n-before)
	}
	// A key holding a member's console scopes may sign a member in.
	if r := cl.as(memberLevel, "POST", inst.url+"/v1/users/"+member+"/sign-in-links", nil); r.status != 201 {
		t.Fatalf("member-level key for a member: %d %s", r.status, r.body)
	}
	// A key with a rate limit or an expiry cannot open a session that has
	// neither (from which it could create unlimited, never-expiring keys),
	// whatever its scopes.
	_, expiring := cl.createKey(inst, ownerKey, map[string]any{"name": "expiring", "scopes": []string{"admin"}, "expires_in": "7d"})
	_, limited := cl.createKey(inst, ownerKey, map[string]any{"name": "limited", "scopes": []string{"admin"},
		"rate_limit": map[string]any{"requests": 5, "window_seconds": 60}})
	before = countRows(t, cl.dbURL, `SELECT count(*) FROM sign_in_links`)
	for name, key := range map[string]string{"expiring": expiring, "limited": limited} {
		r := cl.as(key, "POST", inst.url+"/v1/users/"+ownerID+"/sign-in-links", nil)
		if r.status != 403 || r.errCode(t) != "exceeds_creator_key" {
			t.Errorf("%s admin key signs its owner in: %d %s", name, r.status, r.body)
		}
	}
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM sign_in_links`); n != before {
		t.Fatalf("refused requests stored %d links", n-before)
	}
}

// TestJWTAlgorithmAndKeyConfusion: tokens an attacker can make without the
// signing key are refused before any lookup: alg "none", HS256 keyed with
// the published Ed25519 public key, a token signed by the attacker's own
// Ed25519 key under credvault's kid (with that key embedded as "jwk"), a
// genuine token of one org replayed with another org's claims, and a
// revoked key's token after its replacement was rolled from it.
func TestJWTAlgorithmAndKeyConfusion(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	_, globex := cl.bootstrap(a, "globex")
	id, token := cl.createKey(a, owner, map[string]any{"name": "j", "scopes": []string{"keys:read"}, "format": "jwt"})
	parts := strings.Split(token, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	kid := jwtHeader(t, token).KeyID
	jwks := a.s.signing.JWKS()
	pub := jwks.Keys[0].Key.(ed25519.PublicKey)

	enc := func(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }
	none := enc(`{"alg":"none","kid":"`+kid+`","typ":"JWT"}`) + "." + parts[1] + "."
	mac := hmac.New(sha256.New, pub)
	hsHead := enc(`{"alg":"HS256","kid":"` + kid + `","typ":"JWT"}`)
	mac.Write([]byte(hsHead + "." + parts[1]))
	hs256 := hsHead + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	_, mine, _ := ed25519.GenerateKey(nil)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: mine},
		(&jose.SignerOptions{EmbedJWK: true}).WithHeader(jose.HeaderKey("kid"), kid))
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	claims["scope"] = "admin"
	own, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, token, code string }{
		{"alg none", none, "malformed_api_key"},
		{"HS256 keyed with the public key", hs256, "malformed_api_key"},
		{"attacker's key under credvault's kid", own, "invalid_signature"},
	} {
		before := a.s.verifier.Stats().DBLookups.Load()
		if r := cl.as(tc.token, "GET", a.url+"/v1/whoami", nil); r.status != 401 || r.errCode(t) != tc.code {
			t.Errorf("%s: %d %s, want 401 %s", tc.name, r.status, r.body, tc.code)
		}
		if n := a.s.verifier.Stats().DBLookups.Load() - before; n != 0 {
			t.Errorf("%s: %d database lookups", tc.name, n)
		}
	}
	// The org comes from the key's row, never from the token: a key of
	// acme is acme's, and globex's own key sees only globex.
	if w := cl.as(token, "GET", a.url+"/v1/whoami", nil).json(t); w["key_id"] != id {
		t.Fatalf("genuine token: %v", w)
	}
	if r := cl.as(globex, "GET", a.url+"/v1/api-keys/"+id, nil); r.status != 404 {
		t.Fatalf("another org reads the key: %d", r.status)
	}
	// Revoked, then rolled: the roll is refused and the old token stays out.
	cl.as(owner, "POST", a.url+"/v1/api-keys/"+id+"/revoke", nil)
	if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+id+"/roll", nil); r.status != 409 {
		t.Fatalf("roll a revoked JWT key: %d %s", r.status, r.body)
	}
	if r := cl.as(token, "GET", a.url+"/v1/whoami", nil); r.status != 401 || r.errCode(t) != "revoked_api_key" {
		t.Fatalf("revoked JWT key: %d %s", r.status, r.body)
	}
}

// TestConsoleCreatesJWTKeysWithModeAndLabel: the console's key form offers
// the format (JWT with its agent claim) and keeps the mode (live|test, the
// token's env claim) apart from the free environment label, as the API
// does; a bad label is refused naming the field with nothing written.
func TestConsoleCreatesJWTKeysWithModeAndLabel(t *testing.T) {
	cl, inst, ownerKey := consoleCluster(t)
	b := newBrowserish(t, inst.url)
	b.signInWithLink(newLink(t, cl, inst, ownerKey, whoamiUser(t, cl, inst, ownerKey)))
	form := b.get("/api-keys/new").body
	for _, field := range []string{`name="format"`, `value="jwt"`, `name="agent"`, `name="mode"`, `name="environment"`} {
		if !strings.Contains(form, field) {
			t.Errorf("the key form lacks %s", field)
		}
	}
	tok := b.csrf("/api-keys/new")
	before := countRows(t, cl.dbURL, `SELECT count(*) FROM api_keys`)
	bad := b.post("/api-keys", url.Values{"csrf": {tok}, "name": {"k"}, "scopes": {"keys:read"}, "expires_in": {"never"},
		"mode": {"test"}, "environment": {"Prod uction"}, "format": {"jwt"}}, nil)
	if bad.status != 400 || !strings.Contains(bad.body, "environment") {
		t.Fatalf("bad label: %d", bad.status)
	}
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM api_keys`); n != before {
		t.Fatalf("a refused form wrote %d keys", n-before)
	}
	reveal := b.post("/api-keys", url.Values{"csrf": {tok}, "name": {"signed"}, "scopes": {"keys:read"}, "expires_in": {"never"},
		"mode": {"test"}, "environment": {"production"}, "format": {"jwt"}, "agent": {"billing-bot"}}, nil)
	// A JWT key is revealed in a wrapping text area, an opaque one in an input.
	m := regexp.MustCompile(`id="secret"[^>]*>(eyJ[^<]+)</textarea>`).FindStringSubmatch(reveal.body)
	if reveal.status != 201 || m == nil || !strings.HasPrefix(m[1], "eyJ") {
		t.Fatalf("console JWT key: %d", reveal.status)
	}
	w := cl.as(m[1], "GET", inst.url+"/v1/whoami", nil)
	if w.status != 200 {
		t.Fatalf("the console's JWT key on whoami: %d %s", w.status, w.body)
	}
	k := cl.as(ownerKey, "GET", inst.url+"/v1/api-keys/"+w.json(t)["key_id"].(string), nil).json(t)
	if k["format"] != "jwt" || k["mode"] != "test" || k["environment"] != "production" || k["agent"] != "billing-bot" {
		t.Fatalf("stored key: %v", k)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(m[1], ".")[1])
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil || claims["env"] != "test" || claims["agent"] != "billing-bot" {
		t.Fatalf("claims: %s", payload)
	}
}

// TestJWTIssuerDefaultsToThePublicURL: with CREDVAULT_PUBLIC_URL set and
// no CREDVAULT_ISSUER, every replica signs and expects the public URL as
// iss (not its own listener address), so a key made on one verifies on
// another.
func TestJWTIssuerDefaultsToThePublicURL(t *testing.T) {
	cl := newCluster(t, map[string]string{"CREDVAULT_PUBLIC_URL": "https://vault.example.com"})
	a, b := cl.start(), cl.start()
	_, owner := cl.bootstrap(a, "acme")
	_, token := cl.createKey(a, owner, map[string]any{"name": "j", "scopes": []string{"keys:read"}, "format": "jwt"})
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil || claims["iss"] != "https://vault.example.com" {
		t.Fatalf("iss: %s", payload)
	}
	if r := cl.as(token, "GET", b.url+"/v1/whoami", nil); r.status != 200 {
		t.Fatalf("the other replica: %d %s", r.status, r.body)
	}
}

// TestRefusalLogHoldsNoPartOfAJWT: a refused JWT key whose signature
// verifies but whose row is gone (its user deleted) is logged as
// "jwt_…last4", never as the token up to some underscore: the token's
// signature can be checked offline against the JWKS, so a logged prefix
// leaves only a few characters to guess.
func TestRefusalLogHoldsNoPartOfAJWT(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	o := newOrg(t, cl, a)
	var tokens []string
	for i := 0; i < 5; i++ {
		_, tok := cl.createKey(a, o.use, map[string]any{"name": "j", "scopes": []string{"keys:read"}, "format": "jwt"})
		tokens = append(tokens, tok)
	}
	if r := cl.as(o.owner, "DELETE", a.url+"/v1/users/"+o.useID, nil); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	for _, tok := range tokens {
		waitFor(t, time.Second, func() bool { return cl.as(tok, "GET", a.url+"/v1/whoami", nil).status == 401 })
	}
	logs := a.logs.String()
	if !strings.Contains(logs, `"key":"jwt_…`+tokens[0][len(tokens[0])-4:]) {
		t.Errorf("the refusal line does not name the key as jwt_…last4")
	}
	// The header is the same in every token; from the payload on, no 12
	// characters of any token may appear.
	for _, tok := range tokens {
		start := strings.Index(tok, ".") + 1
		for i := start; i+12 <= len(tok); i++ {
			if strings.Contains(logs, tok[i:i+12]) {
				t.Fatalf("the log holds part of a JWT key: %q", tok[i:i+12])
			}
		}
	}
}
