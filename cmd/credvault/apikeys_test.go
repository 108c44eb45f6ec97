package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"credvault/internal/apikey"
)

func TestAuthenticationFailures(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	_, other := cl.bootstrap(a, "globex")

	readID, readOnly := cl.createKey(a, owner, map[string]any{"name": "read", "scopes": []string{"keys:read"}})
	_, limited := cl.createKey(a, owner, map[string]any{"name": "limited", "scopes": []string{"keys:read"},
		"rate_limit": map[string]any{"requests": 2, "window_seconds": 60}})
	revokedID, revoked := cl.createKey(a, owner, map[string]any{"name": "gone", "scopes": []string{"keys:read"}})
	if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+revokedID+"/revoke", nil); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	expiredID, expired := cl.createKey(a, owner, map[string]any{"name": "old", "scopes": []string{"keys:read"}})
	if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+expiredID+"/roll", map[string]any{"grace_seconds": 0}); r.status != 201 {
		t.Fatalf("roll: %d %s", r.status, r.body)
	}
	unknown, err := apikey.Generate("cv", "live")
	if err != nil {
		t.Fatal(err)
	}
	memberRes := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "m@acme.test", "role": "member"})
	memberID := memberRes.json(t)["id"].(string)
	_, member := cl.createKey(a, owner, map[string]any{"name": "member", "scopes": []string{"admin"}, "user_id": memberID})
	otherUsers := cl.as(other, "GET", a.url+"/v1/users", nil).json(t)["data"].([]any)
	otherUserID := otherUsers[0].(map[string]any)["id"].(string)

	cases := []struct {
		name       string
		method     string
		path       string
		headers    map[string]string
		body       any
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{"missing", "GET", "/v1/whoami", nil, nil, 401, "missing_api_key", "no API key"},
		{"malformed", "GET", "/v1/whoami", map[string]string{"X-API-Key": "not-a-key"}, nil, 401, "malformed_api_key", "malformed API key"},
		{"basic auth scheme", "GET", "/v1/whoami", map[string]string{"Authorization": "Basic dXNlcjpwdw=="}, nil, 401, "malformed_api_key", "malformed API key"},
		{"unknown", "GET", "/v1/whoami", map[string]string{"X-API-Key": unknown.Reveal()}, nil, 401, "unknown_api_key", "unauthorized access"},
		{"expired", "GET", "/v1/whoami", map[string]string{"X-API-Key": expired}, nil, 401, "expired_api_key", "API key expired"},
		{"revoked", "GET", "/v1/whoami", map[string]string{"X-API-Key": revoked}, nil, 401, "revoked_api_key", "API key was revoked"},
		{"key in query", "GET", "/v1/whoami?api_key=" + readOnly, nil, nil, 401, "api_key_in_query", "not accepted in the URL query string"},
		{"key value in any query parameter", "GET", "/v1/whoami?q=" + readOnly, map[string]string{"X-API-Key": readOnly}, nil, 401, "api_key_in_query", "query string"},
		{"missing scope", "POST", "/v1/users", map[string]string{"X-API-Key": readOnly}, map[string]any{"email": "x@acme.test", "role": "member"}, 403, "insufficient_scope", "users:write"},
		{"role forbids", "POST", "/v1/users", map[string]string{"X-API-Key": member}, map[string]any{"email": "y@acme.test", "role": "member"}, 403, "forbidden_role", "only owners and admins"},
		{"member reads another's key", "GET", "/v1/api-keys/" + readID, map[string]string{"X-API-Key": member}, nil, 403, "forbidden_role", "only owners and admins"},
		{"other org's user", "GET", "/v1/users/" + otherUserID, map[string]string{"X-API-Key": owner}, nil, 404, "not_found", "user not found"},
		{"other org's key", "GET", "/v1/api-keys/" + readID, map[string]string{"X-API-Key": other}, nil, 404, "not_found", "API key not found"},
		{"other org's key revoke", "POST", "/v1/api-keys/" + readID + "/revoke", map[string]string{"X-API-Key": other}, nil, 404, "not_found", "API key not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := cl.call(tc.method, a.url+tc.path, tc.headers, tc.body)
			if r.status != tc.wantStatus || r.errCode(t) != tc.wantCode || !strings.Contains(r.errMessage(t), tc.wantMsg) {
				t.Fatalf("got %d %s %q, want %d %s containing %q", r.status, r.errCode(t), r.errMessage(t), tc.wantStatus, tc.wantCode, tc.wantMsg)
			}
			if tc.wantStatus == 401 {
				www := r.header.Get("WWW-Authenticate")
				if !strings.HasPrefix(www, `Bearer realm="credvault"`) {
					t.Errorf("WWW-Authenticate = %q", www)
				}
				if (tc.wantCode == "missing_api_key") == strings.Contains(www, "invalid_token") {
					t.Errorf("WWW-Authenticate = %q: invalid_token only when a key was sent", www)
				}
			}
		})
	}

	// 429 with Retry-After and the RateLimit headers.
	for i, want := range []int{200, 200, 429} {
		r := cl.as(limited, "GET", a.url+"/v1/whoami", nil)
		if r.status != want {
			t.Fatalf("request %d: %d, want %d", i, r.status, want)
		}
		if r.header.Get("RateLimit-Limit") != "2" || r.header.Get("RateLimit-Remaining") != fmt.Sprint(max(0, 1-i)) || r.header.Get("RateLimit-Reset") == "" {
			t.Errorf("request %d: RateLimit headers %v", i, r.header)
		}
		if want == 429 {
			if r.errCode(t) != "rate_limited" || r.header.Get("Retry-After") == "" || r.header.Get("Retry-After") == "0" {
				t.Errorf("429: code %s, Retry-After %q", r.errCode(t), r.header.Get("Retry-After"))
			}
		}
	}
}

