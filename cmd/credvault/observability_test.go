package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"credvault/internal/apikey"
)

// scrape reads /metrics and returns every sample as "name{labels}" -> value.
func scrape(t *testing.T, cl *cluster, a *instance) map[string]float64 {
	t.Helper()
	r := cl.call("GET", a.url+"/metrics", nil, nil)
	if r.status != 200 {
		t.Fatalf("/metrics: %d", r.status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(r.body)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsMoveWithTheirEvents: each new metric changes when its event
// happens, and no label holds a key, a value, a host or a raw path.
func TestMetricsMoveWithTheirEvents(t *testing.T) {
	cl := newCluster(t, privateEgress())
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/fail") {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		fmt.Fprint(w, "ok")
	})
	_, limited := cl.createKey(a, owner, map[string]any{"name": "lim", "scopes": []string{"keys:read"},
		"rate_limit": map[string]any{"requests": 1, "window_seconds": 60}})
	unknown, _ := apikey.Generate("cv", "live")
	const value = "metric-secret-value-77"

	type step struct {
		name   string
		do     func()
		series map[string]float64 // the increase each series must show, at least
	}
	var credID, jwtKey string
	steps := []step{
		// Several times over half a second: the notifications of the keys
		// just created invalidate the cache as they arrive, and a lookup
		// racing one of them is (rightly) not cached.
		{"valid key", func() {
			for range 20 {
				cl.as(owner, "GET", a.url+"/v1/whoami", nil)
				time.Sleep(25 * time.Millisecond)
			}
		}, map[string]float64{
			`credvault_key_verifications_total{code="VALID"}`: 2, `credvault_verifier_key_lookups_total{result="hit"}`: 1}},
		{"missing key", func() { cl.call("GET", a.url+"/v1/whoami", nil, nil) }, map[string]float64{
			`credvault_key_verifications_total{code="MISSING"}`: 1}},
		{"unknown key", func() { cl.as(unknown.Reveal(), "GET", a.url+"/v1/whoami", nil) }, map[string]float64{
			`credvault_key_verifications_total{code="NOT_FOUND"}`: 1, `credvault_verifier_key_lookups_total{result="miss"}`: 1}},
		{"unknown key again", func() { cl.as(unknown.Reveal(), "GET", a.url+"/v1/whoami", nil) }, map[string]float64{
			`credvault_verifier_key_lookups_total{result="negative"}`: 1}},
		{"rate limit allows", func() { cl.as(limited, "GET", a.url+"/v1/whoami", nil) }, map[string]float64{
			`credvault_rate_limit_decisions_total{decision="allowed"}`: 1}},
		{"rate limit refuses", func() { cl.as(limited, "GET", a.url+"/v1/whoami", nil) }, map[string]float64{
			`credvault_rate_limit_decisions_total{decision="limited"}`: 1, `credvault_key_verifications_total{code="RATE_LIMITED"}`: 1}},
		{"forward-auth", func() {
			cl.call("GET", a.url+"/v1/auth/check?scope=admin", map[string]string{"X-API-Key": limited}, nil)
		}, map[string]float64{
			`credvault_key_verifications_total{code="RATE_LIMITED"}`: 1}},
		{"encrypt", func() {
			credID = cl.createCredential(a, owner, map[string]any{"name": "m", "placement": "bearer", "value": value,
				"base_url": up.URL, "allowed_hosts": []string{up.HostP}})["id"].(string)
		}, map[string]float64{`credvault_vault_requests_total{operation="encrypt",outcome="ok"}`: 1,
			`credvault_vault_request_duration_seconds_count{operation="encrypt"}`: 1}},
		{"proxied 2xx", func() { cl.as(owner, "GET", a.url+"/v1/proxy/"+credID+"/ok", nil) }, map[string]float64{
			`credvault_proxy_requests_total{outcome="2xx"}`: 1, `credvault_proxy_request_duration_seconds_count{outcome="2xx"}`: 1,
			`credvault_vault_requests_total{operation="decrypt",outcome="ok"}`: 1}},
		{"proxied 5xx", func() { cl.as(owner, "GET", a.url+"/v1/proxy/"+credID+"/fail", nil) }, map[string]float64{
			`credvault_proxy_requests_total{outcome="5xx"}`: 1}},
		{"JWT key signed by Vault", func() {
			_, jwtKey = cl.createKey(a, owner, map[string]any{"name": "signed", "scopes": []string{"keys:read"}, "format": "jwt"})
		}, map[string]float64{`credvault_vault_requests_total{operation="sign",outcome="ok"}`: 1,
			`credvault_vault_request_duration_seconds_count{operation="sign"}`: 1}},
		{"JWT key altered", func() { cl.as(alterJWT(jwtKey), "GET", a.url+"/v1/whoami", nil) }, map[string]float64{
			`credvault_key_verifications_total{code="BAD_SIGNATURE"}`: 1}},
	}
	for _, st := range steps {
		before := scrape(t, cl, a)
		st.do()
		after := scrape(t, cl, a)
		for series, want := range st.series {
			if got := after[series] - before[series]; got < want {
				t.Errorf("%s: %s moved by %v, want at least %v", st.name, series, got, want)
			}
		}
	}

	// A reconnect of the LISTEN connection is counted.
	before := scrape(t, cl, a)[`credvault_invalidation_listener_reconnects_total`]
	if _, err := a.s.db.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'listen%'`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, func() bool {
		return scrape(t, cl, a)[`credvault_invalidation_listener_reconnects_total`] > before
	})

	// Labels never hold a key, a value, a host or a raw path.
	body := string(cl.call("GET", a.url+"/metrics", nil, nil).body)
	for _, bad := range []string{owner, limited, unknown.Reveal(), value, up.HostP, credID, "127.0.0.1"} {
		if strings.Contains(body, bad) {
			t.Errorf("/metrics holds %q", bad)
		}
	}
}

// logLines returns the JSON log lines whose msg is msg.
func logLines(t *testing.T, a *instance, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(a.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestRefusalLogLines: a refused request writes one info line with the
// reason, the key (id, or prefix…last4), the org and the client address,
// and never the key itself; a flood is rate-limited, and what was left out
// is counted.
func TestRefusalLogLines(t *testing.T) {
	cl := newCluster(t, map[string]string{"CREDVAULT_LOG_LEVEL": "info"})
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	revokedID, revoked := cl.createKey(a, owner, map[string]any{"name": "gone", "scopes": []string{"keys:read"}})
	cl.as(owner, "POST", a.url+"/v1/api-keys/"+revokedID+"/revoke", nil)
	unknown, _ := apikey.Generate("cv", "live")
	_, reader := cl.createKey(a, owner, map[string]any{"name": "r", "scopes": []string{"keys:read"}})

	cl.as(revoked, "GET", a.url+"/v1/whoami", nil)
	cl.as(unknown.Reveal(), "GET", a.url+"/v1/whoami", nil)
	cl.as(reader, "POST", a.url+"/v1/users", map[string]any{"email": "x@acme.test", "role": "member"})
	lines := logLines(t, a, "request refused")
	want := []struct{ reason, field, value string }{
		{"revoked_api_key", "key_id", revokedID},
		{"unknown_api_key", "key", "cv_live_…" + unknown.Reveal()[len(unknown.Reveal())-4:]},
		{"insufficient_scope", "org_id", res.OrgID},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d refusal lines, want %d:\n%s", len(lines), len(want), a.logs)
	}
	for i, w := range want {
		l := lines[i]
		if l["level"] != "INFO" || l["reason"] != w.reason || l[w.field] != w.value || l["client_ip"] != "127.0.0.1" || l["route"] == nil {
			t.Errorf("line %d: %v, want reason %s and %s=%s from 127.0.0.1", i, l, w.reason, w.field, w.value)
		}
	}
	if lines[0]["org_id"] != res.OrgID {
		t.Errorf("revoked key's line lacks its org: %v", lines[0])
	}
	for _, k := range []string{revoked, unknown.Reveal(), reader, owner} {
		if strings.Contains(a.logs.String(), k) || strings.Contains(a.logs.String(), k[8:30]) {
			t.Fatalf("the log holds a key")
		}
	}

	// A flood: far fewer lines than requests, the rest counted.
	const flood = 300
	start := time.Now()
	for range flood {
		cl.as(unknown.Reveal(), "GET", a.url+"/v1/whoami", nil)
	}
	elapsed := time.Since(start)
	n := len(logLines(t, a, "request refused")) - len(want)
	// At most 10 lines in each clock second the flood touched.
	if limit := 10 * (int(elapsed.Seconds()) + 2); n > limit || n >= flood {
		t.Fatalf("%d lines for %d refusals in %s, want at most %d", n, flood, elapsed, limit)
	}
	if got := scrape(t, cl, a)[`credvault_refusal_log_lines_suppressed_total`]; int(got) != flood-n {
		t.Errorf("suppressed lines counted %v, want %d", got, flood-n)
	}
	time.Sleep(1100 * time.Millisecond) // into the next second
	cl.as(unknown.Reveal(), "GET", a.url+"/v1/whoami", nil)
	// Every line left out is reported by a later line ("suppressed"): the
	// flood may cross a clock second, so which line says it varies.
	reported := 0.0
	for _, l := range logLines(t, a, "request refused") {
		if n, ok := l["suppressed"].(float64); ok {
			reported += n
		}
	}
	if int(reported) != flood-n || reported == 0 {
		t.Errorf("lines report %v suppressed lines, want %d", reported, flood-n)
	}
	t.Logf("%d refusals in %s: %d lines", flood, elapsed, n)
}

// TestReadyzChecksRedis: with REDIS_URL, /readyz names Redis; when it
// does not answer, /readyz stays 200 listing it in "degraded" (limits fall
// back to per instance) and /readyz?strict=1 answers 503 naming it.
func TestReadyzChecksRedis(t *testing.T) {
	redisURL := os.Getenv("REDIS_URL")
	if redisURL == "" {
		redisURL = "redis://127.0.0.1:6379/0"
	}
	cl := newCluster(t, map[string]string{"REDIS_URL": redisURL})
	a := cl.start()
	r := cl.call("GET", a.url+"/readyz", nil, nil)
	if r.status != 200 || r.json(t)["checks"].(map[string]any)["redis"] != "ok" {
		t.Fatalf("/readyz with Redis: %d %s", r.status, r.body)
	}
	dead := newCluster(t, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"})
	b := dead.start()
	r = dead.call("GET", b.url+"/readyz", nil, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"degraded":["redis"]`) {
		t.Fatalf("/readyz with Redis down: %d %s", r.status, r.body)
	}
	r = dead.call("GET", b.url+"/readyz?strict=1", nil, nil)
	if r.status != 503 || !strings.Contains(r.errMessage(t), "redis unavailable") {
		t.Fatalf("/readyz?strict=1 with Redis down: %d %s", r.status, r.body)
	}
	// Without REDIS_URL there is no redis check.
	plain := newCluster(t, nil)
	c := plain.start()
	if r := plain.call("GET", c.url+"/readyz", nil, nil); strings.Contains(string(r.body), "redis") {
		t.Fatalf("/readyz without REDIS_URL: %s", r.body)
	}
}

