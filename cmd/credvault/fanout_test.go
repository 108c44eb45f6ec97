package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	neturl "net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// tcpGate forwards loopback connections to target until it is cut: then
// every forwarded connection is closed and new ones are refused, as when
// a network partition separates one instance from its database.
type tcpGate struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newTCPGate(t *testing.T, target string) *tcpGate {
	t.Helper()
	g := &tcpGate{t: t, target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = ln.Addr().String()
	g.serve(ln)
	t.Cleanup(g.cut)
	return g
}

func (g *tcpGate) serve(ln net.Listener) {
	g.mu.Lock()
	g.ln = ln
	g.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", g.target)
			if err != nil {
				c.Close()
				continue
			}
			g.mu.Lock()
			if g.ln != ln { // cut meanwhile
				g.mu.Unlock()
				c.Close()
				u.Close()
				return
			}
			g.conns[c], g.conns[u] = true, true
			g.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
}

// cut closes the listener and every forwarded connection.
func (g *tcpGate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		g.ln.Close()
		g.ln = nil
	}
	for c := range g.conns {
		c.Close()
		delete(g.conns, c)
	}
}

// restore listens on the gate's address again.
func (g *tcpGate) restore() {
	g.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port was just released; another process may hold it briefly
		if ln, err = net.Listen("tcp", g.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		g.t.Fatal(err)
	}
	g.serve(ln)
}

// viaGate is dbURL with its host replaced by the gate's address.
func viaGate(t *testing.T, dbURL string, g *tcpGate) string {
	t.Helper()
	u, err := neturl.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = g.addr
	return u.String()
}

// pgHostPort is the host:port of a postgres:// URL.
func pgHostPort(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := neturl.Parse(dbURL)
	if err != nil || u.Host == "" || strings.Contains(u.Host, ",") {
		t.Fatalf("test database URL without a single host: %v", err)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "5432")
	}
	return u.Host
}

// TestRevocationReachesInstanceCutOffFromDatabase: instance b loses its
// database (a partition: the others still reach it) while it holds a key
// in its cache; the key is revoked through instance a. b stops accepting
// the key within the 1 s revocation bound, because the change reaches it
// through Redis; its check answers 503 (the key must be read from a
// database it cannot reach), and 401 once the database is back. Before,
// b accepted the revoked key from its cache until it could read the key
// state log again (the same gap as a revocation acknowledged just before
// PostgreSQL restarts: its NOTIFY lost in the shutdown, TestHAFaults's
// "accepted 2.97s" in CI).
func TestRevocationReachesInstanceCutOffFromDatabase(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	port := freePort(t)
	startRedisProc(t, redisReadyRe, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	cl := newCluster(t, map[string]string{"REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", port)})
	a := cl.start()
	gate := newTCPGate(t, pgHostPort(t, cl.dbURL))
	direct := cl.env["DATABASE_URL"]
	cl.env["DATABASE_URL"] = viaGate(t, direct, gate)
	b := cl.start()
	cl.env["DATABASE_URL"] = direct

	_, owner := cl.bootstrap(a, "acme")
	id, key := cl.createKey(a, owner, map[string]any{"name": "partitioned", "scopes": []string{"keys:read"}})
	check := func(inst *instance) response {
		return cl.as(key, "GET", inst.url+"/v1/auth/check?scope=keys:read", nil)
	}
	if r := check(b); r.status != 200 {
		t.Fatalf("check on b before the cut: %d %s", r.status, r.body)
	}
	gate.cut()
	if r := check(b); r.status != 200 {
		t.Fatalf("check on b cut off from the database, key cached: %d %s (want 200 from the cache)", r.status, r.body)
	}
	if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+id+"/revoke", nil); r.status != 200 {
		t.Fatalf("revoke through a: %d %s", r.status, r.body)
	}
	acked := time.Now()
	var last response
	for {
		sent := time.Since(acked)
		last = check(b)
		if last.status != 200 {
			break
		}
		if sent > time.Second {
			t.Fatalf("b, cut off from the database, accepted the key %s after its revocation was acknowledged (bound 1s)", sent.Round(time.Millisecond))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if last.status != 503 {
		t.Errorf("b's refusal while cut off: %d %s, want 503 (the key must be read from the database)", last.status, last.body)
	}
	// It stays refused until the database is back, and is 401 after.
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if r := check(b); r.status == 200 {
			t.Fatalf("b accepted the revoked key again while cut off: %s", r.body)
		}
	}
	gate.restore()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := check(b)
		if r.status == 401 {
			break
		}
		if r.status == 200 {
			t.Fatalf("b accepted the revoked key after the database came back: %s", r.body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("b's check 10s after the database came back: %d %s, want 401", r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := scrape(t, cl, b)[`credvault_key_state_fanout_total{result="received"}`]; got < 1 {
		t.Errorf("b's credvault_key_state_fanout_total{result=\"received\"} = %v, want >= 1", got)
	}
	if got := scrape(t, cl, a)[`credvault_key_state_fanout_total{result="published"}`]; got < 1 {
		t.Errorf("a's credvault_key_state_fanout_total{result=\"published\"} = %v, want >= 1", got)
	}
}

// TestFanoutReceivedAppliesOnlyStatePayloads: a message on the channel is
// applied only when it is a payload key_state_log holds and another
// instance sent it; anything else is counted as malformed and dropped.
func TestFanoutReceivedAppliesOnlyStatePayloads(t *testing.T) {
	var applied, counted []string
	f := &keyStateFanout{sender: "me", log: slog.New(slog.DiscardHandler), apply: func(p string) { applied = append(applied, p) },
		count: func(r string) { counted = append(counted, r) }}
	hash := strings.Repeat("0a", 32)
	cases := []struct {
		msg, applied, counted string
	}{
		{"other key:" + hash, "key:" + hash, "received"},
		{"other new:" + hash, "new:" + hash, "received"},
		{"other user:6f1c2a3b-0000-4000-8000-00000000abcd", "user:6f1c2a3b-0000-4000-8000-00000000abcd", "received"},
		{"other cred:6F1C2A3B-0000-4000-8000-00000000ABCD", "cred:6F1C2A3B-0000-4000-8000-00000000ABCD", "received"},
		{"other integration:6f1c2a3b-0000-4000-8000-00000000abcd", "integration:6f1c2a3b-0000-4000-8000-00000000abcd", "received"},
		{"me key:" + hash, "", ""}, // its own change, applied at commit
		{"other key:" + strings.ToUpper(hash), "", "malformed"},
		{"other key:" + hash[:62], "", "malformed"},
		{"other user:6f1c2a3b00004000800000000000abcd", "", "malformed"},
		{"other reset:all", "", "malformed"},
		{"key:" + hash, "", "malformed"}, // no sender
		{"other ", "", "malformed"},
		{"", "", "malformed"},
	}
	for _, c := range cases {
		applied, counted = nil, nil
		f.received(c.msg)
		if got := strings.Join(applied, ","); got != c.applied {
			t.Errorf("%q applied %q, want %q", c.msg, got, c.applied)
		}
		if got := strings.Join(counted, ","); got != c.counted {
			t.Errorf("%q counted %q, want %q", c.msg, got, c.counted)
		}
	}
}
