package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUsersAndRoles(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	mk := func(key, email, role string) (int, map[string]any) {
		r := cl.as(key, "POST", a.url+"/v1/users", map[string]any{"email": email, "name": "N", "role": role})
		return r.status, r.json(t)
	}
	st, admin := mk(owner, "admin@acme.test", "admin")
	if st != 201 {
		t.Fatalf("owner creates admin: %d", st)
	}
	adminID := admin["id"].(string)
	_, adminKey := cl.createKey(a, owner, map[string]any{"name": "adm", "scopes": []string{"admin"}, "user_id": adminID})

	if st, _ := mk(adminKey, "m1@acme.test", "member"); st != 201 {
		t.Fatalf("admin creates member: %d", st)
	}
	if st, body := mk(adminKey, "o2@acme.test", "owner"); st != 403 || !strings.Contains(body["error"].(map[string]any)["message"].(string), "only owners") {
		t.Fatalf("admin creates owner: %d %v", st, body)
	}
	if st, _ := mk(owner, "ADMIN@acme.test", "member"); st != 409 {
		t.Fatalf("duplicate email (other case): %d, want 409", st)
	}
	// On-premises addresses (a single-label domain) are addresses, by the
	// rule api/openapi.yaml states as a pattern.
	if st, body := mk(owner, "bob@intranet", "member"); st != 201 || body["email"] != "bob@intranet" {
		t.Fatalf("bob@intranet: %d %v", st, body)
	}
	// ... and the list showing them is valid by api/openapi.yaml (checked
	// by kin-openapi when the test ends).
	if r := cl.as(owner, "GET", recordForSpec(t, a.url)+"/v1/users", nil); r.status != 200 || !strings.Contains(string(r.body), `"bob@intranet"`) {
		t.Fatalf("GET /v1/users: %d %s", r.status, r.body)
	}
	for _, bad := range []map[string]any{
		{"email": "not an email", "role": "member"},
		{"email": "x@[10.0.0.1]", "role": "member"},
		{"email": "x@b_c", "role": "member"},
		{"email": "\"x y\"@acme.test", "role": "member"},
		{"email": "ünï@acme.test", "role": "member"},
		{"email": strings.Repeat("x", 312) + "@acme.test", "role": "member"},
		{"email": "x@acme.test", "role": "boss"},
		{"email": "x@acme.test"},
		{"role": "member"},
		{"email": "x@acme.test", "role": "member", "admin": true},
	} {
		r := cl.as(owner, "POST", a.url+"/v1/users", bad)
		if r.status != 400 {
			t.Errorf("bad user %v: %d", bad, r.status)
		}
		if badEmail := bad["role"] == "member" && bad["admin"] == nil; badEmail && !strings.Contains(string(r.body), `field \"email\"`) {
			t.Errorf("bad email %v: %s does not name the field", bad, r.body)
		}
	}
	var users int
	if err := a.s.db.Get(&users, `SELECT count(*) FROM users WHERE org_id = $1`, res.OrgID); err != nil || users != 4 {
		t.Fatalf("users in org = %d (%v), want 4 (bad input wrote nothing)", users, err)
	}

	// The last owner can be neither demoted nor deleted.
	r := cl.as(owner, "PATCH", a.url+"/v1/users/"+res.UserID, map[string]any{"role": "admin"})
	if r.status != 409 {
		t.Fatalf("demote last owner: %d %s", r.status, r.body)
	}
	if r := cl.as(adminKey, "DELETE", a.url+"/v1/users/"+res.UserID, nil); r.status != 403 {
		t.Fatalf("admin deletes owner: %d", r.status)
	}
	if r := cl.as(owner, "DELETE", a.url+"/v1/users/"+res.UserID, nil); r.status != 400 {
		t.Fatalf("owner deletes self: %d", r.status)
	}

	// A role change reaches the key at once: the admin demoted to member
	// can no longer manage users.
	if r := cl.as(owner, "PATCH", a.url+"/v1/users/"+adminID, map[string]any{"role": "member"}); r.status != 200 {
		t.Fatalf("demote admin: %d %s", r.status, r.body)
	}
	if st, _ := mk(adminKey, "m2@acme.test", "member"); st != 403 {
		t.Fatalf("demoted admin still manages users: %d", st)
	}
	// Deleting a user ends their keys.
	if r := cl.as(owner, "DELETE", a.url+"/v1/users/"+adminID, nil); r.status != 204 {
		t.Fatalf("delete user: %d %s", r.status, r.body)
	}
	if r := cl.as(adminKey, "GET", a.url+"/v1/whoami", nil); r.status != 401 {
		t.Fatalf("deleted user's key: %d", r.status)
	}
	if r := cl.as(owner, "GET", a.url+"/v1/users/"+adminID, nil); r.status != 404 {
		t.Fatalf("deleted user: %d", r.status)
	}
	list := cl.as(owner, "GET", a.url+"/v1/users?limit=1", nil).json(t)
	if len(list["data"].([]any)) != 1 || list["next_cursor"] == nil {
		t.Fatalf("page of 1: %v", list)
	}
	next := cl.as(owner, "GET", a.url+"/v1/users?limit=1&cursor="+list["next_cursor"].(string), nil).json(t)
	if len(next["data"].([]any)) != 1 {
		t.Fatalf("second page: %v", next)
	}
	if r := cl.as(owner, "GET", a.url+"/v1/users?cursor=abc", nil); r.status != 400 {
		t.Fatalf("bad cursor: %d", r.status)
	}
	var actions []string
	_ = a.s.db.Select(&actions, `SELECT action FROM audit_events WHERE org_id = $1 ORDER BY id`, res.OrgID)
	for _, want := range []string{"org.bootstrap", "user.create", "user.update", "user.delete", "api_key.create"} {
		if !strings.Contains(strings.Join(actions, ","), want) {
			t.Errorf("no %s audit event in %v", want, actions)
		}
	}
}

