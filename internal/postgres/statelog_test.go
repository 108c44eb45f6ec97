package postgres_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	neturl "net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"credvault/internal/apikey"
	"credvault/internal/credvault"
	"credvault/internal/postgres"
	"credvault/internal/postgres/pgtest"
)

// applied records what a Follower applied, for tests.
type applied struct {
	mu       sync.Mutex
	payloads []string
	resets   int
}

func (a *applied) apply(p string) { a.mu.Lock(); a.payloads = append(a.payloads, p); a.mu.Unlock() }
func (a *applied) reset()         { a.mu.Lock(); a.resets++; a.mu.Unlock() }

// waitFor returns how long it took until payload was applied; it fails
// the test after limit.
func (a *applied) waitFor(t *testing.T, payload string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		a.mu.Lock()
		for _, p := range a.payloads {
			if p == payload {
				a.mu.Unlock()
				return time.Since(start)
			}
		}
		a.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s not applied within %s", payload, limit)
	return 0
}

// bootstrapKey makes an org and its owner's key; it returns the key's
// org, id and invalidation payload.
func bootstrapKey(t *testing.T, store *postgres.Store) (org, id, payload string) {
	t.Helper()
	res, err := credvault.Bootstrap(context.Background(), store, apikey.Minter{Prefix: "cv"}, "org-"+hex.EncodeToString([]byte(t.Name()))[:12], "o@example.com")
	if err != nil {
		t.Fatal(err)
	}
	h := apikey.Hash(res.APIKey.Reveal())
	ak, err := store.FindAuthKeyByHash(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	return res.OrgID, ak.ID, "key:" + hex.EncodeToString(h[:])
}

func startFollower(t *testing.T, db *sqlx.DB, url string, maxStale time.Duration) (*postgres.Follower, *applied) {
	t.Helper()
	a := &applied{}
	f := postgres.NewFollower(db, url, slog.New(slog.DiscardHandler), maxStale, a.apply, a.reset, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for f.Fresh(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("follower did not start within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return f, a
}

// TestStateLogRowsAndNotify: a revocation writes its key_state_log row in
// the same transaction and announces "log:<seq>:key:<hash>".
func TestStateLogRowsAndNotify(t *testing.T) {
	db, url := pgtest.New(t)
	store := postgres.NewStore(db)
	org, id, payload := bootstrapKey(t, store)
	l := pq.NewListener(url, 10*time.Millisecond, time.Second, nil)
	defer l.Close()
	if err := l.Listen(postgres.InvalidationChannel); err != nil {
		t.Fatal(err)
	}
	if _, err := store.RevokeAPIKey(context.Background(), org, id, nil); err != nil {
		t.Fatal(err)
	}
	var seq int64
	if err := db.Get(&seq, `SELECT seq FROM key_state_log WHERE change = 'revoked' AND payload = $1`, payload); err != nil {
		t.Fatalf("no 'revoked' row for the key: %v", err)
	}
	select {
	case n := <-l.Notify:
		if want := "log:" + strconv.FormatInt(seq, 10) + ":" + payload; n.Extra != want {
			t.Fatalf("NOTIFY %q, want %q", n.Extra, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no NOTIFY")
	}
}

// TestFollowerPollsWhileListenDown: with no LISTEN connection at all (its
// server refuses), a revocation still reaches the follower within 1 s,
// read from the log through the pool. Before key_state_log, only NOTIFY
// carried it, and it was lost.
func TestFollowerPollsWhileListenDown(t *testing.T) {
	db, _ := pgtest.New(t)
	store := postgres.NewStore(db)
	org, id, payload := bootstrapKey(t, store)
	f, a := startFollower(t, db, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1", time.Minute)
	if f.Listening() {
		t.Fatal("listening on a refused port")
	}
	before := f.LastSeq()
	if _, err := store.RevokeAPIKey(context.Background(), org, id, nil); err != nil {
		t.Fatal(err)
	}
	if d := a.waitFor(t, payload, 5*time.Second); d > time.Second {
		t.Errorf("revocation applied %s after commit, want <= 1s (poll every %s)", d, postgres.PollDown)
	}
	if f.LastSeq() <= before {
		t.Errorf("last applied seq %d did not move past %d", f.LastSeq(), before)
	}
}

// TestFollowerCatchesUpMissedNotify: a change whose NOTIFY never arrived
// (as when it was sent while the listener reconnected) is applied from
// the log within PollUp while LISTEN is up.
func TestFollowerCatchesUpMissedNotify(t *testing.T) {
	db, url := pgtest.New(t)
	f, a := startFollower(t, db, url, time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for !f.Listening() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := db.Exec(`INSERT INTO key_state_log (change, payload) VALUES ('revoked', 'key:00')`); err != nil {
		t.Fatal(err)
	}
	if d := a.waitFor(t, "key:00", 5*time.Second); d > time.Second {
		t.Errorf("missed change applied after %s, want <= 1s", d)
	}
}

// TestFollowerReconnectCatchUp: the LISTEN connection is terminated by
// the server; changes made meanwhile are applied, and the follower listens
// again.
func TestFollowerReconnectCatchUp(t *testing.T) {
	db, url := pgtest.New(t)
	store := postgres.NewStore(db)
	org, id, payload := bootstrapKey(t, store)
	f, a := startFollower(t, db, url, time.Minute)
	for !f.Listening() {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := db.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'`); err != nil {
		t.Fatal(err)
	}
	if _, err := store.RevokeAPIKey(context.Background(), org, id, nil); err != nil {
		t.Fatal(err)
	}
	if d := a.waitFor(t, payload, 5*time.Second); d > time.Second {
		t.Errorf("revocation across a LISTEN reconnect applied after %s, want <= 1s", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !f.Listening() {
		if time.Now().After(deadline) {
			t.Fatal("not listening again 5s after the server ended the LISTEN connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFollowerAppliesNotifyAfterGapWithoutPool: a notification that
// arrives after a gap (the ones before it were lost, as when the server
// shut down while delivering them) is applied at once, even though the
// catch-up read it triggers fails (the pool cannot reach the database).
// Before, only the catch-up applied it, and the revocation waited for the
// database to be readable again.
func TestFollowerAppliesNotifyAfterGapWithoutPool(t *testing.T) {
	other, url := pgtest.New(t)
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	f, a := startFollower(t, db, url, time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for !f.Listening() {
		if time.Now().After(deadline) {
			t.Fatal("not listening within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	db.Close() // every catch-up read fails from now on; LISTEN stays up
	payload := "key:" + strings.Repeat("ab", 32)
	if _, err := other.Exec(`SELECT pg_notify($1, $2)`, postgres.InvalidationChannel,
		fmt.Sprintf("log:%d:%s", f.LastSeq()+5, payload)); err != nil {
		t.Fatal(err)
	}
	if d := a.waitFor(t, payload, 5*time.Second); d > time.Second {
		t.Errorf("notification after a gap applied %s after it was sent, want <= 1s", d)
	}
}

// TestFollowerStaleWithoutDatabase: once the log cannot be read for
// longer than maxStale, Fresh fails (readiness turns 503).
func TestFollowerStaleWithoutDatabase(t *testing.T) {
	_, url := pgtest.New(t)
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := startFollower(t, db, url, time.Second)
	db.Close() // every read fails from now on
	time.Sleep(1500 * time.Millisecond)
	err = f.Fresh(context.Background())
	if credvault.ErrorCode(err) != credvault.EUNAVAILABLE || !strings.Contains(credvault.ErrorMessage(err), "not trusted") {
		t.Fatalf("Fresh after 1.5s without the database = %v, want EUNAVAILABLE naming untrusted caches", err)
	}
}

// TestDemotedServerIs503AndConnectionDropped: a write refused because the
// server is read-only (25006, as on a demoted primary) is EUNAVAILABLE,
// and the connection that saw it is not used again.
func TestDemotedServerIs503AndConnectionDropped(t *testing.T) {
	_, url := pgtest.New(t)
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var pid int
	if err := db.Get(&pid, `SELECT pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`SET SESSION default_transaction_read_only = on`); err != nil {
		t.Fatal(err)
	}
	var ro string
	if err := db.Get(&ro, `SHOW default_transaction_read_only`); err != nil || ro != "on" {
		t.Fatalf("session not read-only: %q %v", ro, err)
	}
	store := postgres.NewStore(db)
	now := time.Now()
	_, err = store.PurgeSessions(context.Background(), now, now, now)
	if credvault.ErrorCode(err) != credvault.EUNAVAILABLE {
		t.Fatalf("write on a read-only server: %v (code %s), want EUNAVAILABLE", err, credvault.ErrorCode(err))
	}
	var pid2 int
	if err := db.Get(&pid2, `SELECT pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	if pid2 == pid {
		t.Fatal("the connection that met a read-only server is still in the pool")
	}
	if _, err := credvault.Bootstrap(context.Background(), store, apikey.Minter{Prefix: "cv"}, "ro", "o@example.com"); err != nil {
		t.Fatalf("write on a new connection: %v", err)
	}
	// The readiness check says so too (before, a plain ping passed on a
	// demoted primary), and drops the connection as well.
	if err := postgres.PingWritable(context.Background(), db); err != nil {
		t.Fatalf("PingWritable on a writable server: %v", err)
	}
	if _, err := db.Exec(`SET SESSION default_transaction_read_only = on`); err != nil {
		t.Fatal(err)
	}
	err = postgres.PingWritable(context.Background(), db)
	if credvault.ErrorCode(err) != credvault.EUNAVAILABLE || !strings.Contains(credvault.ErrorMessage(err), "does not take writes") {
		t.Fatalf("PingWritable on a read-only session: %v", err)
	}
	if err := postgres.PingWritable(context.Background(), db); err != nil {
		t.Fatalf("PingWritable on the next connection: %v", err)
	}
}

// TestNormalizeURL: both multi-host forms libpq documents work, IPv6
// literals in brackets included; a host list goes into ?host= and the port
// per host into ?port=; a list with an IPv6 literal goes into ?host=; a
// mix, or an IPv6 address without brackets, is
// refused naming the working form.
func TestNormalizeURL(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"postgres://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write",
			"postgres://u:p@h1,h2/db?connect_timeout=5&port=5432%2C5433&target_session_attrs=read-write", ""},
		{"postgres://u@h1,h2/db?port=5432,5433&target_session_attrs=read-write",
			"postgres://u@h1,h2/db?connect_timeout=5&port=5432%2C5433&target_session_attrs=read-write", ""},
		{"postgres://u@h1:6000,h2/db", "postgres://u@h1,h2/db?connect_timeout=5&port=6000%2C5432", ""},
		{"postgres://u@h:5432/db?connect_timeout=2", "postgres://u@h:5432/db?connect_timeout=2", ""},
		{"postgres://u@[::1]:5432/db", "postgres://u@[::1]:5432/db?connect_timeout=5", ""},
		// Issue 20: IPv6 literals in a host list, both forms.
		{"postgres://postgres@127.0.0.1:5432,[::1]:5432/db?target_session_attrs=read-write",
			"postgres://postgres@/db?connect_timeout=5&host=127.0.0.1%2C%3A%3A1&port=5432%2C5432&target_session_attrs=read-write", ""},
		{"postgres://postgres@[::1],127.0.0.1/db?port=5432,5432&target_session_attrs=read-write",
			"postgres://postgres@/db?connect_timeout=5&host=%3A%3A1%2C127.0.0.1&port=5432%2C5432&target_session_attrs=read-write", ""},
		{"postgres://u@[fd00::5]:6000,[2001:db8::1]/db", "postgres://u@/db?connect_timeout=5&host=fd00%3A%3A5%2C2001%3Adb8%3A%3A1&port=6000%2C5432", ""},
		{"host=a port=1", "host=a port=1", ""},
		{"postgres://u@h1:1,h2:2/db?port=1,2", "", "ports both per host and in ?port=; write postgres://user@host1:5432,[::1]:5432/db"},
		{"postgres://u@h1:1,:2/db", "", "empty host"},
		{"postgres://u@h1,::1/db", "", "IPv6 address without brackets; write postgres://user@host1:5432,[::1]:5432/db"},
		{"postgres://u@::1:5432/db", "", "IPv6 address without brackets"},
		{"postgres://u@h:0/db", "", "not a number from 1 to 65535"},
		{"postgres:///db?host=h1", "postgres:///db?connect_timeout=5&host=h1", ""},
		{"postgres://u@h1,[::1/db", "", "unclosed ["},
		{"postgres://u@h1,[h2]:5432/db", "", "not an IPv6 address"},
		{"postgres://u@h1,[::1]5432/db", "", "not an IPv6 address followed by :port"},
		{"postgres://u@h1:99999,h2/db", "", "not a number from 1 to 65535"},
		{"postgres://u@h1,h2/db?host=h3", "", "hosts both before the path and in ?host="},
	} {
		got, err := postgres.NormalizeURL(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(credvault.ErrorMessage(err), c.err) {
				t.Errorf("%s: error %v, want one containing %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s:\n got %s (%v)\nwant %s", c.in, got, err, c.want)
		}
		if _, err := pq.NewConnector(got); err != nil {
			t.Errorf("%s: lib/pq refuses the result: %v", c.in, err)
		}
		if err := postgres.CheckURL(got); err != nil && strings.HasPrefix(c.in, "postgres://") {
			t.Errorf("%s: CheckURL refuses the result: %v", c.in, err)
		}
	}
}

// TestHostListWithIPv6Connects is issue 20's IPv6 case for real: both
// libpq host-list forms with an IPv6 literal open a pool on the test
// server. PostgreSQL here listens on 127.0.0.1 only, so a byte relay on
// [::1] stands in for its IPv6 address; the first form's first host is a
// closed port, so the pool reaches the server through [::1] after
// failing over, and the relay counts the connections it carried (the
// pool's and a LISTEN connection's, as the follower opens).
func TestHostListWithIPv6Connects(t *testing.T) {
	dbURL := pgtest.NewEmpty(t)
	u, err := neturl.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	relay, carried := ipv6Relay(t, u.Host)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	userinfo := ""
	if u.User != nil {
		userinfo = u.User.String() + "@"
	}
	q := u.Query()
	q.Set("target_session_attrs", "read-write")
	for _, form := range []string{
		fmt.Sprintf("postgres://%s127.0.0.1:%d,[::1]:%d%s?%s", userinfo, dead, relay, u.Path, q.Encode()),
		fmt.Sprintf("postgres://%s[::1],127.0.0.1/%s?port=%d,%d&%s", userinfo, strings.TrimPrefix(u.Path, "/"), relay, dead, q.Encode()),
	} {
		before := carried.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		db, err := postgres.Open(ctx, form)
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", strings.Replace(form, userinfo, "", 1), err)
		}
		var name string
		err = db.GetContext(ctx, &name, `SELECT current_database()`)
		db.Close()
		cancel()
		if err != nil || "/"+name != u.Path {
			t.Fatalf("current_database() = %q (%v), want %s", name, err, u.Path)
		}
		// The follower's LISTEN connection reads the same URL.
		norm, err := postgres.NormalizeURL(form)
		if err != nil {
			t.Fatal(err)
		}
		l := pq.NewListener(norm, 10*time.Millisecond, time.Second, nil)
		err = l.Listen("cv_ipv6_host_list")
		l.Close()
		if err != nil {
			t.Fatalf("LISTEN: %v", err)
		}
		n := carried.Load() - before
		t.Logf("%s: %d connection(s) over [::1]", strings.Replace(form, userinfo, "", 1), n)
		if n < 2 {
			t.Fatalf("%d connection(s) went through [::1], want the pool's and the listener's", n)
		}
	}
}

// ipv6Relay listens on [::1] and copies each connection's bytes to and
// from target; it returns its port and the number of connections
// accepted. A relayed pair ends when either side closes (the test closes
// its pools first). It skips the test when the machine has no IPv6
// loopback.
func ipv6Relay(t *testing.T, target string) (int, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	var carried atomic.Int64
	var pairs sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done; pairs.Wait() })
	go func() {
		defer close(done)
		for in, err := ln.Accept(); err == nil; in, err = ln.Accept() {
			carried.Add(1)
			out, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				in.Close()
				continue
			}
			pairs.Add(2)
			go func() { defer pairs.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer pairs.Done(); io.Copy(in, out); in.Close() }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, &carried
}

// TestFollowerLogWentBack: when the log ends before the last change this
// instance applied (a restore, or a failover that lost the last commits),
// the follower reloads every cache rather than waiting for numbers it has
// already seen.
func TestFollowerLogWentBack(t *testing.T) {
	db, url := pgtest.New(t)
	f, a := startFollower(t, db, url, time.Minute)
	if _, err := db.Exec(`INSERT INTO key_state_log (change, payload) VALUES ('revoked', 'key:01'), ('revoked', 'key:02')`); err != nil {
		t.Fatal(err)
	}
	a.waitFor(t, "key:02", 5*time.Second)
	a.mu.Lock()
	resets := a.resets
	a.mu.Unlock()
	if _, err := db.Exec(`DELETE FROM key_state_log WHERE payload = 'key:02'`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		a.mu.Lock()
		n := a.resets
		a.mu.Unlock()
		if n > resets {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reload within 2s of the log ending before seq %d", f.LastSeq())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStateLogPrune: rows older than a day go, newer ones stay.
func TestStateLogPrune(t *testing.T) {
	db, url := pgtest.New(t)
	if _, err := db.Exec(`INSERT INTO key_state_log (change, payload, at) VALUES ('revoked', 'key:old', now() - interval '25 hours'), ('revoked', 'key:new', now() - interval '23 hours')`); err != nil {
		t.Fatal(err)
	}
	f := postgres.NewFollower(db, url, slog.New(slog.DiscardHandler), time.Minute, func(string) {}, func() {}, nil)
	if err := f.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	var left []string
	if err := db.Select(&left, `SELECT payload FROM key_state_log ORDER BY seq`); err != nil {
		t.Fatal(err)
	}
	if strings.Join(left, ",") != "key:new" {
		t.Fatalf("after Prune: %v, want [key:new]", left)
	}
}
