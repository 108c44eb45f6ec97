package main

import (
	"context"
	"runtime"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestAuthCheckAllocs: GET /v1/auth/check for a cached key allocates
// nothing per request, in the handler chain and over a keep-alive
// connection (fasthttp's loop, its deadlines, the framing guard). The
// connection's own allocations (its buffers, the guard) are spread over
// its requests. (Allocations of the process's other goroutines count too,
// so the figure is a bound; none happen per request.)
func TestAuthCheckAllocs(t *testing.T) {
	cl := newCluster(t, map[string]string{"CREDVAULT_LOG_LEVEL": "warn"})
	a := cl.start()
	_, key := cl.bootstrap(a, "allocs")
	h := a.s.http.Handler().Handler()
	var ctx fasthttp.RequestCtx
	check := func() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.SetRequestURI("/v1/auth/check")
		ctx.Request.Header.SetMethod("GET")
		ctx.Request.Header.Set("X-API-Key", key)
		h(&ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	check() // the key is cached from here on
	// The race detector makes sync.Pool drop items on purpose (fasthttp
	// and Fiber pool their per-request objects), so under it the counts
	// are not checked.
	if n := testing.AllocsPerRun(2000, check); n != 0 && !raceEnabled {
		t.Errorf("handler: %v allocations per check, want 0", n)
	}

	const requests = 5000
	serve := func(n int) *memConn {
		ln := &memListener{conn: &memConn{TCPConn: socketPair(t), req: []byte("GET /v1/auth/check HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-API-Key: " + key + "\r\n\r\n"),
			left: n, closed: make(chan struct{})}, done: make(chan struct{})}
		go func() { _ = a.s.http.Serve(context.Background(), ln) }()
		<-ln.conn.closed
		ln.Close()
		if ln.conn.bad != "" || ln.conn.answered != n {
			t.Fatalf("%d answers of %d; a bad one: %q", ln.conn.answered, n, ln.conn.bad)
		}
		return ln.conn
	}
	serve(100) // warm the pools
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	serve(requests)
	runtime.ReadMemStats(&after)
	if n := (after.Mallocs - before.Mallocs) / requests; n != 0 && !raceEnabled {
		t.Errorf("connection: %d allocations per check (%d for %d checks), want 0", n, after.Mallocs-before.Mallocs, requests)
	}
}
