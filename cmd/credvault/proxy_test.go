package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// upstream is a loopback HTTP server that records what it receives and
// counts every connection it accepts.
type upstream struct {
	URL     string
	HostP   string // "127.0.0.1:port"
	Port    string
	conns   atomic.Int64
	mu      sync.Mutex
	got     []*http.Request
	bodies  []string
	handler http.HandlerFunc
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func newUpstream(t testing.TB, h http.HandlerFunc) *upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{handler: h}
	u.HostP = ln.Addr().String()
	_, u.Port, _ = net.SplitHostPort(u.HostP)
	u.URL = "http://" + u.HostP
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.got = append(u.got, r)
		u.bodies = append(u.bodies, string(b))
		u.mu.Unlock()
		if u.handler != nil {
			u.handler(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery})
	})}
	go func() { _ = srv.Serve(countingListener{ln, &u.conns}) }()
	t.Cleanup(func() { _ = srv.Close() })
	return u
}

func (u *upstream) requests() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.got...)
}

func (u *upstream) last(t testing.TB) *http.Request {
	t.Helper()
	r := u.requests()
	if len(r) == 0 {
		t.Fatal("upstream received nothing")
	}
	return r[len(r)-1]
}

func privateEgress() map[string]string {
	return map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"}
}

func TestProxyPlacements(t *testing.T) {
	cl := newCluster(t, privateEgress())
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	up := newUpstream(t, nil)
	base := map[string]any{"base_url": up.URL + "/base", "allowed_hosts": []string{up.HostP}}
	mk := func(extra map[string]any) string {
		body := map[string]any{"name": "c", "value": "s3cr3t-value-0042"}
		for k, v := range base {
			body[k] = v
		}
		for k, v := range extra {
			body[k] = v
		}
		return cl.createCredential(a, owner, body)["id"].(string)
	}
	header := mk(map[string]any{"placement": "header", "param_name": "X-Api-Token", "value_prefix": "Token "})
	query := mk(map[string]any{"placement": "query", "param_name": "api_key"})
	bearer := mk(map[string]any{"placement": "bearer"})

	attack := map[string]string{
		"X-API-Key": owner, "X-Api-Token": "attacker", "x-api-token": "attacker2",
		"X-Credvault-Workflow-Id": "wf-1", "X-Custom": "kept", "Connection": "close",
	}
	r := cl.call("POST", a.url+"/v1/proxy/"+header+"/items/42?x=1&y=two", attack, map[string]string{"k": "v"})
	if r.status != 200 {
		t.Fatalf("header proxy: %d %s", r.status, r.body)
	}
	got := up.last(t)
	if vs := got.Header.Values("X-Api-Token"); len(vs) != 1 || vs[0] != "Token s3cr3t-value-0042" {
		t.Fatalf("header placement arrived as %q", vs)
	}
	if got.Method != "POST" || got.URL.Path != "/base/items/42" || got.URL.RawQuery != "x=1&y=two" || got.Header.Get("X-Custom") != "kept" {
		t.Fatalf("forwarded %s %s?%s custom=%q", got.Method, got.URL.Path, got.URL.RawQuery, got.Header.Get("X-Custom"))
	}
	if got.Header.Get("X-Api-Key") != "" || got.Header.Get("X-Credvault-Workflow-Id") != "" {
		t.Fatalf("credvault headers forwarded: %v", got.Header)
	}
	if b := up.bodies[len(up.bodies)-1]; b != `{"k":"v"}` {
		t.Fatalf("body %q", b)
	}

	r = cl.call("GET", a.url+"/v1/proxy/"+query+"/q?a=1&api_key=attacker&b=2&a=3", map[string]string{"X-API-Key": owner}, nil)
	if r.status != 200 {
		t.Fatalf("query proxy: %d %s", r.status, r.body)
	}
	q := up.last(t).URL.Query()
	if fmt.Sprint(q["a"]) != "[1 3]" || q.Get("b") != "2" || fmt.Sprint(q["api_key"]) != "[s3cr3t-value-0042]" {
		t.Fatalf("query placement: %v", q)
	}

	// The caller authenticates with Authorization: Bearer <credvault key>;
	// the upstream gets the credential's bearer token instead.
	r = cl.call("GET", a.url+"/v1/proxy/"+bearer+"/b", map[string]string{"Authorization": "Bearer " + owner}, nil)
	if r.status != 200 {
		t.Fatalf("bearer proxy: %d %s", r.status, r.body)
	}
	if vs := up.last(t).Header.Values("Authorization"); len(vs) != 1 || vs[0] != "Bearer s3cr3t-value-0042" {
		t.Fatalf("bearer placement arrived as %q", vs)
	}
	// A caller's own key in the proxied query string is still refused.
	if r := cl.call("GET", a.url+"/v1/proxy/"+query+"/q?token="+owner, map[string]string{"X-API-Key": owner}, nil); r.status != 401 {
		t.Fatalf("credvault key in a proxied query: %d", r.status)
	}
	// An upstream parameter named like a key is the upstream's business.
	if r := cl.call("GET", a.url+"/v1/proxy/"+header+"/q?key=abc", map[string]string{"X-API-Key": owner}, nil); r.status != 200 {
		t.Fatalf("?key= on a proxied call: %d %s", r.status, r.body)
	}
}

