package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"credvault/internal/apikey"
	"credvault/internal/credvault"
)

// jwtHeader decodes a token's protected header (test inspection only).
func jwtHeader(t *testing.T, token string) jose.Header {
	t.Helper()
	sig, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil || len(sig.Signatures) != 1 {
		t.Fatalf("not a compact JWS: %v", err)
	}
	return sig.Signatures[0].Header
}

// jwtClaims decodes a token's claims without verifying them (inspection).
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestJWTKeysForEveryKindAndHeaderForm creates JWT keys for the owner, a
// member (created by the owner) and a service, checks their claims and
// uses each on /v1/whoami in every configured header form.
func TestJWTKeysForEveryKindAndHeaderForm(t *testing.T) {
	cl := newCluster(t, map[string]string{"CREDVAULT_AUTH_HEADERS": "X-API-Key,Authorization,nected-api-key"})
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	r := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "m@acme.test", "name": "M", "role": "member"})
	if r.status != 201 {
		t.Fatalf("create member: %d %s", r.status, r.body)
	}
	memberID := r.json(t)["id"].(string)
	_, memberKey := cl.createKey(a, owner, map[string]any{"name": "m", "scopes": []string{"keys:read", "keys:write", "keys:verify"}, "user_id": memberID})
	var tokens []string
	for _, tc := range []struct {
		name    string
		creator string
		body    map[string]any
		sub     func(id string) string
		kind    string
	}{
		{"owner", owner, map[string]any{"agent": "billing-agent"}, func(string) string { return res.UserID }, "user"},
		{"member by owner", owner, map[string]any{"user_id": memberID, "environment": "test"}, func(string) string { return memberID }, "user"},
		{"member for itself", memberKey, map[string]any{"agent": "my-script"}, func(string) string { return memberID }, "user"},
		{"service", owner, map[string]any{"kind": "service", "agent": "zapier"}, func(id string) string { return "service:" + id }, "service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{"name": tc.name, "scopes": []string{"keys:read", "keys:verify"}, "format": "jwt", "expires_in": "30d"}
			for k, v := range tc.body {
				body[k] = v
			}
			r := cl.as(tc.creator, "POST", a.url+"/v1/api-keys", body)
			if r.status != 201 {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			m := r.json(t)
			id, token := m["id"].(string), m["key"].(string)
			tokens = append(tokens, token)
			if m["format"] != "jwt" {
				t.Errorf("got format %v, want jwt", m["format"])
			}
			if h := jwtHeader(t, token); h.KeyID != "credvault-jwt:v1" || h.Algorithm != "EdDSA" {
				t.Errorf("got header kid %q alg %q, want credvault-jwt:v1 EdDSA", h.KeyID, h.Algorithm)
			}
			c := jwtClaims(t, token)
			env, _ := body["environment"].(string)
			if env == "" {
				env = "live"
			}
			want := map[string]any{"iss": a.s.issuer, "sub": tc.sub(id), "org": res.OrgID, "jti": id, "scope": "keys:read keys:verify", "env": env}
			if agent, ok := tc.body["agent"]; ok {
				want["agent"] = agent
			}
			for k, v := range want {
				if c[k] != v {
					t.Errorf("claim %s: got %v, want %v", k, c[k], v)
				}
			}
			for _, k := range []string{"iat", "nbf", "exp"} {
				if _, ok := c[k].(float64); !ok {
					t.Errorf("claim %s missing: %v", k, c)
				}
			}
			for _, h := range []map[string]string{
				{"X-API-Key": token},
				{"Authorization": "Bearer " + token},
				{"nected-api-key": token},
			} {
				r := cl.call("GET", a.url+"/v1/whoami", h, nil)
				if r.status != 200 {
					t.Fatalf("%v: %d %s", h, r.status, r.body)
				}
				if w := r.json(t); w["key_id"] != id || w["kind"] != tc.kind {
					t.Errorf("whoami: got %v, want key %s kind %s", w, id, tc.kind)
				}
			}
			// List, get: the JWT is shown once and never again.
			g := cl.as(owner, "GET", a.url+"/v1/api-keys/"+id, nil)
			if g.status != 200 || strings.Contains(string(g.body), token) || g.json(t)["format"] != "jwt" {
				t.Errorf("get: %d %s", g.status, g.body)
			}
		})
	}
	// Shown once: no later answer, audit event or log line holds a token
	// (or its signature, which with the readable claims rebuilds it).
	cl.as(owner, "GET", a.url+"/v1/api-keys", nil)
	cl.as(owner, "GET", a.url+"/v1/audit", nil)
	created := 0
	for _, resp := range strings.Split(cl.allResponses(), "\n") {
		for _, tok := range tokens {
			if strings.Contains(resp, tok) {
				created++
			}
		}
	}
	if created != len(tokens) {
		t.Errorf("tokens appear in %d answers, want %d (only their creation)", created, len(tokens))
	}
	logs := a.logs.String()
	for _, tok := range tokens {
		if sig := tok[strings.LastIndex(tok, ".")+1:]; strings.Contains(logs, sig) {
			t.Errorf("a JWT key's signature is in the logs")
		}
	}
}

