package main

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"credvault/api/gateways"
	"credvault/internal/nginx"
)

// readRecipe renders a recipe of api/gateways with the test's addresses
// (empty ones are left as written).
func readRecipe(t *testing.T, name string, addrs map[string]string) string {
	t.Helper()
	s, err := gateways.Render(name, addrs["gateway"], addrs["credvault"], addrs["app"])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// recordingApp is the application behind a gateway: it records the
// headers of every request it receives.
type recordingApp struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []http.Header
}

func newRecordingApp(t *testing.T) *recordingApp {
	a := &recordingApp{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host) // net/http moves Host out of the header map
		a.mu.Lock()
		a.got = append(a.got, h)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("app: " + r.URL.Path))
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *recordingApp) addr() string { return strings.TrimPrefix(a.srv.URL, "http://") }

func (a *recordingApp) requests() []http.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]http.Header(nil), a.got...)
}

// TestGatewayNginx runs nginx (auth_request) in front of credvault with
// the recipe in api/gateways/nginx. nginx must be installed: .ci/run
// installs nginx-light when it is missing, so a missing nginx fails here
// rather than skipping, unless CREDVAULT_SKIP_NGINX=1.
func TestGatewayNginx(t *testing.T) {
	if _, err := nginx.Binary(); err != nil {
		if os.Getenv("CREDVAULT_SKIP_NGINX") == "1" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	cl := newCluster(t, nil)
	inst := cl.start()
	app := newRecordingApp(t)
	gw, err := nginx.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	// nginx reaches credvault through a forwarder that counts the TCP
	// connections nginx opens: the recipe keeps them alive.
	cvAddr, conns := countingForwarder(t, strings.TrimPrefix(inst.url, "http://"))
	conf, err := gateways.NginxAuthRequest(gw, cvAddr, app.addr())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := nginx.Start(ctx, t.TempDir(), conf)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Log(p.ErrorLog())
		}
		p.Stop()
	}()
	assertLoopbackOnly(t, gw)
	owner := exerciseGateway(t, cl, inst, "http://"+gw, app)

	_, key := cl.createKey(inst, owner, map[string]any{"name": "keepalive", "scopes": []string{"keys:read"}})
	before := conns.Load()
	const calls = 20
	for i := 0; i < calls; i++ {
		if r := cl.call("GET", "http://"+gw+"/orders/1", map[string]string{"X-API-Key": key}, nil); r.status != 200 {
			t.Fatalf("keep-alive call %d: %d", i, r.status)
		}
	}
	if opened := conns.Load() - before; opened > 2 {
		t.Errorf("nginx opened %d connections to credvault for %d checks, want them kept alive", opened, calls)
	}
}

// countingForwarder listens on loopback, forwards each connection to
// target, and counts the connections it accepted.
func countingForwarder(t *testing.T, target string) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
				io.Copy(c, u)
			}()
		}
	}()
	return ln.Addr().String(), &n
}

// TestGatewayCaddy runs Caddy's forward_auth recipe; skipped when caddy is
// not installed (Debian: apt-get install caddy).
func TestGatewayCaddy(t *testing.T) {
	bin, err := exec.LookPath("caddy")
	if err != nil {
		t.Skip("caddy is not installed")
	}
	cl := newCluster(t, nil)
	inst := cl.start()
	app := newRecordingApp(t)
	gw, err := nginx.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "Caddyfile")
	addrs := map[string]string{"gateway": gw, "credvault": strings.TrimPrefix(inst.url, "http://"), "app": app.addr()}
	if err := os.WriteFile(conf, []byte(readRecipe(t, "caddy/Caddyfile", addrs)), 0o600); err != nil {
		t.Fatal(err)
	}
	runGatewayProcess(t, dir, gw, bin, "run", "--config", conf, "--adapter", "caddyfile")
	assertLoopbackOnly(t, gw)
	exerciseGateway(t, cl, inst, "http://"+gw, app)
}

