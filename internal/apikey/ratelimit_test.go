package apikey

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"credvault/internal/credvault"
)

// redisURL is where the Redis tests connect: REDIS_URL, or the local server.
func redisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// newRedisClient returns a client for the test Redis and fails the test when
// Redis does not answer: the shared limiter is what multi-instance
// deployments run, so its tests must not be skipped silently.
func newRedisClient(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(redisURL())
	if err != nil {
		t.Fatalf("REDIS_URL %q: %v", redisURL(), err)
	}
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s does not answer (%v): start Redis (redis-server on 127.0.0.1:6379) or set REDIS_URL", redisURL(), err)
	}
	return rdb
}

// testKeyPrefix returns a Redis key prefix no other test run uses and
// deletes every key under it when the test ends.
func testKeyPrefix(t testing.TB, rdb *redis.Client) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	prefix := "credvault-test:ratelimit:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("cleaning up Redis keys %s*: %v", prefix, err)
		}
	})
	return prefix
}

// newTestRedisLimiter returns a RedisLimiter on the test Redis whose fallback
// fails the test: these tests check the shared path, not the fallback.
func newTestRedisLimiter(t *testing.T) Limiter {
	t.Helper()
	rdb := newRedisClient(t)
	l := NewRedisLimiter(rdb, testKeyPrefix(t, rdb), failingLimiter{t}, nil)
	// A loaded machine running -race can exceed 50ms; the timeout has its
	// own test.
	l.timeout = 5 * time.Second
	return l
}

// failingLimiter fails the test when asked: a Redis-backed test that reaches
// it did not measure Redis.
type failingLimiter struct{ t *testing.T }

func (f failingLimiter) Allow(context.Context, string, Limit) (Decision, error) {
	f.t.Errorf("fallback limiter used: Redis did not answer")
	return Decision{}, credvault.Errorf(credvault.EUNAVAILABLE, "no fallback")
}

func allow(t *testing.T, l Limiter, id string, lim Limit) Decision {
	t.Helper()
	d, err := l.Allow(context.Background(), id, lim)
	if err != nil {
		t.Fatalf("Allow(%q, %+v): %v", id, lim, err)
	}
	return d
}

// testLimiterSemantics is the contract both limiters meet: a full burst of
// Requests with Remaining counting down, a refusal whose RetryAfter is at
// most one interval, and exactly one more request once that time passed.
func testLimiterSemantics(t *testing.T, newLimiter func(*testing.T) Limiter) {
	tests := []struct {
		name string
		lim  Limit
	}{
		{"5 per second", Limit{Requests: 5, Window: time.Second}},
		{"10 per 500ms", Limit{Requests: 10, Window: 500 * time.Millisecond}},
		{"1 per 100ms", Limit{Requests: 1, Window: 100 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter(t)
			id := "key-" + strings.ReplaceAll(tt.name, " ", "-")
			interval := tt.lim.Window / time.Duration(tt.lim.Requests)
			for i := 0; i < tt.lim.Requests; i++ {
				d := allow(t, l, id, tt.lim)
				if !d.Allowed || d.Limit != tt.lim.Requests || d.Remaining != tt.lim.Requests-1-i || d.RetryAfter != 0 {
					t.Fatalf("request %d: got %+v, want allowed, limit %v, remaining %v, no retry-after", i+1, d, tt.lim.Requests, tt.lim.Requests-1-i)
				}
				if d.Reset <= 0 || d.Reset > tt.lim.Window {
					t.Fatalf("request %d: got reset %v, want in (0, %v]", i+1, d.Reset, tt.lim.Window)
				}
			}
			d := allow(t, l, id, tt.lim)
			if d.Allowed || d.Remaining != 0 || d.Limit != tt.lim.Requests {
				t.Fatalf("request over the limit: got %+v, want refused with remaining 0", d)
			}
			if d.RetryAfter <= 0 || d.RetryAfter > interval {
				t.Fatalf("request over the limit: got retry-after %v, want in (0, %v]", d.RetryAfter, interval)
			}
			if d.Reset < d.RetryAfter || d.Reset > tt.lim.Window {
				t.Fatalf("request over the limit: got reset %v, want in [%v, %v]", d.Reset, d.RetryAfter, tt.lim.Window)
			}

			// A quarter interval past RetryAfter one token is back, not two.
			time.Sleep(d.RetryAfter + interval/4)
			if d := allow(t, l, id, tt.lim); !d.Allowed || d.Remaining != 0 {
				t.Fatalf("after waiting retry-after: got %+v, want allowed with remaining 0", d)
			}
			if d := allow(t, l, id, tt.lim); d.Allowed {
				t.Fatalf("right after the refill: got %+v, want refused", d)
			}
		})
	}

	t.Run("unlimited", func(t *testing.T) {
		l := newLimiter(t)
		for _, lim := range []Limit{{}, {Requests: 0, Window: time.Second}} {
			for i := 0; i < 100; i++ {
				if d := allow(t, l, "unlimited", lim); d != (Decision{Allowed: true}) {
					t.Fatalf("request %d: got %+v, want allowed with no limit", i+1, d)
				}
			}
		}
	})

	t.Run("changed limit", func(t *testing.T) {
		l := newLimiter(t)
		small := Limit{Requests: 2, Window: time.Hour}
		large := Limit{Requests: 3, Window: time.Hour}
		for i := 0; i < 2; i++ {
			allow(t, l, "changing", small)
		}
		if d := allow(t, l, "changing", small); d.Allowed {
			t.Fatalf("third request on 2/h: got %+v, want refused", d)
		}
		for i := 0; i < 3; i++ {
			if d := allow(t, l, "changing", large); !d.Allowed || d.Remaining != 2-i || d.Limit != 3 {
				t.Fatalf("request %d on the new 3/h limit: got %+v, want allowed with remaining %v", i+1, d, 2-i)
			}
		}
		if d := allow(t, l, "changing", large); d.Allowed {
			t.Fatalf("fourth request on 3/h: got %+v, want refused", d)
		}
		// Another id is untouched by all this.
		if d := allow(t, l, "other", small); !d.Allowed || d.Remaining != 1 {
			t.Fatalf("other id: got %+v, want allowed with remaining 1", d)
		}
	})

	t.Run("invalid limit", func(t *testing.T) {
		l := newLimiter(t)
		for _, lim := range []Limit{
			{Requests: -1, Window: time.Second},
			{Requests: 1},
			{Requests: 1, Window: -time.Second},
			{Requests: 1, Window: MaxWindow + time.Nanosecond},
			{Requests: 2, Window: time.Nanosecond},
		} {
			d, err := l.Allow(context.Background(), "invalid", lim)
			if got := credvault.ErrorCode(err); got != credvault.EINVALID || d.Allowed {
				t.Fatalf("Allow(%+v): got %+v, code %q, want refused with %v", lim, d, got, credvault.EINVALID)
			}
		}
	})
}

