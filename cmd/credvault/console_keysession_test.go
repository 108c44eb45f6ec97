package main

import (
	"context"
	"net/url"
	"strings"
	"testing"
)

// TestConsoleKeySessionNeverOutlivesItsKey: a console session opened with
// an API key does no more than the key: every console request spends the
// key's rate limit (429 past it), and a session opened with a JWT key ends
// when the key's signing key version is retired, as the key itself is
// refused.
func TestConsoleKeySessionNeverOutlivesItsKey(t *testing.T) {
	cl, inst, ownerKey := consoleCluster(t)
	signIn := func(key string) *browserish {
		t.Helper()
		b := newBrowserish(t, inst.url)
		tok := b.csrf("/sign-in")
		if p := b.post("/sign-in/key", url.Values{"csrf": {tok}, "api_key": {key}}, nil); p.status != 303 {
			t.Fatalf("sign in with a key: %d %s", p.status, p.body)
		}
		return b
	}

	// A key limited to 4 requests a minute: signing in spends one; the
	// console pages spend the rest, then 429.
	_, limited := cl.createKey(inst, ownerKey, map[string]any{"name": "limited", "scopes": []string{"credentials:read", "keys:read"},
		"rate_limit": map[string]any{"requests": 4, "window_seconds": 60}})
	b := signIn(limited)
	statuses := []int{}
	for range 5 {
		statuses = append(statuses, b.get("/credentials").status)
	}
	if statuses[0] != 200 || statuses[len(statuses)-1] != 429 {
		t.Fatalf("console pages with a 4/min key: %v, want 200 first and 429 once the limit is spent", statuses)
	}

	// A JWT key's session ends when its signing version is retired.
	_, jwtKey := cl.createKey(inst, ownerKey, map[string]any{"name": "signed", "scopes": []string{"credentials:read"}, "format": "jwt"})
	jb := signIn(jwtKey)
	if p := jb.get("/credentials"); p.status != 200 {
		t.Fatalf("JWT key session: %d", p.status)
	}
	ctx := context.Background()
	if err := inst.s.vault.RotateSigningKey(ctx, "credvault-jwt"); err != nil {
		t.Fatal(err)
	}
	if err := inst.s.vault.SetSigningMinVersion(ctx, "credvault-jwt", 2); err != nil {
		t.Fatal(err)
	}
	if err := inst.s.signing.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if r := cl.as(jwtKey, "GET", inst.url+"/v1/whoami", nil); r.status != 401 {
		t.Fatalf("the retired JWT key itself: %d", r.status)
	}
	if p := jb.get("/credentials"); p.status != 303 && p.status != 302 {
		t.Fatalf("console session of a retired JWT key: %d, want a redirect to sign-in", p.status)
	}
}

// TestConsoleKeySessionPausedWhileDisabled: a console session opened with
// an API key is refused (403, saying why) while the key or its
// integration is disabled, and works again once enabled; a disabled key
// cannot sign in.
func TestConsoleKeySessionPausedWhileDisabled(t *testing.T) {
	t.Parallel() // with the other integration tests, after the package's serial ones: their waits overlap
	cl, inst, ownerKey := consoleCluster(t)
	iid := cl.as(ownerKey, "POST", inst.url+"/v1/integrations", map[string]any{"name": "ops"}).json(t)["id"].(string)
	keyID, key := cl.createKey(inst, ownerKey, map[string]any{"name": "mine", "scopes": []string{"credentials:read", "keys:read"}, "integration_id": iid})
	b := newBrowserish(t, inst.url)
	tok := b.csrf("/sign-in")
	if p := b.post("/sign-in/key", url.Values{"csrf": {tok}, "api_key": {key}}, nil); p.status != 303 {
		t.Fatalf("sign in: %d %s", p.status, p.body)
	}
	if p := b.get("/api-keys"); p.status != 200 {
		t.Fatalf("before: %d", p.status)
	}
	for _, step := range []struct {
		method, path string
		body         any
		status       int
		says         string
	}{
		{"PATCH", "/v1/integrations/" + iid, map[string]any{"enabled": false}, 403, "integration is disabled"},
		{"PATCH", "/v1/integrations/" + iid, map[string]any{"enabled": true}, 200, ""},
		{"POST", "/v1/api-keys/" + keyID + "/disable", nil, 403, "API key is disabled"},
		{"POST", "/v1/api-keys/" + keyID + "/enable", nil, 200, ""},
	} {
		if r := cl.as(ownerKey, step.method, inst.url+step.path, step.body); r.status != 200 {
			t.Fatalf("%s %s: %d", step.method, step.path, r.status)
		}
		if p := b.get("/api-keys"); p.status != step.status || !strings.Contains(p.body, step.says) {
			t.Fatalf("after %s %s %v: console %d, want %d saying %q", step.method, step.path, step.body, p.status, step.status, step.says)
		}
	}
	cl.as(ownerKey, "POST", inst.url+"/v1/api-keys/"+keyID+"/disable", nil)
	nb := newBrowserish(t, inst.url)
	tok = nb.csrf("/sign-in")
	if p := nb.post("/sign-in/key", url.Values{"csrf": {tok}, "api_key": {key}}, nil); p.status != 403 || !strings.Contains(p.body, "disabled") {
		t.Fatalf("sign in with a disabled key: %d", p.status)
	}
}