func TestKeyHeaderForms(t *testing.T) {
	cl := newCluster(t, map[string]string{"CREDVAULT_AUTH_HEADERS": "X-API-Key,Authorization,nected-api-key"})
	a := cl.start()
	_, key := cl.bootstrap(a, "acme")
	for _, h := range []map[string]string{
		{"X-API-Key": key},
		{"x-api-key": key},
		{"Authorization": "Bearer " + key},
		{"Authorization": "bearer " + key},
		{"nected-api-key": key},
	} {
		if r := cl.call("GET", a.url+"/v1/whoami", h, nil); r.status != 200 {
			t.Errorf("%v: %d %s", h, r.status, r.body)
		}
	}
	// A header that is not configured is not read.
	cl2 := newCluster(t, nil)
	b := cl2.start()
	_, key2 := cl2.bootstrap(b, "acme")
	if r := cl2.call("GET", b.url+"/v1/whoami", map[string]string{"nected-api-key": key2}, nil); r.status != 401 || r.errCode(t) != "missing_api_key" {
		t.Errorf("unconfigured header: %d %s", r.status, r.body)
	}
}

// TestChecksumFailuresNeverReachTheDatabase changes one character of a
// valid key at every position: each is refused as malformed, and the
// verifier makes no database lookup for any of them. Unknown keys with a
// valid checksum cost at most the verifier's miss budget in lookups (kept
// for a key created on another instance a moment ago), however many come.
func TestChecksumFailuresNeverReachTheDatabase(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, key := cl.bootstrap(a, "acme")
	if r := cl.as(key, "GET", a.url+"/v1/whoami", nil); r.status != 200 {
		t.Fatalf("whoami: %d", r.status)
	}
	stats := a.s.verifier.Stats()
	before := stats.DBLookups.Load()
	tried := 0
	for i := len("cv_live_"); i < len(key); i++ {
		if key[i] == '_' {
			continue
		}
		b := []byte(key)
		b[i] = map[bool]byte{true: 'B', false: 'A'}[b[i] == 'A']
		r := cl.as(string(b), "GET", a.url+"/v1/whoami", nil)
		if r.status != 401 || r.errCode(t) != "malformed_api_key" {
			t.Fatalf("position %d: %d %s", i, r.status, r.body)
		}
		tried++
	}
	if n := stats.DBLookups.Load() - before; n != 0 {
		t.Fatalf("%d database lookups for %d keys with one character changed, want 0", n, tried)
	}
	const unknownKeys = 200
	start := time.Now()
	for range unknownKeys {
		k, _ := apikey.Generate("cv", "live")
		if r := cl.as(k.Reveal(), "GET", a.url+"/v1/whoami", nil); r.status != 401 || r.errCode(t) != "unknown_api_key" {
			t.Fatalf("unknown key: %d %s", r.status, r.body)
		}
	}
	// A token bucket: a full burst, then the refill over the elapsed time.
	budget := int64(apikey.DefaultMissBudget) + int64(float64(apikey.DefaultMissBudget)*time.Since(start).Seconds()+1)
	if n := stats.DBLookups.Load() - before; n > budget {
		t.Fatalf("%d database lookups for %d unknown keys in %s, want at most %d (the miss budget)", n, unknownKeys, time.Since(start), budget)
	}
	t.Logf("%d altered keys: 0 lookups; %d unknown keys: %d lookups", tried, unknownKeys, stats.DBLookups.Load()-before)
}