// TestProxyScrubsEchoedValues: an upstream that echoes the key back, raw,
// URL-encoded and base64, in headers and body.
func TestProxyScrubsEchoedValues(t *testing.T) {
	const value = "sk/live+echo=me&42"
	cl := newCluster(t, privateEgress())
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		v := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("X-Echo", v)
		w.Header().Set("X-Echo-B64", base64.StdEncoding.EncodeToString([]byte(v)))
		fmt.Fprintf(w, "raw=%s\nquery=%s\npath=%s\nb64=%s\nb64url=%s\n", v, url.QueryEscape(v), url.PathEscape(v),
			base64.StdEncoding.EncodeToString([]byte(v)), base64.URLEncoding.EncodeToString([]byte(v)))
	})
	id := cl.createCredential(a, owner, map[string]any{"name": "echo", "placement": "bearer", "value": value,
		"base_url": up.URL, "allowed_hosts": []string{up.HostP}})["id"].(string)
	r := cl.as(owner, "GET", a.url+"/v1/proxy/"+id+"/echo", nil)
	if r.status != 200 || !strings.Contains(string(r.body), "raw=[REDACTED]") {
		t.Fatalf("echo: %d %s", r.status, r.body)
	}
	all := string(r.body) + fmt.Sprint(r.header)
	for _, enc := range []string{value, url.QueryEscape(value), url.PathEscape(value),
		base64.StdEncoding.EncodeToString([]byte(value)), base64.URLEncoding.EncodeToString([]byte(value))} {
		if strings.Contains(all, enc) {
			t.Errorf("response holds %q", enc)
		}
	}
}

// TestProxyRefusesAmbiguousPaths is issue 10 case 5: paths that Tomcat,
// IIS or a double-decoding upstream would resolve outside base_url's path
// are a 400 invalid_path, and nothing reaches the upstream.
func TestProxyRefusesAmbiguousPaths(t *testing.T) {
	cl := newCluster(t, privateEgress())
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	up := newUpstream(t, nil)
	id := cl.createCredential(a, owner, map[string]any{"name": "api", "placement": "bearer", "value": "v-123456789",
		"base_url": up.URL + "/api", "allowed_hosts": []string{up.HostP}})["id"].(string)
	for _, p := range []string{"/..;/zz", "/..%5czz", "/..%5Czz", "/..%252fzz", "/%2e%2e/zz", "/x/%2E%2E%2Fzz", "/..%3b/zz", "/a\\b", "/..%20/zz", "/x%00"} {
		r := cl.as(owner, "GET", a.url+"/v1/proxy/"+id+p, nil)
		if r.status != 400 || r.errCode(t) != "invalid_path" {
			t.Errorf("path %q: %d %s", p, r.status, r.body)
		}
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("the upstream received %d requests", n)
	}
	// Ordinary escapes still pass, as sent.
	r := cl.as(owner, "GET", a.url+"/v1/proxy/"+id+"/files/a%20b;v=1/100%25.txt", nil)
	if r.status != 200 || up.last(t).URL.EscapedPath() != "/api/files/a%20b;v=1/100%25.txt" {
		t.Fatalf("plain path: %d %s, upstream got %q", r.status, r.body, up.last(t).URL.EscapedPath())
	}
}