func TestVerifyEndpointAndForwardAuth(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	_, other := cl.bootstrap(a, "globex")
	_, gateway := cl.createKey(a, owner, map[string]any{"name": "gw", "kind": "service", "scopes": []string{"keys:verify"}})
	_, client := cl.createKey(a, owner, map[string]any{"name": "client", "scopes": []string{"credentials:use"},
		"rate_limit": map[string]any{"requests": 3, "window_seconds": 60}})
	revID, revoked := cl.createKey(a, owner, map[string]any{"name": "rev", "scopes": []string{"keys:read"}})
	cl.as(owner, "POST", a.url+"/v1/api-keys/"+revID+"/revoke", nil)

	pub := cl.as(owner, "POST", a.url+"/v1/endpoints", map[string]any{"name": "status", "auth_mode": "none"}).json(t)
	priv := cl.as(owner, "POST", a.url+"/v1/endpoints", map[string]any{"name": "orders", "auth_mode": "private", "required_scopes": []string{"credentials:use"}}).json(t)
	if pub["id"] == nil || priv["id"] == nil {
		t.Fatalf("endpoints: %v %v", pub, priv)
	}
	verify := func(caller string, body map[string]any) map[string]any {
		h := map[string]string{}
		if caller != "" {
			h["X-API-Key"] = caller
		}
		r := cl.call("POST", a.url+"/v1/api-keys/verify", h, body)
		if r.status != 200 {
			t.Fatalf("verify %v: %d %s", body, r.status, r.body)
		}
		return r.json(t)
	}
	cases := []struct {
		caller string
		body   map[string]any
		code   string
	}{
		{gateway, map[string]any{"key": client}, "VALID"},
		{gateway, map[string]any{"key": client, "endpoint": "orders"}, "VALID"},
		{gateway, map[string]any{}, "MISSING"},
		{gateway, map[string]any{"key": "cv_live_nope"}, "MALFORMED"},
		{gateway, map[string]any{"key": other}, "NOT_FOUND"}, // another org's key
		{gateway, map[string]any{"key": revoked}, "REVOKED"},
		{gateway, map[string]any{"key": client, "required_scopes": []string{"keys:write"}}, "INSUFFICIENT_SCOPE"},
		{gateway, map[string]any{"key": gateway, "endpoint": "orders"}, "INSUFFICIENT_SCOPE"},
		{"", map[string]any{"endpoint": pub["id"]}, "PUBLIC_ENDPOINT"},
		{gateway, map[string]any{"endpoint": "status"}, "PUBLIC_ENDPOINT"},
	}
	for _, tc := range cases {
		got := verify(tc.caller, tc.body)
		if got["code"] != tc.code || got["valid"] != (tc.code == "VALID" || tc.code == "PUBLIC_ENDPOINT") {
			t.Errorf("verify %v: %v, want %s", tc.body, got, tc.code)
		}
	}
	// The client's limit: 3 per minute; two uses above, one more, then limited.
	verify(gateway, map[string]any{"key": client})
	got := verify(gateway, map[string]any{"key": client})
	if got["code"] != "RATE_LIMITED" || got["ratelimit"].(map[string]any)["remaining"].(float64) != 0 {
		t.Errorf("over the limit: %v", got)
	}
	if r := cl.as(client, "POST", a.url+"/v1/api-keys/verify", map[string]any{"key": client}); r.status != 429 && r.status != 403 {
		t.Errorf("caller without keys:verify: %d", r.status)
	}
	if r := cl.call("POST", a.url+"/v1/api-keys/verify", nil, map[string]any{"key": client}); r.status != 401 {
		t.Errorf("verify without caller key, private case: %d", r.status)
	}
	if r := cl.call("POST", a.url+"/v1/api-keys/verify", nil, map[string]any{"endpoint": priv["id"]}); r.status != 401 {
		t.Errorf("verify without caller key, private endpoint: %d", r.status)
	}
	if r := cl.as(gateway, "POST", a.url+"/v1/api-keys/verify", map[string]any{"key": client, "endpoint": "nope"}); r.status != 400 {
		t.Errorf("unknown endpoint: %d", r.status)
	}

	// Forward-auth with the owner's key (no limit).
	r := cl.call("GET", a.url+"/v1/auth/check?scope=keys:read", map[string]string{"Authorization": "Bearer " + owner}, nil)
	if r.status != 200 || r.header.Get("X-Credvault-Org-Id") == "" || r.header.Get("X-Credvault-Key-Id") == "" || r.header.Get("X-Credvault-Scopes") != "admin" {
		t.Fatalf("auth/check: %d %v", r.status, r.header)
	}
	for _, tc := range []struct {
		path    string
		headers map[string]string
		status  int
	}{
		{"/v1/auth/check", nil, 401},
		{"/v1/auth/check?scope=keys:write", map[string]string{"X-API-Key": gateway}, 403},
		{"/v1/auth/check?endpoint=" + pub["id"].(string), nil, 200},
		{"/v1/auth/check?endpoint=" + priv["id"].(string), map[string]string{"X-API-Key": owner}, 200},
		{"/v1/auth/check?endpoint=" + priv["id"].(string), map[string]string{"X-API-Key": other}, 401},
		{"/v1/auth/check?endpoint=orders", map[string]string{"X-API-Key": owner}, 200},
		{"/v1/auth/check?endpoint=orders", map[string]string{"X-API-Key": gateway}, 403},
		{"/v1/auth/check?endpoint=orders", map[string]string{"X-API-Key": other}, 400},
		{"/v1/auth/check?api_key=" + owner, nil, 401},
		{"/v1/auth/check?scope=bogus", map[string]string{"X-API-Key": owner}, 400},
	} {
		if r := cl.call("GET", a.url+tc.path, tc.headers, nil); r.status != tc.status {
			t.Errorf("%s: %d, want %d: %s", tc.path, r.status, tc.status, r.body)
		}
	}

	// Endpoint management: members cannot, duplicates conflict, bad modes refused.
	if r := cl.as(owner, "POST", a.url+"/v1/endpoints", map[string]any{"name": "status", "auth_mode": "none"}); r.status != 409 {
		t.Errorf("duplicate endpoint: %d", r.status)
	}
	if r := cl.as(owner, "POST", a.url+"/v1/endpoints", map[string]any{"name": "x", "auth_mode": "public"}); r.status != 400 {
		t.Errorf("bad auth_mode: %d", r.status)
	}
	if r := cl.as(owner, "PATCH", a.url+"/v1/endpoints/"+pub["id"].(string), map[string]any{"auth_mode": "private"}); r.status != 200 {
		t.Errorf("patch endpoint: %d", r.status)
	}
	if r := cl.call("GET", a.url+"/v1/auth/check?endpoint="+pub["id"].(string), nil, nil); r.status != 401 {
		t.Errorf("endpoint made private still public: %d", r.status)
	}
	if r := cl.as(other, "DELETE", a.url+"/v1/endpoints/"+pub["id"].(string), nil); r.status != 404 {
		t.Errorf("other org deletes endpoint: %d", r.status)
	}
	if r := cl.as(owner, "DELETE", a.url+"/v1/endpoints/"+pub["id"].(string), nil); r.status != 204 {
		t.Errorf("delete endpoint: %d", r.status)
	}
	if list := cl.as(owner, "GET", a.url+"/v1/endpoints", nil).json(t); len(list["data"].([]any)) != 1 {
		t.Errorf("endpoints after delete: %v", list)
	}
}