func TestRollKeepsOldKeyUntilGraceEnds(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	id, old := cl.createKey(a, owner, map[string]any{"name": "ci", "scopes": []string{"keys:read"}, "tags": map[string]string{"team": "ops"}})
	r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+id+"/roll", map[string]any{"grace_seconds": 2})
	if r.status != 201 {
		t.Fatalf("roll: %d %s", r.status, r.body)
	}
	m := r.json(t)
	next := m["key"].(string)
	if m["name"] != "ci" || m["tags"].(map[string]any)["team"] != "ops" || fmt.Sprint(m["scopes"]) != "[keys:read]" {
		t.Fatalf("rolled key lost settings: %s", r.body)
	}
	rolledAt := time.Now()
	for _, k := range []string{old, next} {
		if r := cl.as(k, "GET", a.url+"/v1/whoami", nil); r.status != 200 {
			t.Fatalf("during grace: %d %s", r.status, r.body)
		}
	}
	if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+id+"/roll", nil); r.status != 409 {
		t.Fatalf("second roll of the old key: %d, want 409", r.status)
	}
	time.Sleep(time.Until(rolledAt.Add(2100 * time.Millisecond)))
	if r := cl.as(old, "GET", a.url+"/v1/whoami", nil); r.status != 401 || r.errCode(t) != "expired_api_key" {
		t.Fatalf("after grace: %d %s", r.status, r.body)
	}
	if r := cl.as(next, "GET", a.url+"/v1/whoami", nil); r.status != 200 {
		t.Fatalf("new key after grace: %d", r.status)
	}
}