func TestProxyEgressPolicy(t *testing.T) {
	up := newUpstream(t, nil)
	other := newUpstream(t, nil)

	t.Run("host outside allowed_hosts", func(t *testing.T) {
		cl := newCluster(t, privateEgress())
		a := cl.start()
		_, owner := cl.bootstrap(a, "acme")
		// No base_url: the caller names the target, which must be allowed.
		id := cl.createCredential(a, owner, map[string]any{"name": "t", "placement": "bearer", "value": "v-123456789",
			"allowed_hosts": []string{up.HostP}})["id"].(string)
		for _, target := range []string{"http://localhost:" + up.Port + "/x", other.URL + "/x", "http://api.evil.test:" + up.Port + "/x"} {
			r := cl.call("GET", a.url+"/v1/proxy/"+id+"/", map[string]string{"X-API-Key": owner, "X-Credvault-Target": target}, nil)
			if r.status != 403 || r.errCode(t) != "egress_denied" {
				t.Fatalf("target %s: %d %s", target, r.status, r.body)
			}
		}
		if r := cl.call("GET", a.url+"/v1/proxy/"+id+"/", map[string]string{"X-API-Key": owner}, nil); r.status != 400 {
			t.Fatalf("no target and no base_url: %d", r.status)
		}
		if n := up.conns.Load() + other.conns.Load(); n != 0 {
			t.Fatalf("%d connections made to refused destinations", n)
		}
		// An allowed host over plain http: without an http base_url a
		// credential only travels over https.
		r := cl.call("GET", a.url+"/v1/proxy/"+id+"/", map[string]string{"X-API-Key": owner, "X-Credvault-Target": up.URL + "/ok"}, nil)
		if r.status != 403 || r.errCode(t) != "egress_denied" || up.conns.Load() != 0 {
			t.Fatalf("plain http target: %d %s", r.status, r.body)
		}
	})

	t.Run("private addresses refused at dial time", func(t *testing.T) {
		cl := newCluster(t, nil) // CREDVAULT_EGRESS_ALLOW_PRIVATE unset
		a := cl.start()
		_, owner := cl.bootstrap(a, "acme")
		before := up.conns.Load()
		for _, host := range []string{up.HostP, "localhost:" + up.Port, "[::ffff:127.0.0.1]:" + up.Port} {
			id := cl.createCredential(a, owner, map[string]any{"name": "p", "placement": "bearer", "value": "v-123456789",
				"base_url": "http://" + host, "allowed_hosts": []string{host}})["id"].(string)
			r := cl.as(owner, "GET", a.url+"/v1/proxy/"+id+"/x", nil)
			if r.status != 403 || r.errCode(t) != "egress_denied" {
				t.Fatalf("%s: %d %s", host, r.status, r.body)
			}
		}
		if n := up.conns.Load() - before; n != 0 {
			t.Fatalf("the loopback upstream accepted %d connections", n)
		}
	})

	// CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS=<up's port>: the README's
	// recipe for trying a local service. That port on loopback passes;
	// another loopback port (other) stays refused.
	t.Run("loopback ports allow-list", func(t *testing.T) {
		cl := newCluster(t, map[string]string{"CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS": up.Port})
		a := cl.start()
		_, owner := cl.bootstrap(a, "acme")
		id := cl.createCredential(a, owner, map[string]any{"name": "local", "placement": "bearer", "value": "v-123456789",
			"base_url": up.URL, "allowed_hosts": []string{up.HostP}})["id"].(string)
		if r := cl.as(owner, "GET", a.url+"/v1/proxy/"+id+"/ok", nil); r.status != 200 {
			t.Fatalf("allowed loopback port: %d %s", r.status, r.body)
		}
		before := other.conns.Load()
		oid := cl.createCredential(a, owner, map[string]any{"name": "other", "placement": "bearer", "value": "v-123456789",
			"base_url": other.URL, "allowed_hosts": []string{other.HostP}})["id"].(string)
		if r := cl.as(owner, "GET", a.url+"/v1/proxy/"+oid+"/x", nil); r.status != 403 || r.errCode(t) != "egress_denied" {
			t.Fatalf("loopback port not listed: %d %s", r.status, r.body)
		}
		if n := other.conns.Load() - before; n != 0 {
			t.Fatalf("the unlisted loopback port accepted %d connections", n)
		}
	})
}