// forge signs claims with the instance's real signing key (or, with
// keyName, another transit key), the way only an attacker holding Vault
// access could, to exercise each claim check.
func forge(t *testing.T, inst *instance, issuer string, now time.Time, k *credvault.APIKey) string {
	t.Helper()
	m, err := (&apikey.JWTIssuer{Keys: inst.s.signing, Issuer: issuer, Now: func() time.Time { return now }}).MintJWT(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	return m.Key.Reveal()
}

// TestJWTRefusalsHaveTheirOwnCodes: a tampered payload, a tampered
// signature, a foreign kid (another transit key, an unknown version),
// an expired key, nbf in the future and another issuer are each refused
// with their own 401 code, and none of them is looked up.
func TestJWTRefusalsHaveTheirOwnCodes(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	id, token := cl.createKey(a, owner, map[string]any{"name": "j", "scopes": []string{"keys:read"}, "format": "jwt"})
	if r := cl.as(token, "GET", a.url+"/v1/whoami", nil); r.status != 200 {
		t.Fatalf("genuine: %d %s", r.status, r.body)
	}
	parts := strings.Split(token, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	morePower := strings.Replace(string(payload), `"keys:read"`, `"admin"`, 1)
	sig := []byte(parts[2]) // one base64url character changed for another
	sig[10] = 'A'
	if parts[2][10] == 'A' {
		sig[10] = 'B'
	}
	// Another ed25519 key on the same mount: a well-formed token whose kid
	// credvault does not use.
	if _, err := cl.vault.API.Logical().Write(cl.vault.Mount+"/keys/other-jwt", map[string]any{"type": "ed25519"}); err != nil {
		t.Fatal(err)
	}
	other := apikey.NewSigningKeys(a.s.vault.SigningKey("other-jwt"), nil)
	foreign, err := (&apikey.JWTIssuer{Keys: other, Issuer: a.url}).MintJWT(context.Background(), &credvault.APIKey{ID: id, OrgID: "o", Environment: "live"})
	if err != nil {
		t.Fatal(err)
	}
	wrongVersion := strings.Replace(token, parts[0], base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"credvault-jwt:v7","typ":"JWT"}`)), 1)
	past := time.Now().Add(-time.Hour)
	same := &credvault.APIKey{ID: id, OrgID: "o", Environment: "live", Scopes: []string{"keys:read"}}
	expired := *same
	expired.ExpiresAt = &past
	for _, tc := range []struct{ name, token, code string }{
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(morePower)) + "." + parts[2], "invalid_signature"},
		{"tampered signature", parts[0] + "." + parts[1] + "." + string(sig), "invalid_signature"},
		{"foreign kid", foreign.Key.Reveal(), "unknown_kid"},
		{"unknown version", wrongVersion, "unknown_kid"},
		{"expired", forge(t, a, a.s.issuer, past.Add(-time.Hour), &expired), "expired_api_key"},
		{"nbf in the future", forge(t, a, a.s.issuer, time.Now().Add(time.Hour), same), "not_yet_valid_api_key"},
		{"wrong issuer", forge(t, a, "https://elsewhere.example", time.Now(), same), "wrong_issuer"},
		{"not a JWS", "eyJhbGciOiJFZERTQSJ9.e30", "malformed_api_key"},
	} {
		before := a.s.verifier.Stats().DBLookups.Load()
		r := cl.as(tc.token, "GET", a.url+"/v1/whoami", nil)
		if r.status != 401 || r.errCode(t) != tc.code || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: got %d %s, want 401 %s", tc.name, r.status, r.body, tc.code)
		}
		if n := a.s.verifier.Stats().DBLookups.Load() - before; n != 0 {
			t.Errorf("%s: %d database lookups, want 0", tc.name, n)
		}
	}
	// A JWT key in the URL is refused like an opaque one, under any name.
	if r := cl.as(owner, "GET", a.url+"/v1/whoami?t="+token, nil); r.status != 401 || r.errCode(t) != "api_key_in_query" {
		t.Errorf("JWT key in the query: %d %s", r.status, r.body)
	}
	// The gateway's view: the same outcomes as verification codes.
	r := cl.as(owner, "POST", a.url+"/v1/api-keys/verify", map[string]any{"key": parts[0] + "." + parts[1] + "." + string(sig)})
	if r.status != 200 || r.json(t)["code"] != credvault.VerifyBadSignature {
		t.Errorf("verify endpoint: %d %s", r.status, r.body)
	}
}

// TestJWTRevokeReachesEveryInstanceAndTheFeed: a JWT key cached on B and
// revoked through A is refused by B within a second, and appears in the
// revocation feed with a cursor that moves on.
func TestJWTRevokeReachesEveryInstanceAndTheFeed(t *testing.T) {
	// Replicas share one issuer (the default, each listener's own URL,
	// suits a single instance).
	cl := newCluster(t, map[string]string{"CREDVAULT_ISSUER": "https://credvault.acme.test"})
	a, b := cl.start(), cl.start()
	_, owner := cl.bootstrap(a, "acme")
	feed := func(since int64) (ids []string, next int64) {
		r := cl.as(owner, "GET", fmt.Sprintf("%s/v1/api-keys/revocations?since=%d", b.url, since), nil)
		if r.status != 200 {
			t.Fatalf("feed: %d %s", r.status, r.body)
		}
		var out struct {
			Data []struct {
				JTI    string `json:"jti"`
				Reason string `json:"reason"`
			} `json:"data"`
			Next int64 `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatal(err)
		}
		for _, d := range out.Data {
			ids = append(ids, d.JTI+"/"+d.Reason)
		}
		return ids, out.Next
	}
	var cursor int64
	for round := range 3 {
		id, token := cl.createKey(a, owner, map[string]any{"name": fmt.Sprint("j", round), "scopes": []string{"keys:read"}, "format": "jwt"})
		for range 3 {
			if r := cl.as(token, "GET", b.url+"/v1/whoami", nil); r.status != 200 {
				t.Fatalf("B before revoke: %d %s", r.status, r.body)
			}
		}
		start := time.Now()
		if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+id+"/revoke", nil); r.status != 200 {
			t.Fatalf("revoke: %d", r.status)
		}
		for {
			r := cl.as(token, "GET", b.url+"/v1/whoami", nil)
			if r.status == 401 && r.errCode(t) == "revoked_api_key" {
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("B still answers %d %s %s after revoke on A", r.status, r.body, time.Since(start))
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("round %d: B refused the JWT key %s after revoke on A", round, time.Since(start).Round(time.Millisecond))
		ids, next := feed(cursor)
		if len(ids) != 1 || ids[0] != id+"/revoked" || next <= cursor {
			t.Fatalf("feed since %d: got %v next %d, want [%s/revoked] and a later cursor", cursor, ids, next, id)
		}
		cursor = next
	}
	if ids, next := feed(cursor); len(ids) != 0 || next != cursor {
		t.Errorf("feed after the last cursor: %v %d, want nothing new", ids, next)
	}
	// The feed needs keys:verify, and a cursor that is a number.
	_, reader := cl.createKey(a, owner, map[string]any{"name": "r", "scopes": []string{"keys:read"}})
	if r := cl.as(reader, "GET", b.url+"/v1/api-keys/revocations", nil); r.status != 403 {
		t.Errorf("without keys:verify: %d %s", r.status, r.body)
	}
	if r := cl.as(owner, "GET", b.url+"/v1/api-keys/revocations?since=abc", nil); r.status != 400 || !strings.Contains(r.errMessage(t), "since") {
		t.Errorf("bad since: %d %s", r.status, r.body)
	}
}

// TestJWTSigningKeyRotation: after a rotation in Vault (and its
// publication delay) new keys carry the new kid while old ones keep
// verifying; after the minimum version is raised the old ones answer 401
// retired_signing_key, also from the cache, and the JWKS lists only what
// still verifies.
func TestJWTSigningKeyRotation(t *testing.T) {
	cl := newCluster(t, map[string]string{"CREDVAULT_ISSUER": "https://credvault.acme.test"})
	late := func() time.Time { return time.Now().Add(credvault.SigningPublishDelay) }
	a, b := cl.startWith(startOptions{now: late}), cl.start()
	_, owner := cl.bootstrap(a, "acme")
	_, oldKey := cl.createKey(a, owner, map[string]any{"name": "old", "scopes": []string{"keys:read"}, "format": "jwt"})
	if r := cl.as(oldKey, "GET", a.url+"/v1/whoami", nil); r.status != 200 {
		t.Fatalf("old key: %d", r.status)
	}
	ctx := context.Background()
	if err := a.s.vault.RotateSigningKey(ctx, "credvault-jwt"); err != nil {
		t.Fatal(err)
	}
	_, newKey := cl.createKey(a, owner, map[string]any{"name": "new", "scopes": []string{"keys:read"}, "format": "jwt"})
	if kid := jwtHeader(t, newKey).KeyID; kid != "credvault-jwt:v2" {
		t.Fatalf("key created after rotation: kid %q, want credvault-jwt:v2", kid)
	}
	// B read the signing key before the rotation: the new kid makes it
	// read the key again on first sight.
	for _, inst := range []*instance{a, b} {
		for _, k := range []string{oldKey, newKey} {
			if r := cl.as(k, "GET", inst.url+"/v1/whoami", nil); r.status != 200 {
				t.Fatalf("after rotation: %d %s", r.status, r.body)
			}
		}
	}
	if kids := jwksKids(t, cl, a); kids != "credvault-jwt:v2,credvault-jwt:v1" {
		t.Errorf("JWKS after rotation: %s", kids)
	}
	if err := a.s.vault.SetSigningMinVersion(ctx, "credvault-jwt", 2); err != nil {
		t.Fatal(err)
	}
	if err := a.s.signing.Refresh(ctx); err != nil { // what the periodic refresh does
		t.Fatal(err)
	}
	if r := cl.as(oldKey, "GET", a.url+"/v1/whoami", nil); r.status != 401 || r.errCode(t) != "retired_signing_key" ||
		!strings.Contains(r.errMessage(t), "retired") {
		t.Errorf("old key after min raised: %d %s", r.status, r.body)
	}
	if r := cl.as(newKey, "GET", a.url+"/v1/whoami", nil); r.status != 200 {
		t.Errorf("new key after min raised: %d %s", r.status, r.body)
	}
	if kids := jwksKids(t, cl, a); kids != "credvault-jwt:v2" {
		t.Errorf("JWKS after min raised: %s", kids)
	}
	// An instance started now refuses the old key on first sight.
	c := cl.start()
	if r := cl.as(oldKey, "GET", c.url+"/v1/whoami", nil); r.status != 401 || r.errCode(t) != "retired_signing_key" {
		t.Errorf("fresh instance, old key: %d %s", r.status, r.body)
	}
}

func jwksKids(t *testing.T, cl *cluster, inst *instance) string {
	t.Helper()
	r := cl.call("GET", inst.url+"/.well-known/jwks.json", nil, nil)
	if r.status != 200 || !strings.Contains(r.header.Get("Cache-Control"), "max-age") {
		t.Fatalf("jwks: %d %v", r.status, r.header)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(r.body, &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		if _, ok := k.Key.([]byte); ok || k.Algorithm != "EdDSA" || !k.IsPublic() {
			t.Errorf("JWK %s: %T %s, want a public Ed25519 key", k.KeyID, k.Key, k.Algorithm)
		}
		kids = append(kids, k.KeyID)
	}
	return strings.Join(kids, ",")
}

// TestJWTBadInputWritesNothing: an unknown format, or an agent label on an
// opaque key, is a 400 naming the field, and no key is stored.
func TestJWTBadInputWritesNothing(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	count := func() int {
		var n int
		if err := a.s.db.Get(&n, `SELECT count(*) FROM api_keys`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"format": "paseto"}, "format"},
		{map[string]any{"format": "opaque", "agent": "x"}, "agent"},
		{map[string]any{"agent": "y"}, "agent"},
		{map[string]any{"format": "jwt", "agent": strings.Repeat("a", 201)}, "agent"},
		{map[string]any{"format": "jwt", "agent": "  "}, "agent"},
	} {
		body := map[string]any{"name": "n", "scopes": []string{"keys:read"}}
		for k, v := range tc.body {
			body[k] = v
		}
		r := cl.as(owner, "POST", a.url+"/v1/api-keys", body)
		if r.status != 400 || !strings.Contains(strings.ToLower(r.errMessage(t)), tc.field) {
			t.Errorf("%v: %d %s, want 400 naming %s", tc.body, r.status, r.body, tc.field)
		}
	}
	if n := count(); n != before {
		t.Errorf("bad input stored %d keys", n-before)
	}
}

// TestJWTRollKeepsFormat: rolling a JWT key issues a JWT with the same
// claims under a new jti; the old one is in the feed, due at the end of
// its grace.
func TestJWTRollKeepsFormat(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	id, _ := cl.createKey(a, owner, map[string]any{"name": "r", "scopes": []string{"keys:read"}, "format": "jwt", "agent": "n8n"})
	r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+id+"/roll", map[string]any{"grace_seconds": 60})
	if r.status != 201 {
		t.Fatalf("roll: %d %s", r.status, r.body)
	}
	m := r.json(t)
	next := m["key"].(string)
	if c := jwtClaims(t, next); m["format"] != "jwt" || c["agent"] != "n8n" || c["jti"] != m["id"] {
		t.Errorf("rolled key: %v claims %v", m, c)
	}
	if r := cl.as(next, "GET", a.url+"/v1/whoami", nil); r.status != 200 {
		t.Errorf("rolled key: %d", r.status)
	}
	f := cl.as(owner, "GET", a.url+"/v1/api-keys/revocations", nil)
	if f.status != 200 || !strings.Contains(string(f.body), `"jti":"`+id+`"`) || !strings.Contains(string(f.body), `"reason":"rolled"`) {
		t.Errorf("feed after roll: %d %s", f.status, f.body)
	}
}
