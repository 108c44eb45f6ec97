package injector

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// TestDirectWaitEarlyAnswerThenClose: the same upstream closing the
// connection right after its answer (an overloaded server's 503).
func TestDirectWaitEarlyAnswerThenClose(t *testing.T) {
	host := rawUpstream(t, func(conn net.Conn) {
		io.WriteString(conn, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy")
	})
	c := testClient(t, ClientOptions{ResponseHeaderTimeout: 3 * time.Second})
	slowDial(c, 50*time.Millisecond)
	start := time.Now()
	resp, err := c.Do(newRequest(t, http.MethodGet, "http://"+host+"/x", nil), queryCred(host), credvault.NewSecret(testValue))
	d := time.Since(start)
	if err != nil {
		t.Logf("after %v: %v", d, err)
		if d > time.Second {
			t.Fatalf("error after %v", d)
		}
		return
	}
	got := readAll(t, resp.Body)
	if got != "busy" || d > time.Second {
		t.Fatalf("got %d %q after %v", resp.StatusCode, got, d)
	}
}

// TestDirectWaitShapes: answers in many small pieces, after 1xx
// informational responses, and after a pause, each come back promptly, on
// fresh and on reused connections.
func TestDirectWaitShapes(t *testing.T) {
	s := newScripted(t, func(conn net.Conn, _ *bufio.Reader, req *http.Request) bool {
		body := "own:" + req.URL.Path + ":" + req.Header.Get("X-Call")
		full := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		switch req.URL.Path {
		case "/pieces":
			for i := 0; i < len(full); i++ {
				if _, err := conn.Write([]byte{full[i]}); err != nil {
					return false
				}
				if i%8 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		case "/informational":
			io.WriteString(conn, "HTTP/1.1 100 Continue\r\n\r\n")
			time.Sleep(5 * time.Millisecond)
			io.WriteString(conn, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
			time.Sleep(5 * time.Millisecond)
			io.WriteString(conn, full)
		case "/informational-at-once":
			io.WriteString(conn, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n"+full)
		case "/late":
			time.Sleep(100 * time.Millisecond)
			io.WriteString(conn, full)
		default:
			io.WriteString(conn, full)
		}
		return true
	})
	c := testClient(t, ClientOptions{ResponseHeaderTimeout: 3 * time.Second})
	for i, path := range []string{"/now", "/pieces", "/informational", "/informational-at-once", "/late", "/now", "/pieces", "/informational"} {
		req := newRequest(t, http.MethodGet, "http://"+s.host+path, nil)
		req.Header.Set("X-Call", fmt.Sprint(i))
		start := time.Now()
		resp, err := c.Do(req, credential("bearer", "", "", s.host), credvault.NewSecret(secretA))
		if err != nil {
			t.Fatalf("%s: %v after %v", path, err, time.Since(start))
		}
		got := readAll(t, resp.Body)
		if want := fmt.Sprintf("own:%s:%d", path, i); got != want || time.Since(start) > time.Second {
			t.Fatalf("%s: got %q after %v, want %q at once", path, got, time.Since(start), want)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

// TestDirectWaitHeaderTimeoutAndCancel: a silent upstream is given up on
// at ResponseHeaderTimeout (not much sooner or later), a cancel during the
// wait ends the call at once with context.Canceled, and the next call
// gets its own answer on a new connection.
func TestDirectWaitHeaderTimeoutAndCancel(t *testing.T) {
	s := newScripted(t, func(conn net.Conn, _ *bufio.Reader, req *http.Request) bool {
		if req.URL.Path == "/silent" {
			time.Sleep(1500 * time.Millisecond)
			io.WriteString(conn, echoAuth(req))
			return true
		}
		own(conn, req)
		return true
	})
	c := testClient(t, ClientOptions{ResponseHeaderTimeout: 300 * time.Millisecond})
	// A connection to reuse.
	resp, err := callAs(t, c, s, secretA, http.MethodGet, "/warm", nil)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp.Body)
	start := time.Now()
	_, err = callAs(t, c, s, secretA, http.MethodGet, "/silent", nil)
	d := time.Since(start)
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_timeout", secretA)
	if d < 280*time.Millisecond || d > 700*time.Millisecond {
		t.Fatalf("timed out after %v, want about 300ms", d)
	}
	wantOwn(t, c, s, "after a header timeout")

	// The cancel, on a client whose header timeout (1.2 s) comes long
	// after it, and before the upstream's answer (1.5 s): a call that
	// ends well before either was ended by the cancel, with room for a
	// loaded machine's late timers.
	c = testClient(t, ClientOptions{ResponseHeaderTimeout: 1200 * time.Millisecond})
	wantOwn(t, c, s, "before a cancel") // B's connection, kept
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	req := newRequest(t, http.MethodGet, "http://"+s.host+"/silent", nil).WithContext(ctx)
	_, err = c.Do(req, credential("bearer", "", "", s.host), credvault.NewSecret(secretB)) // on B's kept connection
	d = time.Since(start)
	if err == nil || !errors.Is(err, context.Canceled) || d > 700*time.Millisecond {
		t.Fatalf("canceled call: %v after %v, want context.Canceled soon after 100ms", err, d)
	}
	conns := s.conns.Load()
	wantOwn(t, c, s, "after a cancel")
	if s.conns.Load() != conns+1 {
		t.Fatalf("connections %d → %d: the canceled call's connection was kept", conns, s.conns.Load())
	}
}

// TestDirectWaitStaleConnection: an upstream that closes each connection
// right after its answer (without Connection: close), or a moment later:
// GETs are answered (sent again on a new connection when needed), and a
// POST without GetBody is never sent twice.
func TestDirectWaitStaleConnection(t *testing.T) {
	for _, linger := range []time.Duration{0, time.Millisecond, 20 * time.Millisecond} {
		s := newScripted(t, func(conn net.Conn, _ *bufio.Reader, req *http.Request) bool {
			own(conn, req)
			time.Sleep(linger)
			return false
		})
		c := testClient(t, ClientOptions{ResponseHeaderTimeout: 2 * time.Second})
		for i := 0; i < 20; i++ {
			method, body := http.MethodGet, io.Reader(nil)
			if i%2 == 1 {
				method, body = http.MethodPost, io.NopCloser(strings.NewReader("p")) // no GetBody
			}
			start := time.Now()
			resp, err := callAs(t, c, s, secretA, method, fmt.Sprintf("/%d", i), body)
			if err != nil {
				if method == http.MethodPost && time.Since(start) < time.Second {
					continue // a POST on a stale connection may fail; never hang
				}
				t.Fatalf("linger %v, call %d %s: %v after %v", linger, i, method, err, time.Since(start))
			}
			got := readAll(t, resp.Body)
			if want := fmt.Sprintf("own:/%d:", i); got != want || time.Since(start) > time.Second {
				t.Fatalf("linger %v, call %d: got %q after %v", linger, i, got, time.Since(start))
			}
			time.Sleep(time.Duration(i%3) * time.Millisecond)
		}
		s.mu.Lock()
		seen := map[string]int{}
		for _, r := range s.seen {
			seen[r]++
			if strings.HasPrefix(r, "POST") && seen[r] > 1 {
				t.Fatalf("linger %v: %s sent %d times", linger, r, seen[r])
			}
		}
		s.mu.Unlock()
	}
}

// TestDirectWaitBufferBoundary: requests whose head or head and body sum
// to about the writer's 4 KiB (below, at and above it), and heads over
// 4 KiB, with and without GetBody, HEAD included: each reaches the
// upstream whole and is answered at once, on one connection.
func TestDirectWaitBufferBoundary(t *testing.T) {
	s := newScripted(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) bool {
		b, _ := io.ReadAll(req.Body)
		body := fmt.Sprintf("%s:%s:%d:%d", req.Method, req.URL.Path, len(b), len(req.Header.Get("X-Pad")))
		if req.Method == http.MethodHead {
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))
			return true
		}
		fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		return true
	})
	c := testClient(t, ClientOptions{ResponseHeaderTimeout: 2 * time.Second})
	cred, value := credential("bearer", "", "", s.host), credvault.NewSecret(secretA)
	for pad := 3850; pad < 4150; pad++ {
		for _, kind := range []string{"GET", "HEAD", "POST", "POST-GetBody", "POST-body"} {
			var req *http.Request
			bodyLen := 0
			switch kind {
			case "GET", "HEAD":
				req = newRequest(t, kind, "http://"+s.host+"/g", nil)
				req.Header.Set("X-Pad", strings.Repeat("p", pad))
			case "POST":
				req = newRequest(t, http.MethodPost, "http://"+s.host+"/p", nil)
				req.Header.Set("X-Pad", strings.Repeat("p", pad))
			case "POST-GetBody":
				bodyLen = pad
				req = newRequest(t, http.MethodPost, "http://"+s.host+"/p", strings.NewReader(strings.Repeat("b", bodyLen)))
			case "POST-body":
				bodyLen = pad
				req = newRequest(t, http.MethodPost, "http://"+s.host+"/p", io.NopCloser(strings.NewReader(strings.Repeat("b", bodyLen))))
				req.ContentLength = int64(bodyLen)
			}
			padLen := 0
			if req.Header.Get("X-Pad") != "" {
				padLen = pad
			}
			start := time.Now()
			resp, err := c.Do(req, cred, value)
			if err != nil {
				t.Fatalf("%s pad %d: %v after %v", kind, pad, err, time.Since(start))
			}
			got := readAll(t, resp.Body)
			want := fmt.Sprintf("%s:%s:%d:%d", req.Method, req.URL.Path, bodyLen, padLen)
			if kind == "HEAD" {
				want = ""
			}
			if got != want || time.Since(start) > time.Second {
				t.Fatalf("%s pad %d: got %q after %v, want %q", kind, pad, got, time.Since(start), want)
			}
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

// TestDirectWaitTLS: sequential calls over TLS 1.2 and 1.3 (session
// tickets sent after the handshake, resumed connections) are each answered
// at once, with a pause between some calls so that tickets and the like
// come in while the connection is idle.
func TestDirectWaitTLS(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/late" {
				time.Sleep(50 * time.Millisecond)
			}
			io.WriteString(w, "own:"+r.URL.Path)
		}))
		srv.TLS = &tls.Config{MaxVersion: v, NextProtos: []string{"http/1.1"}}
		srv.StartTLS()
		c := tlsClient(t, srv, ClientOptions{ResponseHeaderTimeout: 2 * time.Second})
		host := srv.Listener.Addr().String()
		for i := 0; i < 30; i++ {
			if i%10 == 5 {
				c.CloseIdleConnections() // a new, resumed connection
			}
			if i%4 == 3 {
				time.Sleep(10 * time.Millisecond)
			}
			path := []string{"/a", "/late", "/b"}[i%3]
			start := time.Now()
			resp, err := c.Do(newRequest(t, http.MethodGet, "https://"+host+path, nil), httpsCred(host), credvault.NewSecret(testValue))
			if err != nil {
				t.Fatalf("TLS %x call %d: %v after %v", v, i, err, time.Since(start))
			}
			got := readAll(t, resp.Body)
			if got != "own:"+path || time.Since(start) > time.Second {
				t.Fatalf("TLS %x call %d: got %q after %v", v, i, got, time.Since(start))
			}
		}
		srv.Close()
	}
}

// TestDirectWaitReusedWindow: on a reused connection, the upstream closes
// it (an idle close) after the idle check and before the request is
// written (here while an httptrace hook runs, between the two): a GET and
// a POST with an Idempotency-Key are sent again on a new connection, a
// plain POST fails, each promptly rather than at the header timeout.
func TestDirectWaitReusedWindow(t *testing.T) {
	kick := make(chan struct{})
	var conns atomic.Int64
	host := rawUpstream(t, func(conn net.Conn) {
		conns.Add(1)
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			own(conn, req)
			if req.URL.Path == "/warm" {
				<-kick // the idle connection's next request is about to be written
				return // closed
			}
		}
	})
	c := testClient(t, ClientOptions{ResponseHeaderTimeout: 3 * time.Second})
	cred, value := credential("bearer", "", "", host), credvault.NewSecret(testValue)
	for i, kind := range []string{"GET", "POST-idempotent", "POST"} {
		resp, err := c.Do(newRequest(t, http.MethodGet, "http://"+host+"/warm", nil), cred, value)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp.Body)
		var kicked atomic.Bool
		trace := &httptrace.ClientTrace{WroteHeaders: func() {
			if kicked.CompareAndSwap(false, true) {
				kick <- struct{}{}
				time.Sleep(30 * time.Millisecond) // the upstream's close is in
			}
		}}
		ctx := httptrace.WithClientTrace(context.Background(), trace)
		var req *http.Request
		switch kind {
		case "GET":
			req = newRequest(t, http.MethodGet, "http://"+host+"/x", nil)
		default:
			req = newRequest(t, http.MethodPost, "http://"+host+"/x", strings.NewReader("body"))
			if kind == "POST-idempotent" {
				req.Header.Set("Idempotency-Key", "k")
			}
		}
		start := time.Now()
		resp, err = c.Do(req.WithContext(ctx), cred, value)
		d := time.Since(start)
		if !kicked.Load() {
			t.Fatalf("%s: the hook did not run", kind)
		}
		if d > time.Second {
			t.Fatalf("%s: %v after %v, want an answer or an error at once", kind, err, d)
		}
		if kind == "POST" {
			if err == nil {
				t.Fatalf("POST on a closed connection: answered %q, want an error (never sent twice)", readAll(t, resp.Body))
			}
			t.Logf("POST: %v after %v", err, d)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v after %v", kind, err, d)
		}
		if got := readAll(t, resp.Body); got != "own:/x:" {
			t.Fatalf("%s: got %q", kind, got)
		}
		if n := conns.Load(); n != int64(2*i+2) {
			t.Logf("%s: %d connections", kind, n)
		}
	}
}