// TestShareeCannotExfiltrate: a member with `use` calls through the proxy,
// but no route, header, path or redirect they control gets the value
// anywhere but the credential's hosts.
func TestShareeCannotExfiltrate(t *testing.T) {
	const value = "sk_live_SHAREDsecret_0099"
	cl := newCluster(t, privateEgress())
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	evil := newUpstream(t, nil)
	good := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, evil.URL+"/stolen?k=1", http.StatusFound)
			return
		}
		fmt.Fprint(w, "ok")
	})
	u := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "s@acme.test", "role": "member"}).json(t)
	_, sharee := cl.createKey(a, owner, map[string]any{"name": "s", "scopes": []string{"credentials:read", "credentials:use"}, "user_id": u["id"]})
	id := cl.createCredential(a, owner, map[string]any{"name": "shared", "placement": "header", "param_name": "X-Secret", "value": value,
		"base_url": good.URL, "allowed_hosts": []string{good.HostP},
		"sharing": map[string]any{"mode": "members", "members": []map[string]string{{"user_id": u["id"].(string), "permission": "use"}}}})["id"].(string)

	tries := []struct {
		path    string
		headers map[string]string
	}{
		{"/plain", nil},
		{"//" + evil.HostP + "/x", nil},
		{"/@" + evil.HostP + "/x", nil},
		{"/../../x", nil},
		{"/%2f%2f" + evil.HostP, nil},
		{"/x", map[string]string{"X-Credvault-Target": evil.URL + "/x"}},
		{"/x", map[string]string{"Host": evil.HostP, "X-Forwarded-Host": evil.HostP}},
		{"/redirect", nil},
	}
	for _, tr := range tries {
		h := map[string]string{"X-API-Key": sharee}
		for k, v := range tr.headers {
			h[k] = v
		}
		before := evil.conns.Load()
		r := cl.call("GET", a.url+"/v1/proxy/"+id+tr.path, h, nil)
		if evil.conns.Load() != before {
			t.Errorf("%s reached the evil host", tr.path)
		}
		if r.status >= 500 || strings.Contains(string(r.body), value) {
			t.Errorf("%s: %d %s", tr.path, r.status, r.body)
		}
	}
	if n := evil.conns.Load(); n != 0 {
		t.Fatalf("the evil host got %d connections", n)
	}
	for _, r := range good.requests() {
		if r.Host != good.HostP {
			t.Errorf("good upstream saw Host %q", r.Host)
		}
	}
	// No route shows the value to the sharee.
	for _, path := range []string{"/v1/credentials/" + id, "/v1/credentials", "/v1/credentials/" + id + "/usage"} {
		if r := cl.as(sharee, "GET", a.url+path, nil); strings.Contains(string(r.body), value) || strings.Contains(string(r.body), value[8:]) {
			t.Errorf("%s shows the value", path)
		}
	}
	for _, attempt := range []struct{ method, path string }{
		{"PATCH", "/v1/credentials/" + id}, {"PUT", "/v1/credentials/" + id + "/sharing"}, {"POST", "/v1/inject"},
	} {
		body := map[string]any{"allowed_hosts": []string{evil.HostP}}
		if attempt.path == "/v1/inject" {
			body = map[string]any{"credential_id": id, "request": map[string]any{"url": good.URL + "/x"}}
		} else if strings.HasSuffix(attempt.path, "sharing") {
			body = map[string]any{"mode": "team"}
		}
		if r := cl.as(sharee, attempt.method, a.url+attempt.path, body); r.status != 403 || strings.Contains(string(r.body), value) {
			t.Errorf("%s %s by a use-only sharee: %d %s", attempt.method, attempt.path, r.status, r.body)
		}
	}
}

