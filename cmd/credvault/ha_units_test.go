package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReplicasShareIssuerWithoutConfig: two instances on one database,
// with neither CREDVAULT_ISSUER nor CREDVAULT_PUBLIC_URL, accept each
// other's JWT keys, also across a signing-key rotation; the iss is the
// installation's, from the database. Before, each took its own listener
// URL and refused the other's keys as wrong_issuer.
func TestReplicasShareIssuerWithoutConfig(t *testing.T) {
	cl := newCluster(t, nil)
	a, b := cl.start(), cl.start()
	_, owner := cl.bootstrap(a, "acme")
	_, onA := cl.createKey(a, owner, map[string]any{"name": "a", "scopes": []string{"keys:read"}, "format": "jwt"})
	_, onB := cl.createKey(b, owner, map[string]any{"name": "b", "scopes": []string{"keys:read"}, "format": "jwt"})
	iss := jwtClaim(t, onA, "iss")
	if !strings.HasPrefix(iss, "urn:credvault:installation:") || jwtClaim(t, onB, "iss") != iss {
		t.Fatalf("issuers %q and %q, want one urn:credvault:installation:<uuid>", iss, jwtClaim(t, onB, "iss"))
	}
	// Offline verifiers read it from the JWKS.
	for _, inst := range []*instance{a, b} {
		if r := cl.call("GET", inst.url+"/.well-known/jwks.json", nil, nil); r.status != 200 || r.json(t)["issuer"] != iss {
			t.Errorf("%s JWKS: %d %s, want issuer %s", inst.url, r.status, r.body, iss)
		}
	}
	if err := a.s.vault.RotateSigningKey(context.Background(), "credvault-jwt"); err != nil {
		t.Fatal(err)
	}
	_, rotated := cl.createKey(a, owner, map[string]any{"name": "r", "scopes": []string{"keys:read"}, "format": "jwt"})
	for _, inst := range []*instance{a, b} {
		for _, k := range []string{onA, onB, rotated} {
			if r := cl.as(k, "GET", inst.url+"/v1/whoami", nil); r.status != 200 {
				t.Errorf("%s: %d %s", inst.url, r.status, r.body)
			}
		}
	}
	// CREDVAULT_ISSUER still overrides it.
	cl.env["CREDVAULT_ISSUER"] = "https://credvault.acme.test"
	c := cl.start()
	_, onC := cl.createKey(c, owner, map[string]any{"name": "c", "scopes": []string{"keys:read"}, "format": "jwt"})
	if got := jwtClaim(t, onC, "iss"); got != "https://credvault.acme.test" {
		t.Errorf("with CREDVAULT_ISSUER: iss %q", got)
	}
}

func jwtClaim(t *testing.T, token, name string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[name].(string)
	return s
}