// TestRevokeReachesEveryInstance runs two instances on one database: a key
// verified (and cached) by B is revoked through A; B refuses it within 1s.
func TestRevokeReachesEveryInstance(t *testing.T) {
	cl := newCluster(t, nil)
	a, b := cl.start(), cl.start()
	_, owner := cl.bootstrap(a, "acme")
	for round := range 5 {
		id, key := cl.createKey(a, owner, map[string]any{"name": fmt.Sprint("k", round), "scopes": []string{"keys:read"}})
		for range 3 { // cached on B
			if r := cl.as(key, "GET", b.url+"/v1/whoami", nil); r.status != 200 {
				t.Fatalf("B before revoke: %d %s", r.status, r.body)
			}
		}
		start := time.Now()
		if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+id+"/revoke", nil); r.status != 200 {
			t.Fatalf("revoke on A: %d", r.status)
		}
		for {
			r := cl.as(key, "GET", b.url+"/v1/whoami", nil)
			if r.status == 401 {
				if r.errCode(t) != "revoked_api_key" {
					t.Fatalf("B: %s, want revoked_api_key", r.body)
				}
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("B still accepts the key %s after revoke on A", time.Since(start))
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("round %d: B refused the key %s after revoke on A", round, time.Since(start).Round(time.Millisecond))
	}
}

// TestRedisSharesOneLimitAcrossInstances: with REDIS_URL, two instances
// together allow exactly the key's limit.
func TestRedisSharesOneLimitAcrossInstances(t *testing.T) {
	redisURL := os.Getenv("REDIS_URL")
	if redisURL == "" {
		redisURL = "redis://127.0.0.1:6379/0"
	}
	// The 50ms production timeout is not what this test is about: under the
	// race detector on a loaded machine a round trip can take longer, and
	// each instance would then fall back to its own limit.
	cl := newCluster(t, map[string]string{"REDIS_URL": redisURL, "CREDVAULT_REDIS_TIMEOUT": "5s"})
	a, b := cl.start(), cl.start()
	_, owner := cl.bootstrap(a, "acme")
	_, key := cl.createKey(a, owner, map[string]any{"name": "shared", "scopes": []string{"keys:read"},
		"rate_limit": map[string]any{"requests": 6, "window_seconds": 60}})
	var ok, limited atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst := []*instance{a, b}[i%2]
			switch r := cl.as(key, "GET", inst.url+"/v1/whoami", nil); r.status {
			case 200:
				ok.Add(1)
			case 429:
				limited.Add(1)
			default:
				t.Errorf("status %d", r.status)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 6 || limited.Load() != 14 {
		t.Fatalf("allowed %d, limited %d across two instances; want 6 and 14 (one shared limit)", ok.Load(), limited.Load())
	}
}

// TestSecretHygiene creates, uses, rolls and revokes keys with debug logs,
// then searches logs, audit events, every API response after creation and
// /metrics for the keys.
func TestSecretHygiene(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	cl.mu.Lock()
	cl.responses = nil
	cl.mu.Unlock()

	var secrets []string
	id, key := cl.createKey(a, owner, map[string]any{"name": "ci", "scopes": []string{"keys:read", "keys:write", "keys:verify"}})
	secrets = append(secrets, owner, key)
	cl.mu.Lock()
	cl.responses = nil // the creation response is the one place the key may appear
	cl.mu.Unlock()
	cl.as(key, "GET", a.url+"/v1/whoami", nil)
	cl.as(key, "GET", a.url+"/v1/api-keys", nil)
	cl.as(key, "GET", a.url+"/v1/api-keys/"+id, nil)
	cl.as(key, "POST", a.url+"/v1/api-keys/verify", map[string]any{"key": key})
	cl.call("GET", a.url+"/v1/auth/check", map[string]string{"Authorization": "Bearer " + key}, nil)
	cl.as(key, "GET", a.url+"/v1/whoami?x="+key, nil)
	r := cl.as(key, "POST", a.url+"/v1/api-keys/"+id+"/roll", map[string]any{"grace_seconds": 0})
	next := r.json(t)["key"].(string)
	secrets = append(secrets, next)
	cl.mu.Lock()
	cl.responses = cl.responses[:len(cl.responses)-1] // the roll response shows the new key once
	cl.mu.Unlock()
	cl.as(next, "POST", a.url+"/v1/api-keys/"+r.json(t)["id"].(string)+"/revoke", nil)
	cl.as(next, "GET", a.url+"/v1/whoami", nil)
	cl.as(key, "GET", a.url+"/v1/whoami", nil)
	metrics := cl.call("GET", a.url+"/metrics", nil, nil)

	var audit []string
	if err := a.s.db.Select(&audit, `SELECT row_to_json(a)::text FROM audit_events a WHERE org_id = $1`, res.OrgID); err != nil {
		t.Fatal(err)
	}
	if len(audit) < 4 {
		t.Fatalf("only %d audit events for create, roll and revoke", len(audit))
	}
	time.Sleep(1100 * time.Millisecond) // let last_used_at flush and log
	places := map[string]string{
		"logs":      a.logs.String(),
		"audit":     strings.Join(audit, "\n"),
		"responses": cl.allResponses(),
		"metrics":   string(metrics.body),
	}
	for _, s := range secrets {
		hashHex := fmt.Sprintf("%x", apikey.Hash(s))
		for where, text := range places {
			if strings.Contains(text, s) || strings.Contains(text, s[len(s)-20:]) {
				t.Errorf("a key appears in %s", where)
			}
			if strings.Contains(text, hashHex) {
				t.Errorf("a key hash appears in %s", where)
			}
		}
	}
	if !strings.Contains(places["logs"], `"level":"DEBUG"`) {
		t.Fatalf("debug logging was not on; the search proves little")
	}
}

func TestAPIKeyBadInputWritesNothing(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	count := func() int {
		var n int
		if err := a.s.db.Get(&n, `SELECT count(*) FROM api_keys WHERE org_id = $1`, res.OrgID); err != nil {
			t.Fatal(err)
		}
		return n
	}
	_, readOnly := cl.createKey(a, owner, map[string]any{"name": "ro", "scopes": []string{"keys:read", "keys:write"}})
	before := count()
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	cases := []struct {
		name       string
		key        string
		body       map[string]any
		wantStatus int
		wantMsg    string
	}{
		{"no name", owner, map[string]any{"scopes": []string{"keys:read"}}, 400, `field "name" is required`},
		{"no scopes", owner, map[string]any{"name": "x"}, 400, `field "scopes" is required`},
		{"empty scopes", owner, map[string]any{"name": "x", "scopes": []string{}}, 400, `"scopes" must list at least one scope`},
		{"unknown scope", owner, map[string]any{"name": "x", "scopes": []string{"keys:delete"}}, 400, `unknown scope "keys:delete"`},
		{"bad expires_in", owner, map[string]any{"name": "x", "scopes": []string{"keys:read"}, "expires_in": "1y"}, 400, `field "expires_in" must be one of`},
		{"both expiries", owner, map[string]any{"name": "x", "scopes": []string{"keys:read"}, "expires_in": "7d", "expires_at": future}, 400, "not both"},
		{"past expires_at", owner, map[string]any{"name": "x", "scopes": []string{"keys:read"}, "expires_at": "2020-01-01T00:00:00Z"}, 400, "in the future"},
		{"bad environment", owner, map[string]any{"name": "x", "scopes": []string{"keys:read"}, "environment": "Prod!"}, 400, `field "environment" must be 1-63`},
		{"long environment", owner, map[string]any{"name": "x", "scopes": []string{"keys:read"}, "environment": strings.Repeat("e", 64)}, 400, `field "environment" must be 1-63`},
		{"bad mode", owner, map[string]any{"name": "x", "scopes": []string{"keys:read"}, "mode": "prod"}, 400, `field "mode" must be one of: live test`},
		{"zero rate", owner, map[string]any{"name": "x", "scopes": []string{"keys:read"}, "rate_limit": map[string]any{"requests": 0, "window_seconds": 1}}, 400, "rate_limit.requests"},
		{"long window", owner, map[string]any{"name": "x", "scopes": []string{"keys:read"}, "rate_limit": map[string]any{"requests": 1, "window_seconds": 86401}}, 400, "rate_limit.window_seconds"},
		{"unknown field", owner, map[string]any{"name": "x", "scopes": []string{"keys:read"}, "owner": "me"}, 400, `unknown field "owner"`},
		{"service key with user", owner, map[string]any{"name": "x", "scopes": []string{"keys:read"}, "kind": "service", "user_id": res.UserID}, 400, "must be empty for a service key"},
		{"unknown user", owner, map[string]any{"name": "x", "scopes": []string{"keys:read"}, "user_id": "00000000-0000-0000-0000-000000000000"}, 400, "no such user"},
		{"scope escalation", readOnly, map[string]any{"name": "x", "scopes": []string{"admin"}}, 403, "scopes its creator lacks: admin"},
		{"too many tags", owner, map[string]any{"name": "x", "scopes": []string{"keys:read"}, "tags": manyTags(21)}, 400, "at most 20"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := cl.as(tc.key, "POST", a.url+"/v1/api-keys", tc.body)
			if r.status != tc.wantStatus || !strings.Contains(r.errMessage(t), tc.wantMsg) {
				t.Fatalf("got %d %q, want %d containing %q", r.status, r.errMessage(t), tc.wantStatus, tc.wantMsg)
			}
		})
	}
	for _, g := range []any{-1, 30*86400 + 1, "soon"} {
		if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+res.UserID+"/roll", map[string]any{"grace_seconds": g}); r.status != 400 {
			t.Errorf("grace %v: %d %s", g, r.status, r.body)
		}
	}
	if n := count(); n != before {
		t.Fatalf("api_keys rows %d -> %d after bad input", before, n)
	}
}