func TestProxyRedirectDropsCredential(t *testing.T) {
	cl := newCluster(t, privateEgress())
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	b := newUpstream(t, nil)
	aUp := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, b.URL+"/landed?api_key=", http.StatusFound)
	})
	for _, placement := range []map[string]any{
		{"placement": "header", "param_name": "X-Secret"}, {"placement": "query", "param_name": "api_key"}, {"placement": "bearer"},
	} {
		body := map[string]any{"name": "r", "value": "redirect-secret-77", "base_url": aUp.URL, "allowed_hosts": []string{aUp.HostP, b.HostP}}
		for k, v := range placement {
			body[k] = v
		}
		id := cl.createCredential(a, owner, body)["id"].(string)
		if r := cl.as(owner, "GET", a.url+"/v1/proxy/"+id+"/start", nil); r.status != 200 {
			t.Fatalf("%v: %d %s", placement, r.status, r.body)
		}
		got := b.last(t)
		if strings.Contains(fmt.Sprint(got.Header)+got.URL.RawQuery, "redirect-secret-77") {
			t.Fatalf("%v: the credential followed the redirect to another host: %v %s", placement, got.Header, got.URL.RawQuery)
		}
	}
}

// TestRotateAndUnshareReachEveryInstance: B serves a sharee's proxied calls
// from its value cache; a rotation and an unshare made on A take effect on
// B's next call.
func TestRotateAndUnshareReachEveryInstance(t *testing.T) {
	cl := newCluster(t, privateEgress())
	a, b := cl.start(), cl.start()
	_, owner := cl.bootstrap(a, "acme")
	up := newUpstream(t, nil)
	u := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "s@acme.test", "role": "member"}).json(t)
	_, sharee := cl.createKey(a, owner, map[string]any{"name": "s", "scopes": []string{"credentials:use"}, "user_id": u["id"]})
	id := cl.createCredential(a, owner, map[string]any{"name": "c", "placement": "bearer", "value": "first-value-111",
		"base_url": up.URL, "allowed_hosts": []string{up.HostP},
		"sharing": map[string]any{"mode": "members", "members": []map[string]string{{"user_id": u["id"].(string), "permission": "use"}}}})["id"].(string)
	call := func() int { return cl.as(sharee, "GET", b.url+"/v1/proxy/"+id+"/x", nil).status }
	for range 3 {
		if s := call(); s != 200 {
			t.Fatalf("before: %d", s)
		}
	}
	if got := up.last(t).Header.Get("Authorization"); got != "Bearer first-value-111" {
		t.Fatalf("before rotation: %q", got)
	}
	if r := cl.as(owner, "PATCH", a.url+"/v1/credentials/"+id, map[string]any{"value": "second-value-222"}); r.status != 200 {
		t.Fatalf("rotate: %d", r.status)
	}
	waitFor(t, time.Second, func() bool { call(); return up.last(t).Header.Get("Authorization") == "Bearer second-value-222" })
	if r := cl.as(owner, "PUT", a.url+"/v1/credentials/"+id+"/sharing", map[string]any{"mode": "personal"}); r.status != 200 {
		t.Fatalf("unshare: %d", r.status)
	}
	waitFor(t, time.Second, func() bool { return call() == 404 })
}

