package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	neturl "net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// privateRedis runs a redis-server of the test's own on a free loopback
// port (so that no other test's instances share its channels) and returns
// the port. Without redis-server the test is skipped, except under CI
// (CI set), whose script installs it: there it fails.
func privateRedis(t *testing.T) int {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not installed (.ci/run installs it)")
		}
		t.Skip("redis-server not installed")
	}
	port := freePort(t)
	startRedisProc(t, redisReadyRe, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	return port
}

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
	port := privateRedis(t)
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
	// b applies the key's creation first: both of its paths (NOTIFY and
	// the Redis fan-out) drop b's cache entry for the key, so one that
	// arrived after the check below filled the cache would empty it
	// again, and the check after the cut would need the database (a CI
	// run under the race detector answered 503 there).
	waitAppliedOn(t, cl, a, b)
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

// waitAppliedOn waits until b has applied every key state change a
// made, through the log (credvault_key_state_seq) and through Redis (a's
// published fan-out messages, received by b).
func waitAppliedOn(t *testing.T, cl *cluster, a, b *instance) {
	t.Helper()
	const seq, published, received = `credvault_key_state_seq`, `credvault_key_state_fanout_total{result="published"}`,
		`credvault_key_state_fanout_total{result="received"}`
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ma, mb := scrape(t, cl, a), scrape(t, cl, b)
		if mb[seq] >= ma[seq] && mb[received] >= ma[published] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("b has not applied a's key state changes in 10s: seq %v of %v, fan-out %v of %v", mb[seq], ma[seq], mb[received], ma[published])
		}
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

// silentListener accepts connections and reads what they send, never
// answering: a Redis that hangs (overloaded, or a network that drops its
// replies). got is closed when the first bytes arrive. It stops when the
// test ends.
func silentListener(t *testing.T) (addr string, got <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	first := make(chan struct{})
	var once sync.Once
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					once.Do(func() { close(first) })
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String(), first
}

// TestFanoutRunReturnsAtOnceWhileRedisHangs: the subscriber returns as
// soon as its context ends, though a connection attempt to a Redis that
// does not answer is under way (go-redis holds the subscription through
// it until its read timeout, 3 s, or its 10 s reconnect timeout). Before,
// run subscribed in its own goroutine and closed the subscription before
// returning, so an instance's shutdown waited for that attempt (7.9 s
// seen in TestFanoutWithRedisHangingWaitsOnceACommitAndStopsAtOnce).
func TestFanoutRunReturnsAtOnceWhileRedisHangs(t *testing.T) {
	addr, got := silentListener(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: 3 * time.Second, ContextTimeoutEnabled: true})
	defer rdb.Close()
	f := newKeyStateFanout(rdb, "https://credvault.test", 100*time.Millisecond, slog.New(slog.DiscardHandler), func(string) {}, func(string) {})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.run(ctx); close(done) }()
	<-got // a connection attempt waits for Redis
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return 10s after its context ended")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("run returned %s after its context ended, want at once (under 1s; the read timeout is 3s)", took.Round(time.Millisecond))
	}
}

// TestFanoutWithRedisHangingWaitsOnceACommitAndStopsAtOnce: with Redis
// hanging (it takes connections and never answers), a commit that changes
// many keys waits for Redis once (CREDVAULT_REDIS_TIMEOUT), not once a
// key: deleting a user who created 20 service keys revokes them in one
// transaction (21 payloads), which took 21 timeouts before (2.1 s at
// 100ms; 210 s at the 10 s maximum) against one for a single revocation.
// And the instance stops without waiting for its subscription, which
// go-redis holds locked through each connection attempt (7.9 s before in
// one run; how long depends on where the attempt is, see
// TestFanoutRunReturnsAtOnceWhileRedisHangs).
func TestFanoutWithRedisHangingWaitsOnceACommitAndStopsAtOnce(t *testing.T) {
	silentAddr, _ := silentListener(t)
	cl := newCluster(t, map[string]string{"REDIS_URL": "redis://" + silentAddr + "/0", "CREDVAULT_REDIS_TIMEOUT": "100ms"})
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	r := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "admin@acme.test", "role": "admin"})
	if r.status != 201 {
		t.Fatalf("create user: %d %s", r.status, r.body)
	}
	adminID := r.json(t)["id"].(string)
	_, admin := cl.createKey(a, owner, map[string]any{"name": "admin", "scopes": []string{"admin"}, "user_id": adminID})
	const keys = 20
	for i := range keys {
		cl.createKey(a, admin, map[string]any{"name": fmt.Sprintf("svc%d", i), "kind": "service", "scopes": []string{"keys:read"}})
	}
	oneID, _ := cl.createKey(a, owner, map[string]any{"name": "one", "scopes": []string{"keys:read"}})
	start := time.Now()
	if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+oneID+"/revoke", nil); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	one := time.Since(start)
	start = time.Now()
	if r := cl.as(owner, "DELETE", a.url+"/v1/users/"+adminID, nil); r.status != 204 {
		t.Fatalf("delete user: %d %s", r.status, r.body)
	}
	many := time.Since(start)
	if many > 5*one {
		t.Errorf("with Redis hanging, deleting a user who created %d keys took %s, a single revocation %s (%.1f times; want under 5)",
			keys, many.Round(time.Millisecond), one.Round(time.Millisecond), float64(many)/float64(one))
	}
	// Every payload is counted: the bootstrap key, the admin's, the 20
	// service keys, "one", its revocation, and the deletion's 21.
	if got := scrape(t, cl, a)[`credvault_key_state_fanout_total{result="publish_failed"}`]; got != 2*keys+5 {
		t.Errorf("credvault_key_state_fanout_total{result=\"publish_failed\"} = %v, want %d (one a payload)", got, 2*keys+5)
	}
	start = time.Now()
	a.stop()
	stop := time.Since(start)
	t.Logf("stopped in %s, a single revocation %s", stop.Round(time.Millisecond), one.Round(time.Millisecond))
	if stop > 10*one {
		t.Errorf("with Redis hanging, the instance took %s to stop, %.1f times a single revocation (want under 10)",
			stop.Round(time.Millisecond), float64(stop)/float64(one))
	}
}