// TestGatewayTraefik runs Traefik's forwardAuth recipe; skipped when
// traefik is not installed (Debian does not package it).
func TestGatewayTraefik(t *testing.T) {
	bin, err := exec.LookPath("traefik")
	if err != nil {
		t.Skip("traefik is not installed")
	}
	cl := newCluster(t, nil)
	inst := cl.start()
	app := newRecordingApp(t)
	gw, err := nginx.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addrs := map[string]string{"gateway": gw, "credvault": strings.TrimPrefix(inst.url, "http://"), "app": app.addr()}
	for _, f := range []string{"traefik.yml", "dynamic.yml"} {
		body := readRecipe(t, "traefik/"+f, addrs)
		body = strings.ReplaceAll(body, "filename: dynamic.yml", "filename: "+filepath.Join(dir, "dynamic.yml"))
		if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	runGatewayProcess(t, dir, gw, bin, "--configFile="+filepath.Join(dir, "traefik.yml"))
	exerciseGateway(t, cl, inst, "http://"+gw, app)
}

// runGatewayProcess starts a gateway binary in the foreground with HOME
// and XDG directories in dir, and waits until it answers on addr.
func runGatewayProcess(t *testing.T, dir, addr, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	var out lineBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Log(out.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := http.Get("http://" + addr + "/")
		if err == nil {
			r.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer on %s: %v\n%s", filepath.Base(bin), addr, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exerciseGateway checks one gateway recipe end to end: identity headers
// and no key upstream for a valid key; credvault's own 401 (body and
// WWW-Authenticate) for missing, malformed, unknown and revoked keys; 403
// for a missing scope; 429 with Retry-After over the rate limit; and that
// no refused request reaches the application. It returns the key of the
// org's owner.
func exerciseGateway(t *testing.T, cl *cluster, inst *instance, gw string, app *recordingApp) string {
	t.Helper()
	boot, owner := cl.bootstrap(inst, "gw")
	readID, readKey := cl.createKey(inst, owner, map[string]any{"name": "reader", "scopes": []string{"keys:read"}})
	revokedID, revoked := cl.createKey(inst, owner, map[string]any{"name": "gone", "scopes": []string{"keys:read"}})
	if r := cl.as(owner, "POST", inst.url+"/v1/api-keys/"+revokedID+"/revoke", nil); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	_, limited := cl.createKey(inst, owner, map[string]any{"name": "limited", "scopes": []string{"keys:read"},
		"rate_limit": map[string]any{"requests": 1, "window_seconds": 300}})
	unknown := readKey[:len(readKey)-12] + "abcdef" + readKey[len(readKey)-6:] // checksum fails: malformed

	for _, h := range []map[string]string{
		{"X-API-Key": readKey, "X-Credvault-Org-Id": "spoofed", "X-Credvault-Scopes": "admin"},
		{"Authorization": "Bearer " + readKey},
	} {
		r := cl.call("GET", gw+"/orders/1", h, nil)
		if r.status != 200 || string(r.body) != "app: /orders/1" {
			t.Fatalf("valid key: got %d %s, want 200 from the app", r.status, r.body)
		}
		got := app.requests()
		up := got[len(got)-1]
		for name, want := range map[string]string{
			"X-Credvault-Org-Id": boot.OrgID, "X-Credvault-User-Id": boot.UserID,
			"X-Credvault-Key-Id": readID, "X-Credvault-Scopes": "keys:read",
		} {
			if up.Get(name) != want {
				t.Errorf("upstream %s: got %q, want %q", name, up.Get(name), want)
			}
		}
		// The application sees the Host the client asked for (virtual
		// hosts, absolute links), not the name of an upstream block.
		if want := strings.TrimPrefix(gw, "http://"); up.Get("Host") != want {
			t.Errorf("upstream Host: got %q, want the client's %q", up.Get("Host"), want)
		}
		for _, name := range []string{"X-API-Key", "Authorization"} {
			if v := up.Get(name); v != "" {
				t.Errorf("upstream received the client's %s: %q", name, v)
			}
		}
		for name, vs := range up {
			for _, v := range vs {
				if strings.Contains(v, readKey[8:]) {
					t.Errorf("upstream header %s carries the client's key", name)
				}
			}
		}
	}
	seen := len(app.requests())

	for _, c := range []struct {
		name    string
		headers map[string]string
		path    string
		status  int
		code    string
	}{
		{"missing", nil, "/orders/1", 401, "missing_api_key"},
		{"malformed", map[string]string{"X-API-Key": "not-a-key"}, "/orders/1", 401, "malformed_api_key"},
		{"bad checksum", map[string]string{"X-API-Key": unknown}, "/orders/1", 401, "malformed_api_key"},
		{"revoked", map[string]string{"X-API-Key": revoked}, "/orders/1", 401, "revoked_api_key"},
		{"scope", map[string]string{"X-API-Key": readKey}, "/admin/users", 403, "insufficient_scope"},
	} {
		r := cl.call("GET", gw+c.path, c.headers, nil)
		if r.status != c.status || r.errCode(t) != c.code {
			t.Errorf("%s: got %d %s, want %d %s", c.name, r.status, r.body, c.status, c.code)
			continue
		}
		if rid, _ := r.json(t)["request_id"].(string); rid == "" {
			t.Errorf("%s: credvault's body lost its request_id: %s", c.name, r.body)
		}
		if c.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer realm="credvault"`) {
			t.Errorf("%s: WWW-Authenticate %q", c.name, r.header.Get("WWW-Authenticate"))
		}
		// One challenge (RFC 9110 §11.6.1 allows several, but two copies of
		// the same one confuse clients that parse only the first).
		if c.status == 401 && len(r.header.Values("WWW-Authenticate")) != 1 {
			t.Errorf("%s: %d WWW-Authenticate headers %q, want one", c.name, len(r.header.Values("WWW-Authenticate")), r.header.Values("WWW-Authenticate"))
		}
	}

	if r := cl.call("GET", gw+"/orders/1", map[string]string{"X-API-Key": limited}, nil); r.status != 200 {
		t.Fatalf("limited key, first call: %d %s", r.status, r.body)
	}
	seen++
	r := cl.call("GET", gw+"/orders/1", map[string]string{"X-API-Key": limited}, nil)
	if r.status != 429 || r.errCode(t) != "rate_limited" || r.header.Get("Retry-After") == "" || r.header.Get("Retry-After") == "0" {
		t.Errorf("over the limit: got %d %v %s, want 429 rate_limited with Retry-After", r.status, r.header, r.body)
	}
	if n := len(app.requests()); n != seen {
		t.Errorf("refused requests reached the app: %d requests, want %d", n, seen)
	}
	return owner
}

// assertLoopbackOnly fails unless every socket listening on addr's port is
// bound to a loopback address (read from /proc/net/tcp and tcp6): a
// gateway recipe for a laptop must not listen on every interface.
func assertLoopbackOnly(t *testing.T, addr string) {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	binds := listeningOn(t, port)
	if len(binds) == 0 {
		t.Fatalf("nothing listens on port %s", port)
	}
	for _, ip := range binds {
		if !ip.IsLoopback() {
			t.Errorf("the gateway listens on %s port %s, want loopback only", ip, port)
		}
	}
}

// listeningOn returns the local addresses of the TCP sockets in state
// LISTEN on port (decimal), from /proc/net/tcp{,6}.
func listeningOn(t *testing.T, port string) []net.IP {
	t.Helper()
	var out []net.IP
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 4 || fs[3] != "0A" { // 0A: TCP_LISTEN
				continue
			}
			hexIP, hexPort, ok := strings.Cut(fs[1], ":")
			if !ok {
				continue
			}
			if p, err := strconv.ParseUint(hexPort, 16, 16); err != nil || strconv.FormatUint(p, 10) != port {
				continue
			}
			raw, err := hex.DecodeString(hexIP)
			if err != nil {
				continue
			}
			// The kernel prints each 32-bit word in host (little-endian) order.
			for i := 0; i+4 <= len(raw); i += 4 {
				raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
			}
			out = append(out, net.IP(raw))
		}
	}
	return out
}