func waitFor(t *testing.T, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s", within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestInjectTestAndUsage(t *testing.T) {
	cl := newCluster(t, privateEgress())
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good-key-123456" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "ok")
	})
	id := cl.createCredential(a, owner, map[string]any{"name": "c", "placement": "bearer", "value": "good-key-123456",
		"base_url": up.URL, "allowed_hosts": []string{up.HostP},
		"test_request": map[string]any{"method": "GET", "path": "/me", "expect_status": 200}})["id"].(string)

	r := cl.as(owner, "POST", a.url+"/v1/credentials/"+id+"/test", nil)
	if m := r.json(t); r.status != 200 || m["ok"] != true || m["status"].(float64) != 200 || m["rejected"] != false {
		t.Fatalf("test: %d %s", r.status, r.body)
	}
	cl.as(owner, "PATCH", a.url+"/v1/credentials/"+id, map[string]any{"value": "revoked-key-654321"})
	r = cl.as(owner, "POST", a.url+"/v1/credentials/"+id+"/test", nil)
	if m := r.json(t); m["ok"] != false || m["rejected"] != true || m["status"].(float64) != 401 {
		t.Fatalf("test with a rejected key: %s", r.body)
	}

	// Inject needs a runner (a service key with credentials:resolve)
	// acting for a user who may use the credential, and is audited every
	// time, refused calls included.
	_, user := cl.createKey(a, owner, map[string]any{"name": "u", "scopes": []string{"credentials:use"}})
	_, runner := cl.createKey(a, owner, map[string]any{"name": "runner", "kind": "service", "scopes": []string{"credentials:use", "credentials:resolve"}})
	body := map[string]any{"credential_id": id, "workflow_id": "wf-7", "request": map[string]any{"method": "GET", "url": up.URL + "/x?a=1"}}
	if r := cl.as(user, "POST", a.url+"/v1/inject", body); r.status != 403 {
		t.Fatalf("inject without credentials:resolve: %d", r.status)
	}
	acting := map[string]string{"X-API-Key": runner, "X-Credvault-Acting-User": res.UserID}
	for i := range 2 {
		r := cl.call("POST", a.url+"/v1/inject", acting, body)
		if r.status != 200 || !strings.Contains(string(r.body), "Bearer revoked-key-654321") {
			t.Fatalf("inject %d: %d %s", i, r.status, r.body)
		}
	}
	body["request"] = map[string]any{"url": "http://elsewhere.test/x"}
	if r := cl.call("POST", a.url+"/v1/inject", acting, body); r.status != 403 || r.errCode(t) != "egress_denied" {
		t.Fatalf("inject elsewhere: %d %s", r.status, r.body)
	}
	var resolves int
	_ = a.s.db.Get(&resolves, `SELECT count(*) FROM audit_events WHERE action = 'credential.resolve' AND resource_id = $1`, id)
	if resolves != 4 {
		t.Fatalf("%d resolve audit events, want 4 (every call, refused ones too)", resolves)
	}
	var leaked int
	_ = a.s.db.Get(&leaked, `SELECT count(*) FROM audit_events WHERE data::text LIKE '%key-654321%' OR data::text LIKE '%key-123456%'`)
	if leaked != 0 {
		t.Fatalf("an audit event holds the value")
	}

	// Proxied calls are recorded (batched) with workflow, node, host, status.
	cl.call("GET", a.url+"/v1/proxy/"+id+"/y", map[string]string{"X-API-Key": owner, "X-Credvault-Workflow-Id": "wf-9", "X-Credvault-Node-Id": "n-3"}, nil)
	var usage map[string]any
	waitFor(t, 3*time.Second, func() bool {
		usage = cl.as(owner, "GET", a.url+"/v1/credentials/"+id+"/usage", nil).json(t)
		return strings.Contains(fmt.Sprint(usage["data"]), "wf-9")
	})
	first := usage["data"].([]any)[0].(map[string]any)
	if first["workflow_id"] != "wf-9" || first["node_id"] != "n-3" || first["destination_host"] != up.HostP || first["status"].(float64) != 401 || first["user_id"] != res.UserID {
		t.Fatalf("usage record: %v", first)
	}
	if r := cl.as(owner, "DELETE", a.url+"/v1/credentials/"+id, nil); r.status != 409 || !strings.Contains(string(r.body), "wf-9") {
		t.Fatalf("delete after use: %d %s", r.status, r.body)
	}
}

func TestProxyUpstreamFailures(t *testing.T) {
	cl := newCluster(t, privateEgress())
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	id := cl.createCredential(a, owner, map[string]any{"name": "down", "placement": "bearer", "value": "sk-unreachable-123",
		"base_url": "http://" + closed, "allowed_hosts": []string{closed}})["id"].(string)
	r := cl.as(owner, "GET", a.url+"/v1/proxy/"+id+"/x", nil)
	if r.status != 502 || r.errCode(t) != "upstream_unreachable" || strings.Contains(string(r.body), "sk-unreachable-123") {
		t.Fatalf("closed port: %d %s", r.status, r.body)
	}
}