func TestLocalLimiter(t *testing.T) {
	testLimiterSemantics(t, func(*testing.T) Limiter { return NewLocalLimiter() })
}

func TestRedisLimiter(t *testing.T) {
	testLimiterSemantics(t, newTestRedisLimiter)
}

// TestRedisLimiterSharedAcrossInstances plays two credvault instances, each
// with its own Redis client and local fallback: they share one limit.
func TestRedisLimiterSharedAcrossInstances(t *testing.T) {
	a, b := newRedisClient(t), newRedisClient(t)
	prefix := testKeyPrefix(t, a)
	instances := []*RedisLimiter{
		NewRedisLimiter(a, prefix, failingLimiter{t}, nil),
		NewRedisLimiter(b, prefix, failingLimiter{t}, nil),
	}
	for _, l := range instances {
		l.timeout = 5 * time.Second
	}
	lim := Limit{Requests: 10, Window: time.Hour}
	for i := 0; i < 10; i++ {
		if d := allow(t, instances[i%2], "shared", lim); !d.Allowed || d.Remaining != 9-i {
			t.Fatalf("request %d (instance %d): got %+v, want allowed with remaining %v", i+1, i%2, d, 9-i)
		}
	}
	for i := range instances {
		if d := allow(t, instances[i], "shared", lim); d.Allowed {
			t.Fatalf("request 11 on instance %d: got %+v, want refused", i, d)
		}
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// syncBuffer is a log sink safe for the limiter's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRedisLimiterFallbackWhenUnreachable(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: closedPort(t), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	var logs syncBuffer
	fallback := NewLocalLimiter()
	l := NewRedisLimiter(rdb, "credvault-test:unreachable:", fallback, slog.New(slog.NewTextHandler(&logs, nil)))

	lim := Limit{Requests: 3, Window: time.Hour}
	id := "key-0123456789"
	for i := 0; i < 3; i++ {
		if d := allow(t, l, id, lim); !d.Allowed || d.Remaining != 2-i {
			t.Fatalf("request %d: got %+v, want allowed with remaining %v", i+1, d, 2-i)
		}
	}
	if d := allow(t, l, id, lim); d.Allowed || d.RetryAfter <= 0 {
		t.Fatalf("request 4: got %+v, want refused by the fallback", d)
	}
	// The answers came from, and were counted in, the fallback.
	if d := allow(t, fallback, id, lim); d.Allowed {
		t.Fatalf("fallback after 4 requests: got %+v, want refused", d)
	}

	out := logs.String()
	if n := strings.Count(out, "Redis unavailable"); n != 1 {
		t.Fatalf("got %d outage warnings, want 1 (rate-limited):\n%s", n, out)
	}
	if strings.Contains(out, id) {
		t.Fatalf("outage warning names the key id:\n%s", out)
	}
}

// TestRedisLimiterFallbackWhenSlow points the limiter at a server that
// accepts connections and never answers, with a client that does not apply
// context deadlines to reads: the limiter's own deadline must still hold.
func TestRedisLimiterFallbackWhenSlow(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The server swallows whatever it is sent until the test closes it.
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	rdb := redis.NewClient(&redis.Options{
		Addr:        ln.Addr().String(),
		ReadTimeout: 2 * time.Second,
		MaxRetries:  -1,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	l := NewRedisLimiter(rdb, "credvault-test:slow:", nil, slog.New(slog.NewTextHandler(&syncBuffer{}, nil)))

	start := time.Now()
	d := allow(t, l, "slow", Limit{Requests: 1, Window: time.Hour})
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Fatalf("Allow took %v with a silent Redis, want about %v", elapsed, redisTimeout)
	}
	if !d.Allowed || d.Remaining != 0 {
		t.Fatalf("got %+v, want allowed by the fallback", d)
	}
}

func TestLocalLimiterConcurrent(t *testing.T) {
	testLimiterConcurrent(t, NewLocalLimiter())
}

func TestRedisLimiterConcurrent(t *testing.T) {
	testLimiterConcurrent(t, newTestRedisLimiter(t))
}

// testLimiterConcurrent sends many concurrent requests for a few ids: each
// id gets exactly its limit, however the requests interleave.
func testLimiterConcurrent(t *testing.T, l Limiter) {
	const (
		ids        = 4
		goroutines = 32
		perG       = 25
		requests   = 50
	)
	lim := Limit{Requests: requests, Window: time.Hour}
	var allowed [ids]atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perG; i++ {
				id := (g + i) % ids
				d, err := l.Allow(context.Background(), "concurrent-"+strconv.Itoa(id), lim)
				if err != nil {
					t.Errorf("Allow: %v", err)
					return
				}
				if d.Allowed {
					allowed[id].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	for id := range allowed {
		if got := allowed[id].Load(); got != requests {
			t.Errorf("id %d: got %v allowed, want %v", id, got, requests)
		}
	}
}

// TestLocalLimiterEviction checks that buckets which have refilled are
// dropped, busy ones are kept, and the total stays bounded.
func TestLocalLimiterEviction(t *testing.T) {
	const perShard = 16
	l := newLocalLimiter(perShard)
	idle := Limit{Requests: 1, Window: 10 * time.Millisecond}
	busy := Limit{Requests: 1, Window: time.Hour}
	for i := 0; i < 500; i++ {
		allow(t, l, "idle-"+strconv.Itoa(i), idle)
	}
	allow(t, l, "busy", busy)
	time.Sleep(20 * time.Millisecond)
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		s.sweep(time.Now(), perShard)
		s.mu.Unlock()
	}
	if got := l.size(); got != 1 {
		t.Fatalf("after sweeping: got %v buckets, want 1", got)
	}
	// The busy bucket kept its state: it is still empty.
	if d := allow(t, l, "busy", busy); d.Allowed {
		t.Fatalf("busy id after the sweep: got %+v, want refused", d)
	}

	const many = localShards * perShard * 10
	for i := 0; i < many; i++ {
		allow(t, l, "many-"+strconv.Itoa(i), busy)
	}
	if got, limit := l.size(), localShards*perShard; got > limit {
		t.Fatalf("after %d ids: got %v buckets, want at most %v", many, got, limit)
	}
}

// TestLocalLimiterChurn races requests against sweeps that evict busy
// buckets (a tiny bound forces them) to show, under -race, that evicted
// buckets are never used and nothing deadlocks.
func TestLocalLimiterChurn(t *testing.T) {
	l := newLocalLimiter(2)
	lim := Limit{Requests: 1000, Window: time.Hour}
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				d, err := l.Allow(context.Background(), "churn-"+strconv.Itoa((g*31+i)%500), lim)
				if err != nil || !d.Allowed {
					t.Errorf("got %+v, %v, want allowed", d, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got, limit := l.size(), localShards*2; got > limit {
		t.Fatalf("got %v buckets, want at most %v", got, limit)
	}
}

// size counts the buckets held, for tests.
func (l *LocalLimiter) size() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}

func BenchmarkLocalLimiterAllow(b *testing.B) {
	l := NewLocalLimiter()
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = "key-" + strconv.Itoa(i)
	}
	lim := Limit{Requests: 1000, Window: time.Second}
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)) * 7919
		for pb.Next() {
			i++
			if _, err := l.Allow(ctx, ids[i%len(ids)], lim); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkLocalLimiterAllowOneKey(b *testing.B) {
	l := NewLocalLimiter()
	lim := Limit{Requests: 1000, Window: time.Second}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Allow(ctx, "hot-key", lim); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkRedisLimiterAllow(b *testing.B) {
	rdb := newRedisClient(b)
	l := NewRedisLimiter(rdb, testKeyPrefix(b, rdb), nil, nil)
	lim := Limit{Requests: 1000, Window: time.Second}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Allow(ctx, "bench-key", lim); err != nil {
			b.Fatal(err)
		}
	}
}