// TestConfigHAForms: DATABASE_URL's per-host port form is rewritten into
// the one lib/pq reads (before, it failed at start); REDIS_URL takes
// Sentinel and Cluster forms; CREDVAULT_MAX_STALENESS is checked.
func TestConfigHAForms(t *testing.T) {
	base := map[string]string{}
	load := func(extra map[string]string) (Config, error) {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
		return loadConfig(envOf(env))
	}
	cfg, err := load(map[string]string{"DATABASE_URL": "postgres://u:pw@10.0.0.1:5432,10.0.0.2:5433/cv?target_session_attrs=read-write"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.DatabaseURL.Reveal(); !strings.Contains(got, "@10.0.0.1,10.0.0.2/cv?") || !strings.Contains(got, "port=5432%2C5433") {
		t.Errorf("rewritten DATABASE_URL %s", got)
	}
	// Issue 20: an IPv6 literal in a host list, in both libpq forms.
	for in, hosts := range map[string]string{
		"postgres://u:pw@127.0.0.1:5432,[::1]:5432/cv?target_session_attrs=read-write":      "host=127.0.0.1%2C%3A%3A1",
		"postgres://u:pw@[::1],127.0.0.1/cv?port=5432,5432&target_session_attrs=read-write": "host=%3A%3A1%2C127.0.0.1",
	} {
		cfg, err := load(map[string]string{"DATABASE_URL": in})
		if err != nil {
			t.Errorf("%s: %v", in, err)
		} else if got := cfg.DatabaseURL.Reveal(); !strings.Contains(got, hosts) || !strings.Contains(got, "port=5432%2C5432") {
			t.Errorf("%s rewritten to %s", in, got)
		}
	}
	// Refusals are one line, name the form that works (IPv6 in brackets)
	// and never the password.
	for _, bad := range []string{"postgres://u:pw@h1:5432,h2:5433/cv?port=1,2", "postgres://u:pw@h1,::1/cv", "postgres://u:pw@h1:5432,[::1/cv",
		"postgres://u:pw@::1:5432:5432/cv"} {
		_, err = load(map[string]string{"DATABASE_URL": bad})
		if err == nil || strings.Count(err.Error(), "\n") != 0 || !strings.Contains(err.Error(), "postgres://user@host1:5432,[::1]:5432/db?target_session_attrs=read-write") || strings.Contains(err.Error(), "pw") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	for _, ok := range []string{"redis://127.0.0.1:6379/0", "rediss://h:6380", "redis+sentinel://s1:26379?addr=s2:26379&master_name=mymaster",
		"redis+cluster://n1:6379?addr=n2:6379"} {
		if _, err := load(map[string]string{"REDIS_URL": ok}); err != nil {
			t.Errorf("REDIS_URL %s: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"redis+sentinel://:secretpw@s1:26379": "master_name",
		"memcache://h:1":                      "scheme",
		"redis+cluster://n1:6379?bogus=1":     "redis+cluster://",
		"redis://":                            "no host",
	} {
		_, err := load(map[string]string{"REDIS_URL": bad})
		if err == nil || !strings.HasPrefix(err.Error(), "REDIS_URL: ") || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "secretpw") {
			t.Errorf("REDIS_URL %s: %v, want an error containing %q", bad, err, want)
		}
	}
	if cfg.MaxStaleness.Seconds() != 60 {
		t.Errorf("default CREDVAULT_MAX_STALENESS %s, want 60s", cfg.MaxStaleness)
	}
	if _, err := load(map[string]string{"CREDVAULT_MAX_STALENESS": "0s"}); err == nil || !strings.Contains(err.Error(), "CREDVAULT_MAX_STALENESS") {
		t.Errorf("CREDVAULT_MAX_STALENESS=0s: %v", err)
	}
}

// TestRedisSentinelSharedLimits: REDIS_URL=redis+sentinel://... finds the
// primary through a real Sentinel, and two instances share a key's rate
// limit through it.
func TestRedisSentinelSharedLimits(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	dir := t.TempDir()
	primary, sentinel := freePort(t), freePort(t)
	startRedisProc(t, redisReadyRe, "--bind", "127.0.0.1", "--port", fmt.Sprint(primary), "--save", "", "--appendonly", "no", "--dir", dir)
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("bind 127.0.0.1\nport %d\ndir %s\nsentinel monitor cvprimary 127.0.0.1 %d 1\n", sentinel, dir, primary)), 0o600); err != nil {
		t.Fatal(err)
	}
	startRedisProc(t, sentinelReadyRe, conf, "--sentinel")

	cl := newCluster(t, map[string]string{"REDIS_URL": fmt.Sprintf("redis+sentinel://127.0.0.1:%d?master_name=cvprimary", sentinel)})
	a, b := cl.start(), cl.start()
	if r := cl.call("GET", a.url+"/readyz?strict=1", nil, nil); r.status != 200 || !strings.Contains(string(r.body), `"redis":"ok"`) {
		t.Fatalf("/readyz?strict=1 through Sentinel: %d %s", r.status, r.body)
	}
	_, owner := cl.bootstrap(a, "acme")
	_, key := cl.createKey(a, owner, map[string]any{"name": "lim", "scopes": []string{"keys:read"},
		"rate_limit": map[string]any{"requests": 2, "window_seconds": 60}})
	for i, inst := range []*instance{a, b, a} {
		r := cl.as(key, "GET", inst.url+"/v1/whoami", nil)
		if want := map[bool]int{true: 429, false: 200}[i == 2]; r.status != want {
			t.Fatalf("request %d: %d, want %d (the limit is shared through the Sentinel-managed primary)", i+1, r.status, want)
		}
	}
}

// What redis-server prints once it accepts connections: the server, and a
// Sentinel once it monitors its primary (it listens before it says so).
var (
	redisReadyRe    = regexp.MustCompile(`(Ready to accept connections)`)
	sentinelReadyRe = regexp.MustCompile(`(\+monitor master)`)
)

// startRedisProc runs redis-server until the test ends and returns once it
// printed ready: its own word, which another process holding the port
// (picked free, then closed) cannot fake; if it exits first, the test
// fails at once.
func startRedisProc(t *testing.T, ready *regexp.Regexp, args ...string) {
	t.Helper()
	out := &lineBuffer{}
	cmd := exec.Command("redis-server", args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited, done := make(chan error, 1), make(chan struct{})
	go func() { exited <- cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	out.waitFor(t, ready, exited)
}

// TestProxyServesCachedValueWhileVaultDown: a credential value past its
// cache TTL is still used while Vault cannot decrypt it again (it changes
// only through the key state log, which drops it at once), so a Vault
// blip does not fail proxied calls; a changed credential is not served
// stale. Before, the call answered 503 once the TTL had passed.
func TestProxyServesCachedValueWhileVaultDown(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The scrubber would redact the value itself: answer whether it came.
		fmt.Fprint(w, r.Header.Get("Authorization") == "Bearer v-cached-0001")
	}))
	defer up.Close()
	cl := newCluster(t, map[string]string{"CREDVAULT_SECRET_CACHE_TTL": "1s", "CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"})
	down := cl.vaultSwitch()
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	host := strings.TrimPrefix(up.URL, "http://")
	id := cl.createCredential(a, owner, map[string]any{"name": "up", "placement": "bearer", "value": "v-cached-0001",
		"base_url": up.URL, "allowed_hosts": []string{host}})["id"].(string)
	if r := cl.as(owner, "GET", a.url+"/v1/proxy/"+id+"/x", nil); r.status != 200 || string(r.body) != "true" {
		t.Fatalf("first call: %d %s", r.status, r.body)
	}
	down.Store(true)
	time.Sleep(1500 * time.Millisecond) // past the TTL
	if r := cl.as(owner, "GET", a.url+"/v1/proxy/"+id+"/x", nil); r.status != 200 || string(r.body) != "true" {
		t.Fatalf("call past the TTL with Vault down: %d %s, want 200 from the cached value", r.status, r.body)
	}
	// A change drops the cached value: with Vault down, the call is 503,
	// never the old value.
	if _, err := a.s.db.Exec(`UPDATE credentials SET updated_at = now() WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	a.s.invalidate("cred:" + id)
	if r := cl.as(owner, "GET", a.url+"/v1/proxy/"+id+"/x", nil); r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("call after an invalidation with Vault down: %d %s, want 503 with Retry-After", r.status, r.body)
	}
	down.Store(false)
	if r := cl.as(owner, "GET", a.url+"/v1/proxy/"+id+"/x", nil); r.status != 200 {
		t.Fatalf("call after Vault is back: %d %s", r.status, r.body)
	}
}

func freePort(t *testing.T) int {
	p, err := freeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