// TestBasicPlacementOnTheWire: placement basic sends RFC 7617's
// "Authorization: Basic base64(username:value)"; an upstream that echoes
// it back (raw, decoded, URL-encoded, base64 in both alphabets) has every
// form scrubbed, in headers and body; the username is metadata.
func TestBasicPlacementOnTheWire(t *testing.T) {
	const user, value = "AC1234567890", "tw-secret/+=value-0099"
	pair := user + ":" + value
	token := base64.StdEncoding.EncodeToString([]byte(pair))
	cl := newCluster(t, privateEgress())
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		u, p, ok := r.BasicAuth()
		w.Header().Set("X-Echo", h)
		w.Header().Set("X-Echo-Password", p)
		fmt.Fprintf(w, "ok=%v user=%s\nauth=%s\npair=%s:%s\nq=%s\nb64url=%s\nrawb64=%s\npassword=%s\n", ok, u, h, u, p,
			url.QueryEscape(h), base64.URLEncoding.EncodeToString([]byte(u+":"+p)),
			base64.RawStdEncoding.EncodeToString([]byte(u+":"+p)), p)
	})
	created := cl.createCredential(a, owner, map[string]any{"name": "twilio", "placement": "basic", "username": user, "value": value,
		"base_url": up.URL, "allowed_hosts": []string{up.HostP}})
	if created["username"] != user || created["placement"] != "basic" {
		t.Fatalf("created: %v", created)
	}
	r := cl.as(owner, "GET", a.url+"/v1/proxy/"+created["id"].(string)+"/2010-04-01/Accounts", nil)
	if r.status != 200 {
		t.Fatalf("proxy: %d %s", r.status, r.body)
	}
	if got := up.last(t).Header.Values("Authorization"); len(got) != 1 || got[0] != "Basic "+token {
		t.Fatalf("upstream got Authorization %q, want Basic %s", got, token)
	}
	if u, p, ok := up.last(t).BasicAuth(); !ok || u != user || p != value {
		t.Fatalf("upstream decoded %q %q %v", u, p, ok)
	}
	if !strings.Contains(string(r.body), "ok=true user="+user) {
		t.Fatalf("the username should pass (it is not a secret): %s", r.body)
	}
	// Each encoded form goes whole, not only the value's bits in its middle
	// (the edges of a partly redacted base64 text still carry the value's).
	// Base64 padding may stay after the redaction: it says only the
	// pair's length modulo 3, which the redacted text's place says anyway.
	for _, line := range []string{`auth=Basic \[REDACTED\]=*\n`, `q=Basic\+\[REDACTED\](%3D)*\n`, `b64url=\[REDACTED\]=*\n`, `rawb64=\[REDACTED\]\n`, `password=\[REDACTED\]\n`} {
		if !regexp.MustCompile(line).Match(r.body) {
			t.Errorf("response lacks %q:\n%s", line, r.body)
		}
	}
	if got := r.header.Get("X-Echo"); !regexp.MustCompile(`^Basic \[REDACTED\]=*$`).MatchString(got) {
		t.Errorf("X-Echo: %q", got)
	}
	all := string(r.body) + fmt.Sprint(r.header)
	for _, enc := range []string{value, pair, token, url.QueryEscape(value), url.QueryEscape("Basic " + token),
		base64.URLEncoding.EncodeToString([]byte(pair)), base64.RawStdEncoding.EncodeToString([]byte(pair))} {
		if strings.Contains(all, enc) {
			t.Errorf("response holds %q:\n%s", enc, all)
		}
	}
}