// TestFanoutFloodDoesNotGrowKnownKeySet: anyone who reaches Redis can
// publish on the channel. 5,000 made-up "new:" and "key:" payloads must
// cost the receiving instance no memory that stays: the known-key set
// keeps its additions until its next reload (a LISTEN reconnect), so
// before, each payload grew it for good (16 bytes counted a hash; a flood
// of 100,000 a second: 1.6 MB a second, without bound). The instance
// still answers a real key.
func TestFanoutFloodDoesNotGrowKnownKeySet(t *testing.T) {
	port := privateRedis(t)
	cl := newCluster(t, map[string]string{"REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", port)})
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	before := a.s.verifier.KnownBytes()

	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer rdb.Close()
	ctx := context.Background()
	const flood = 5000
	for sent := 0; sent < flood; {
		pipe := rdb.Pipeline()
		for range 500 {
			var h [32]byte
			_, _ = rand.Read(h[:])
			kind := "new:"
			if sent%2 == 1 {
				kind = "key:"
			}
			pipe.Publish(ctx, a.s.fanout.channel, "intruder "+kind+hex.EncodeToString(h[:]))
			sent++
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if got := scrape(t, cl, a)[`credvault_key_state_fanout_total{result="received"}`]; got >= flood {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("received %v of %d payloads in 10s", got, flood)
		}
	}
	if after := a.s.verifier.KnownBytes(); after != before {
		t.Errorf("the known-key set holds %d bytes after %d made-up payloads, %d before (want no growth)", after, flood, before)
	}
	if r := cl.as(owner, "GET", a.url+"/v1/auth/check?scope=keys:read", nil); r.status != 200 {
		t.Errorf("owner's key after the flood: %d %s", r.status, r.body)
	}
}

// TestFanoutChannelIsTheInstallations: every instance on one database
// uses one channel, whatever its CREDVAULT_PUBLIC_URL or CREDVAULT_ISSUER
// (set on some instances and not on others, during a rolling change of
// either, or spelt differently): the channel was named from the issuer,
// so such instances silently stopped hearing each other's revocations.
// Another installation (another database) on the same Redis has another.
func TestFanoutChannelIsTheInstallations(t *testing.T) {
	port := privateRedis(t)
	redisURL := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	cl := newCluster(t, map[string]string{"REDIS_URL": redisURL})
	plain := cl.start()
	cl.env["CREDVAULT_PUBLIC_URL"] = "https://vault.example.com"
	withURL := cl.start()
	cl.env["CREDVAULT_ISSUER"] = "https://keys.example.com"
	withIssuer := cl.start()
	for name, inst := range map[string]*instance{"CREDVAULT_PUBLIC_URL set": withURL, "CREDVAULT_ISSUER set": withIssuer} {
		if got, want := inst.s.fanout.channel, plain.s.fanout.channel; got != want {
			t.Errorf("instance with %s: channel %s, the installation's other instances %s", name, got, want)
		}
	}
	other := newCluster(t, map[string]string{"REDIS_URL": redisURL}).start()
	if other.s.fanout.channel == plain.s.fanout.channel {
		t.Errorf("another installation on the same Redis has the same channel %s", plain.s.fanout.channel)
	}
}

// TestFanoutMalformedFloodLogsRarely: whoever reaches Redis can publish
// anything on the channel. Each malformed message is counted, but a flood
// of them must not become a flood of log lines (one warning a message
// before: 1,000 lines for 1,000 messages).
func TestFanoutMalformedFloodLogsRarely(t *testing.T) {
	var logs strings.Builder
	f := &keyStateFanout{sender: "me", channel: "credvault:key_state:test", log: slog.New(slog.NewTextHandler(&logs, nil)),
		apply: func(string) { t.Fatal("a malformed message was applied") }, warnMalformed: rate.Sometimes{Interval: malformedWarnEvery}}
	malformed := 0
	f.count = func(r string) {
		if r == "malformed" {
			malformed++
		}
	}
	for i := range 1000 {
		f.received(fmt.Sprintf("x junk:%d", i))
	}
	if malformed != 1000 {
		t.Errorf("counted %d malformed, want 1000", malformed)
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 {
		t.Errorf("%d log lines for 1000 malformed messages, want 1:\n%s", n, logs.String())
	}
}