func manyTags(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprint("t", i)] = "v"
	}
	return m
}

// TestWhoamiAndLastUsed: whoami names the caller; last_used_at is written
// back in a batch within about a second of use, not on the request.
func TestWhoamiAndLastUsed(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	r := cl.as(owner, "GET", a.url+"/v1/whoami", nil)
	m := r.json(t)
	if r.status != http.StatusOK || m["org_id"] != res.OrgID || m["user_id"] != res.UserID || m["role"] != "owner" || fmt.Sprint(m["scopes"]) != "[admin]" {
		t.Fatalf("whoami: %d %s", r.status, r.body)
	}
	id, key := cl.createKey(a, owner, map[string]any{"name": "used", "scopes": []string{"keys:read"}})
	if got := cl.as(owner, "GET", a.url+"/v1/api-keys/"+id, nil).json(t)["last_used_at"]; got != nil {
		t.Fatalf("fresh key has last_used_at %v", got)
	}
	cl.as(key, "GET", a.url+"/v1/whoami", nil)
	deadline := time.Now().Add(3 * time.Second)
	for cl.as(owner, "GET", a.url+"/v1/api-keys/"+id, nil).json(t)["last_used_at"] == nil {
		if time.Now().After(deadline) {
			t.Fatal("last_used_at never written")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKeysCannotEscalate: a narrow key cannot roll a wider one into a new
// secret, and an admin cannot create, roll or revoke an owner's keys (a key
// acts with its user's role).
func TestKeysCannotEscalate(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	ownerKeyID := cl.as(owner, "GET", a.url+"/v1/whoami", nil).json(t)["key_id"].(string)
	_, narrow := cl.createKey(a, owner, map[string]any{"name": "narrow", "scopes": []string{"keys:write"}})
	if r := cl.as(narrow, "POST", a.url+"/v1/api-keys/"+ownerKeyID+"/roll", nil); r.status != 403 || r.errCode(t) != "insufficient_scope" {
		t.Fatalf("narrow key rolls the admin key: %d %s", r.status, r.body)
	}
	u := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "adm@acme.test", "role": "admin"}).json(t)
	_, admin := cl.createKey(a, owner, map[string]any{"name": "adm", "scopes": []string{"admin"}, "user_id": u["id"]})
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/api-keys", map[string]any{"name": "x", "scopes": []string{"admin"}, "user_id": res.UserID}},
		{"POST", "/v1/api-keys/" + ownerKeyID + "/roll", nil},
		{"POST", "/v1/api-keys/" + ownerKeyID + "/revoke", nil},
	} {
		if r := cl.as(admin, tc.method, a.url+tc.path, tc.body); r.status != 403 || r.errCode(t) != "forbidden_role" {
			t.Errorf("admin %s %s: %d %s", tc.method, tc.path, r.status, r.body)
		}
	}
	if r := cl.as(owner, "GET", a.url+"/v1/whoami", nil); r.status != 200 {
		t.Fatalf("the owner's key was touched: %d", r.status)
	}
}