// TestBasicPlacementBadInputWritesNothing: username rules, each a 400
// naming the field, with no row written.
func TestBasicPlacementBadInputWritesNothing(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	count := func() (n int) {
		_ = a.s.db.Get(&n, `SELECT count(*) FROM credentials`)
		return n
	}
	base := func(extra map[string]any) map[string]any {
		m := map[string]any{"name": "b", "value": "secret-value-123", "base_url": "https://api.twilio.com", "allowed_hosts": []string{"api.twilio.com"}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	before := count()
	for _, tc := range []struct {
		body map[string]any
		want string
	}{
		{base(map[string]any{"placement": "basic"}), `field "username" is required for placement basic`},
		{base(map[string]any{"placement": "basic", "username": "a:b"}), `field "username" cannot contain ':'`},
		{base(map[string]any{"placement": "basic", "username": "a\tb"}), `field "username": control characters`},
		{base(map[string]any{"placement": "basic", "username": "u", "param_name": "X-Key"}), `field "param_name" must be empty for placement basic`},
		{base(map[string]any{"placement": "basic", "username": "u", "value_prefix": "Basic "}), `field "value_prefix" must be empty for placement basic`},
		{base(map[string]any{"placement": "bearer", "username": "u"}), `field "username" must be empty for placement bearer`},
		{base(map[string]any{"placement": "basic", "username": strings.Repeat("u", 257)}), `field "username"`},
	} {
		r := cl.as(owner, "POST", a.url+"/v1/credentials", tc.body)
		if r.status != 400 || !strings.Contains(r.errMessage(t), tc.want) {
			t.Errorf("%v: %d %q, want 400 containing %q", tc.body, r.status, r.errMessage(t), tc.want)
		}
	}
	if n := count(); n != before {
		t.Fatalf("credentials %d -> %d after refused input", before, n)
	}
}

// TestCredentialTestIsNotWorkflowUse: a credential only tested can be
// deleted without 409 and shows no last_used_at; a proxied workflow call
// sets last_used_at (written in a batch) and holds off the delete; a
// caller cannot pass as the test.
func TestCredentialTestIsNotWorkflowUse(t *testing.T) {
	cl := newCluster(t, privateEgress())
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	up := newUpstream(t, nil)
	mk := func() string {
		return cl.createCredential(a, owner, map[string]any{"name": "c", "placement": "bearer", "value": "good-key-123456",
			"base_url": up.URL, "allowed_hosts": []string{up.HostP},
			"test_request": map[string]any{"method": "GET", "path": "/me", "expect_status": 200}})["id"].(string)
	}
	tested, used := mk(), mk()
	if r := cl.as(owner, "POST", a.url+"/v1/credentials/"+tested+"/test", nil); r.status != 200 || r.json(t)["ok"] != true {
		t.Fatalf("test: %d %s", r.status, r.body)
	}
	cl.call("GET", a.url+"/v1/proxy/"+used+"/x", map[string]string{"X-API-Key": owner, "X-Credvault-Workflow-Id": "wf-1"}, nil)
	waitFor(t, 5*time.Second, func() bool {
		return cl.as(owner, "GET", a.url+"/v1/credentials/"+used, nil).json(t)["last_used_at"] != nil
	})
	// The test's use is recorded (usage lists it) but is not workflow use.
	waitFor(t, 5*time.Second, func() bool {
		return strings.Contains(string(cl.as(owner, "GET", a.url+"/v1/credentials/"+tested+"/usage", nil).body), "credvault:test")
	})
	if got := cl.as(owner, "GET", a.url+"/v1/credentials/"+tested, nil).json(t); got["last_used_at"] != nil {
		t.Errorf("a test set last_used_at: %v", got["last_used_at"])
	}
	if r := cl.call("GET", a.url+"/v1/proxy/"+used+"/x", map[string]string{"X-API-Key": owner, "X-Credvault-Workflow-Id": "credvault:test"}, nil); r.status != 400 {
		t.Errorf("a caller claiming to be the test: %d %s", r.status, r.body)
	}
	if r := cl.as(owner, "DELETE", a.url+"/v1/credentials/"+used, nil); r.status != 409 {
		t.Errorf("delete after workflow use: %d, want 409", r.status)
	}
	if r := cl.as(owner, "DELETE", a.url+"/v1/credentials/"+tested, nil); r.status != 204 {
		t.Errorf("delete after a test only: %d %s, want 204", r.status, r.body)
	}
}