func TestBootstrapCommand(t *testing.T) {
	cl := newCluster(t, nil)
	var out bytes.Buffer
	env := envOf(cl.env)
	if err := run(context.Background(), []string{"credvault", "bootstrap", "--org", "acme", "--email", "ada@acme.test"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var res map[string]string
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res["org_id"] == "" || res["user_id"] == "" || !strings.HasPrefix(res["api_key"], "cv_live_") {
		t.Fatalf("bootstrap output %q (%v)", out.String(), err)
	}
	a := cl.start()
	if r := cl.as(res["api_key"], "GET", a.url+"/v1/whoami", nil); r.status != 200 || r.json(t)["org_id"] != res["org_id"] {
		t.Fatalf("bootstrap key: %d %s", r.status, r.body)
	}
	err := run(context.Background(), []string{"credvault", "bootstrap", "--org", "ACME", "--email", "b@acme.test"}, env, io.Discard, io.Discard)
	if err == nil || !strings.Contains(cliMessage(err), "already exists") {
		t.Fatalf("second org with the same name: %v", err)
	}
	for _, args := range [][]string{{"--org", "x"}, {"--email", "a@b.c"}, {"--org", "x", "--email", "nope"}} {
		if err := run(context.Background(), append([]string{"credvault", "bootstrap"}, args...), env, io.Discard, io.Discard); err == nil {
			t.Errorf("bootstrap %v accepted", args)
		}
	}
}

// TestDevPrintsAdminKeyOnce: the first `credvault dev` prints the owner key
// and writes admin.key (0600); the second prints only the file's place.
func TestDevPrintsAdminKeyOnce(t *testing.T) {
	if os.Getenv("VAULT_ADDR") != "" {
		t.Skip("exercises the built-in dev transit server")
	}
	cl := newCluster(t, nil)
	dataDir := t.TempDir()
	env := map[string]string{"CREDVAULT_ADDR": "127.0.0.1:0", "DATABASE_URL": cl.dbURL, "CREDVAULT_DATA_DIR": dataDir}
	s := startRun(t, env, "dev")
	keyFile := filepath.Join(dataDir, "admin.key")
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(b))
	if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.key mode %v", fi.Mode().Perm())
	}
	if !strings.Contains(s.stdout.String(), key) {
		t.Fatalf("first start does not print the key:\n%s", s.stdout.String())
	}
	if strings.Contains(s.stderr.String(), key) {
		t.Fatalf("the key is in the logs")
	}
	if r := cl.as(key, "GET", s.url+"/v1/whoami", nil); r.status != 200 {
		t.Fatalf("admin key: %d", r.status)
	}
	_ = s.stop()
	s2 := startRun(t, env, "dev")
	if strings.Contains(s2.stdout.String(), key) || !strings.Contains(s2.stdout.String(), keyFile) {
		t.Fatalf("second start:\n%s", s2.stdout.String())
	}
	if r := cl.as(key, "GET", s2.url+"/v1/whoami", nil); r.status != 200 {
		t.Fatalf("admin key after restart: %d", r.status)
	}
}

// TestForwardAuthByNameWithoutAGoodKey: naming an endpoint by name with a
// missing or bad key is the key's problem (401), not an unknown endpoint.
func TestForwardAuthByNameWithoutAGoodKey(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	cl.as(owner, "POST", a.url+"/v1/endpoints", map[string]any{"name": "orders", "auth_mode": "private"})
	for _, h := range []map[string]string{nil, {"X-API-Key": "cv_live_garbage"}} {
		if r := cl.call("GET", a.url+"/v1/auth/check?endpoint=orders", h, nil); r.status != 401 {
			t.Errorf("%v: %d %s", h, r.status, r.body)
		}
	}
}