// TestRedisLogsThroughSlog: the Redis client's messages become JSON lines.
func TestRedisLogsThroughSlog(t *testing.T) {
	var buf lineBuffer
	redisLogger{slog.New(slog.NewJSONHandler(&buf, nil))}.Printf(context.Background(), "redis: failed to close connection: %v", "broken pipe")
	var m map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &m); err != nil || m["msg"] != "failed to close connection: broken pipe" || m["component"] != "redis" || m["level"] != "WARN" {
		t.Fatalf("got %q (%v)", buf.String(), err)
	}
}

// TestDebugRequestLinesNameTheCaller: at debug, a request line carries the
// key id, the org and the client address.
func TestDebugRequestLinesNameTheCaller(t *testing.T) {
	cl := newCluster(t, nil) // the harness logs at debug
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	cl.as(owner, "GET", a.url+"/v1/whoami", nil)
	for _, l := range logLines(t, a, "http request") {
		if l["route"] == "/v1/whoami" {
			if l["org_id"] != res.OrgID || l["key_id"] == nil || l["key_id"] == "" || l["client_ip"] != "127.0.0.1" {
				t.Fatalf("request line: %v", l)
			}
			return
		}
	}
	t.Fatalf("no request line for /v1/whoami:\n%s", a.logs)
}

// alterJWT returns token with its payload changed (one more claim), so
// that its signature no longer verifies.
func alterJWT(token string) string {
	parts := strings.Split(token, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	altered := strings.Replace(string(payload), "{", `{"x":1,`, 1)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(altered)) + "." + parts[2]
}
