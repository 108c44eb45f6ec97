package httpapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// TestLazyDeadlineApply: the socket's deadline is never later than the one
// asked for, and at most deadlineSlack earlier; no deadline (the zero time)
// is always passed on.
func TestLazyDeadlineApply(t *testing.T) {
	t0 := time.Now()
	var d lazyDeadline
	var calls []time.Time
	set := func(tm time.Time) error { calls = append(calls, tm); return nil }
	steps := []struct {
		want  time.Time
		calls int // calls to set so far
	}{
		{time.Time{}, 0},                                   // none asked, none set
		{t0.Add(30 * time.Second), 1},                      // first deadline
		{t0.Add(30*time.Second + 500*time.Millisecond), 1}, // within the slack after it: kept
		{t0.Add(29 * time.Second), 2},                      // earlier: applied
		{t0.Add(29*time.Second + deadlineSlack), 3},        // a whole slack later: applied
		{time.Time{}, 4},                                   // cleared
		{time.Time{}, 4},
		{t0.Add(-time.Second), 5}, // in the past: applied
	}
	for i, st := range steps {
		d.want = st.want
		if err := d.apply(set); err != nil {
			t.Fatal(err)
		}
		if len(calls) != st.calls {
			t.Fatalf("step %d: %d calls to set, want %d", i, len(calls), st.calls)
		}
		if d.set.IsZero() != st.want.IsZero() || d.set.After(st.want) || st.want.Sub(d.set) >= deadlineSlack {
			t.Fatalf("step %d: socket deadline %v for %v asked", i, d.set, st.want)
		}
	}
	failing := errors.New("closed")
	d.want = t0.Add(time.Hour)
	if err := d.apply(func(time.Time) error { return failing }); err != failing {
		t.Fatalf("apply: %v, want the setter's error", err)
	}
	if !d.set.Equal(t0.Add(-time.Second)) {
		t.Fatalf("a failed set changed the recorded deadline to %v", d.set)
	}
}

// pipe is a connected loopback pair: the server side wrapped in a
// framingConn, and the client side.
func pipe(t *testing.T) (*framingConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return &framingConn{Conn: server}, client
}

// TestFramingConnDeadlines: the deadlines fasthttp sets through the
// framing guard still end reads and writes that wait.
func TestFramingConnDeadlines(t *testing.T) {
	const req = "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"
	p := make([]byte, readBufferSize)

	t.Run("read times out", func(t *testing.T) {
		c, _ := pipe(t)
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(p); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read: %v, want a deadline error", err)
		}
	})
	t.Run("an earlier deadline replaces a later one", func(t *testing.T) {
		c, client := pipe(t)
		_ = c.SetReadDeadline(time.Now().Add(time.Hour))
		_, _ = client.Write([]byte(req))
		if n, err := c.Read(p); err != nil || string(p[:n]) != req {
			t.Fatalf("read: %q %v", p[:n], err)
		}
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(p); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read: %v, want a deadline error", err)
		}
	})
	t.Run("a cleared deadline no longer ends a read", func(t *testing.T) {
		c, client := pipe(t)
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_ = c.SetReadDeadline(time.Time{})
		go func() {
			time.Sleep(150 * time.Millisecond)
			_, _ = client.Write([]byte(req))
		}()
		if n, err := c.Read(p); err != nil || string(p[:n]) != req {
			t.Fatalf("read: %q %v", p[:n], err)
		}
	})
	t.Run("SetDeadline covers reads and writes", func(t *testing.T) {
		c, _ := pipe(t)
		_ = c.SetDeadline(time.Now().Add(-time.Second))
		if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\n\r\n")); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write: %v, want a deadline error", err)
		}
		if _, err := c.Read(p); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read: %v, want a deadline error", err)
		}
	})
	t.Run("write deadline", func(t *testing.T) {
		c, _ := pipe(t)
		_ = c.SetWriteDeadline(time.Now().Add(-time.Second))
		if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\n\r\n")); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write: %v, want a deadline error", err)
		}
	})
}

// deadlineCounter counts the deadlines set on the sockets it accepts.
type deadlineCounter struct {
	net.Listener
	calls atomic.Int64
}

func (l *deadlineCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, calls: &l.calls}, nil
}

type countedConn struct {
	net.Conn
	calls *atomic.Int64
}

func (c *countedConn) SetDeadline(t time.Time) error {
	c.calls.Add(1)
	return c.Conn.SetDeadline(t)
}

func (c *countedConn) SetReadDeadline(t time.Time) error {
	c.calls.Add(1)
	return c.Conn.SetReadDeadline(t)
}

func (c *countedConn) SetWriteDeadline(t time.Time) error {
	c.calls.Add(1)
	return c.Conn.SetWriteDeadline(t)
}

// TestKeepAliveDeadlinesAreCoalesced: a keep-alive connection's sockets
// see their deadlines move about once a second, not three times a request
// (fasthttp's idle, read and write timeouts), and every request is
// answered.
func TestKeepAliveDeadlinesAreCoalesced(t *testing.T) {
	s := NewServer(Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &deadlineCounter{Listener: ln}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, counted) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	const requests = 300
	start := time.Now()
	for i := range requests {
		if _, err := conn.Write([]byte("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	// The first request sets the read and write deadlines, the second the
	// idle one; after that each direction moves at most once per
	// deadlineSlack of elapsed time.
	slacks := int64(time.Since(start)/deadlineSlack) + 1
	if n := counted.calls.Load(); n > 3+2*slacks {
		t.Fatalf("%d deadlines set for %d keep-alive requests in %v, want at most %d", n, requests, time.Since(start), 3+2*slacks)
	}
}
