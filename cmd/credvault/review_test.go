package main

import (
	"strings"
	"testing"
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
}
