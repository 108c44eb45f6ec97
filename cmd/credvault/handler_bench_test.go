package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// BenchmarkAuthCheckHandler measures the server side of GET /v1/auth/check
// for a cached key, without sockets, next to a bare Fiber route: the ratio
// is what credvault's own code costs per verification.
func BenchmarkAuthCheckHandler(b *testing.B) {
	cl := newCluster(b, map[string]string{"CREDVAULT_LOG_LEVEL": "warn"})
	a := cl.start()
	_, key := cl.bootstrap(a, "bench")
	bare := fiber.New(fiber.Config{DisableStartupMessage: true})
	bare.Get("/ok", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusOK) })

	run := func(b *testing.B, h fasthttp.RequestHandler, path string, withKey bool, nginxShaped ...bool) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var ctx fasthttp.RequestCtx
			for pb.Next() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.SetRequestURI(path)
				ctx.Request.Header.SetMethod("GET")
				if len(nginxShaped) > 0 {
					// What the auth_request recipe sends: HEAD, the scope
					// query, its own Host, the original URI and the
					// client's headers.
					ctx.Request.Header.SetMethod("HEAD")
					ctx.Request.Header.SetHost("credvault")
					ctx.Request.Header.Set("X-Original-URI", "/v1/balance?direct=1")
					ctx.Request.Header.Set("User-Agent", "fasthttp")
				}
				if withKey {
					ctx.Request.Header.Set("X-API-Key", key)
				}
				h(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("status %d", ctx.Response.StatusCode())
				}
			}
		})
	}
	b.Run("bare-route", func(b *testing.B) { run(b, bare.Handler(), "/ok", false) })
	b.Run("auth-check", func(b *testing.B) { run(b, a.s.http.Handler().Handler(), "/v1/auth/check", true) })
	b.Run("auth-check-nginx", func(b *testing.B) { run(b, a.s.http.Handler().Handler(), "/v1/auth/check?scope=", true, true) })
}

// BenchmarkAuthCheckConn is GET /v1/auth/check for a cached key served
// the whole way a connection is, without the kernel: fasthttp's
// connection loop (its read, idle and write deadlines, on a real socket),
// the framing guard, Fiber, the middleware and the handler, one keep-alive
// client sending its next request once the last response is written. The
// bare Fiber route (default configuration, no guard) is the floor. It
// reports the process's CPU per request beside the wall time.
func BenchmarkAuthCheckConn(b *testing.B) {
	cl := newCluster(b, map[string]string{"CREDVAULT_LOG_LEVEL": "warn"})
	a := cl.start()
	_, key := cl.bootstrap(a, "bench")
	bare := fiber.New(fiber.Config{DisableStartupMessage: true})
	bare.Get("/ok", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusOK) })
	sock := socketPair(b)
	run := func(b *testing.B, serve func(net.Listener), req string) {
		b.ReportAllocs()
		ln := &memListener{conn: &memConn{TCPConn: sock, req: []byte(req), left: b.N, closed: make(chan struct{})}}
		ln.done = make(chan struct{})
		start := processCPUNanos(b)
		b.ResetTimer()
		go serve(ln)
		<-ln.conn.closed
		b.StopTimer()
		b.ReportMetric(float64(processCPUNanos(b)-start)/float64(b.N), "cpu-ns/op")
		ln.Close()
		if ln.conn.bad != "" || ln.conn.answered != b.N {
			b.Fatalf("%d answers of %d; a bad one: %q", ln.conn.answered, b.N, ln.conn.bad)
		}
	}
	b.Run("bare-route", func(b *testing.B) {
		run(b, func(ln net.Listener) { _ = bare.Listener(ln) }, "GET /ok HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n")
	})
	b.Run("auth-check", func(b *testing.B) {
		run(b, func(ln net.Listener) { _ = a.s.http.Serve(context.Background(), ln) },
			"GET /v1/auth/check HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-API-Key: "+key+"\r\n\r\n")
	})
}

// socketPair is a connected loopback socket, whose deadlines memConn uses.
func socketPair(b testing.TB) *net.TCPConn {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	peer, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(); peer.Close() })
	return c.(*net.TCPConn)
}

// memConn is a keep-alive client in memory: each Read returns the request
// again once the last response was written, until left are sent, then the
// end of the stream. Deadlines and addresses are the real socket's, which
// is never read or written.
type memConn struct {
	*net.TCPConn
	req      []byte
	left     int
	waiting  bool // a request was sent, its response not yet written
	answered int
	bad      string
	closed   chan struct{}
	once     sync.Once
}

func (c *memConn) Read(p []byte) (int, error) {
	if c.left == 0 || c.waiting {
		return 0, io.EOF
	}
	c.left--
	c.waiting = true
	return copy(p, c.req), nil
}

func (c *memConn) Write(p []byte) (int, error) {
	if !bytes.HasPrefix(p, []byte("HTTP/1.1 200 ")) && c.bad == "" {
		c.bad = string(p)
	}
	c.answered++
	c.waiting = false
	return len(p), nil
}

func (c *memConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// memListener accepts conn once; the next Accept waits for it to close (or
// the listener to), then ends the serving.
type memListener struct {
	conn     *memConn
	accepted bool
	done     chan struct{}
	once     sync.Once
}

func (l *memListener) Accept() (net.Conn, error) {
	if !l.accepted {
		l.accepted = true
		return l.conn, nil
	}
	select {
	case <-l.conn.closed:
	case <-l.done:
	}
	return nil, io.EOF
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return l.conn.LocalAddr() }
