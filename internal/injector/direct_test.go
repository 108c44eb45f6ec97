package injector

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// loopbackName is a host name (the machine's own) that the system resolver
// maps to a loopback address, so that the dial goes through name resolution
// and the dialer's per-address check rather than KnownAddrs.
func loopbackName(t *testing.T) string {
	t.Helper()
	name, err := os.Hostname()
	if err != nil {
		t.Skip(err)
	}
	addrs, err := net.DefaultResolver.LookupHost(context.Background(), name)
	if err != nil || len(addrs) == 0 {
		t.Skipf("%s does not resolve here: %v", name, err)
	}
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil || !ip.Unmap().IsLoopback() {
			t.Skipf("%s resolves to %s, not only loopback", name, a)
		}
	}
	return name
}

// TestDirectDialChecksResolvedAddress: a plain-http call to a name that
// resolves to loopback is refused on a port not in AllowLoopbackPorts
// (after resolution, before any packet), and goes through on a listed one.
func TestDirectDialChecksResolvedAddress(t *testing.T) {
	name := loopbackName(t)
	up := newUpstream(t, nil)
	_, portText, _ := net.SplitHostPort(up.host())
	port, _ := strconv.ParseUint(portText, 10, 16)
	host := net.JoinHostPort(name, portText)

	refusing := NewClient(ClientOptions{AllowLoopbackPorts: []uint16{uint16(port) + 1}})
	defer refusing.CloseIdleConnections()
	_, err := refusing.Do(newRequest(t, http.MethodGet, "http://"+host+"/x", nil), credential("bearer", "", "", host), credvault.NewSecret(testValue))
	wantError(t, err, credvault.EFORBIDDEN, "egress_denied", testValue)
	if !errors.Is(err, ErrPrivateAddress) {
		t.Fatalf("got %v, want errors.Is ErrPrivateAddress", err)
	}
	if n := up.conns.Load(); n != 0 {
		t.Fatalf("the upstream accepted %d connections, want none", n)
	}

	allowing := NewClient(ClientOptions{AllowLoopbackPorts: []uint16{uint16(port)}})
	defer allowing.CloseIdleConnections()
	resp, err := allowing.Do(newRequest(t, http.MethodGet, "http://"+host+"/x", nil), credential("bearer", "", "", host), credvault.NewSecret(testValue))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp.Body)
	if resp.StatusCode != http.StatusOK || up.conns.Load() != 1 {
		t.Fatalf("status %d, %d connections; want 200 over one", resp.StatusCode, up.conns.Load())
	}
}

// TestDirectSizeCap: a declared length over the cap fails before the body,
// a chunked body fails once past it, and the connection of a failed call
// is not reused (the next call answers normally).
func TestDirectSizeCap(t *testing.T) {
	big := strings.Repeat("a", 4096)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/declared":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			io.WriteString(w, big)
		case "/chunked":
			for i := 0; i < 4; i++ {
				io.WriteString(w, big)
				w.(http.Flusher).Flush()
			}
		default:
			io.WriteString(w, "ok")
		}
	})
	client := testClient(t, ClientOptions{MaxResponseBytes: 1000})
	cred, value := credential("bearer", "", "", up.host()), credvault.NewSecret(testValue)
	_, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/declared", nil), cred, value)
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_response_too_large", testValue)

	resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/chunked", nil), cred, value)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_response_too_large", testValue)
	if len(b) > 1000 {
		t.Fatalf("read %d bytes past a cap of 1000", len(b))
	}

	before := up.conns.Load()
	resp, err = client.Do(newRequest(t, http.MethodGet, up.url()+"/small", nil), cred, value)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp.Body); got != "ok" {
		t.Fatalf("got %q", got)
	}
	if up.conns.Load() != before+1 {
		t.Fatalf("connections %d → %d: the call after a capped body must use a new connection", before, up.conns.Load())
	}
}

// TestDirectTimeoutDropsConnection: after a response-header timeout the
// connection is closed, not pooled, and the next call gets its own answer
// (not the late answer of the timed-out call).
func TestDirectTimeoutDropsConnection(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(400 * time.Millisecond)
		}
		io.WriteString(w, r.URL.Path)
	})
	client := testClient(t, ClientOptions{ResponseHeaderTimeout: 150 * time.Millisecond})
	cred, value := queryCred(up.host()), credvault.NewSecret(testValue)
	start := time.Now()
	_, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/slow", nil), cred, value)
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_timeout", testValue)
	if d := time.Since(start); d > 350*time.Millisecond {
		t.Fatalf("took %v, want about 150ms", d)
	}
	resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/fast", nil), cred, value)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp.Body); got != "/fast" {
		t.Fatalf("got %q, want the second call's own answer", got)
	}
}

// TestDirectCancelWhileStreaming: canceling the caller's context while the
// body waits on the upstream ends the read with upstream_unreachable and
// context.Canceled.
func TestDirectCancelWhileStreaming(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first ")
		w.(http.Flusher).Flush()
		sleeper(3*time.Second)(w, r)
	})
	client := testClient(t, ClientOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/s", nil).WithContext(ctx), queryCred(up.host()), credvault.NewSecret(testValue))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = io.ReadAll(resp.Body)
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_unreachable", testValue)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Fatalf("got %v after %v, want context.Canceled soon after the cancel", err, time.Since(start))
	}
}

// TestDirectStreamsEvents: server-sent events and a body delimited by the
// connection's end (HTTP/1.0 style, no length and no chunking) are both
// relayed as they come: the first event is read while the upstream still
// holds the rest. A comment line follows the first event, longer than the
// scrubber's look-behind window, which holds the last bytes back until more
// come (or the end).
func TestDirectStreamsEvents(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free()
	pad := ": " + strings.Repeat("p", 1024) + "\n\n"
	sse := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one "+testValue+"\n\n"+pad)
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "data: two\n\n")
	})
	raw := rawUpstream(t, func(conn net.Conn) {
		bufio.NewReader(conn).ReadString('\n')
		io.WriteString(conn, "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: one "+testValue+"\n\n"+pad)
		<-release
		io.WriteString(conn, "data: two\n\n")
	})
	client := testClient(t, ClientOptions{})
	for _, host := range []string{sse.host(), raw} {
		resp, err := client.Do(newRequest(t, http.MethodGet, "http://"+host+"/events", nil), credential("bearer", "", "", host), credvault.NewSecret(testValue))
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		go func() {
			br := bufio.NewReader(resp.Body)
			line, _ := br.ReadString('\n')
			got <- line
		}()
		select {
		case line := <-got:
			if !strings.HasPrefix(line, "data: one ") || strings.Contains(line, testValue) {
				t.Fatalf("first event %q: want it scrubbed", line)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: the first event did not come before the rest of the body", host)
		}
		resp.Body.Close()
	}
}

// rawUpstream serves each connection with serve, on 127.0.0.1; it returns
// the host:port.
func rawUpstream(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				serve(conn)
			}()
		}
	}()
	return ln.Addr().String()
}

// TestDirectReusesAndSurvivesIdleClose: sequential calls share one
// connection; after the upstream closes an idle connection, a POST (which
// is never resent) still succeeds, because a closed idle connection is
// found before it is used.
func TestDirectReusesAndSurvivesIdleClose(t *testing.T) {
	up := &upstream{}
	up.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		up.mu.Lock()
		up.reqs = append(up.reqs, received{Method: r.Method, Body: string(body)})
		up.mu.Unlock()
	}))
	up.srv.Config.IdleTimeout = 100 * time.Millisecond
	up.srv.Listener = countingListener{Listener: up.srv.Listener, n: &up.conns}
	up.srv.Start()
	defer up.srv.Close()
	client := testClient(t, ClientOptions{})
	cred, value := credential("bearer", "", "", up.host()), credvault.NewSecret(testValue)
	for i := 0; i < 5; i++ {
		resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/r", nil), cred, value)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp.Body)
	}
	if n := up.conns.Load(); n != 1 {
		t.Fatalf("5 sequential calls used %d connections, want 1", n)
	}
	time.Sleep(400 * time.Millisecond) // the upstream closes the idle connection
	req := newRequest(t, http.MethodPost, up.url()+"/p", strings.NewReader("body"))
	resp, err := client.Do(req, cred, value)
	if err != nil {
		t.Fatalf("POST after the upstream closed the idle connection: %v", err)
	}
	readAll(t, resp.Body)
	if got := up.last(t); got.Method != http.MethodPost || got.Body != "body" {
		t.Fatalf("upstream got %s %q", got.Method, got.Body)
	}
}

// TestDirectNoGoroutinePerConnection: plain-http calls keep no goroutine
// per upstream connection (Go's HTTP/1.1 Transport keeps two, a reader and
// a writer, and hands every call between them); at most the pool's one
// sweeper runs.
func TestDirectNoGoroutinePerConnection(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond) // so that the calls overlap and need their own connections
		io.WriteString(w, "ok")
	})
	client := testClient(t, ClientOptions{})
	cred, value := credential("bearer", "", "", up.host()), credvault.NewSecret(testValue)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/c", nil), cred, value)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
	if up.conns.Load() < 2 {
		t.Skip("the calls did not overlap on this machine")
	}
	var sb strings.Builder
	pprof.Lookup("goroutine").WriteTo(&sb, 1)
	clientSide := 0
	for _, g := range strings.Split(sb.String(), "\n\n") {
		perConn := strings.Contains(g, "net/http.(*persistConn)") ||
			(strings.Contains(g, "credvault/internal/injector.(*directTransport)") && !strings.Contains(g, ".sweep"))
		if perConn {
			n, _ := strconv.Atoi(strings.Fields(g)[0])
			clientSide += n
		}
	}
	if clientSide > 0 {
		t.Fatalf("%d client goroutines for %d idle connections, want none besides the pool's sweeper:\n%s", clientSide, up.conns.Load(), sb.String())
	}
}

// TestDirectHeaderTimeoutStartsAfterWrite: ResponseHeaderTimeout bounds the
// wait for the answer once the request is written, as in net/http, not the
// writing of a large body to an upstream that reads it slowly.
func TestDirectHeaderTimeoutStartsAfterWrite(t *testing.T) {
	slow := rawUpstream(t, func(conn net.Conn) {
		time.Sleep(500 * time.Millisecond) // the client's write blocks meanwhile
		br := bufio.NewReader(conn)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	})
	client := testClient(t, ClientOptions{ResponseHeaderTimeout: 250 * time.Millisecond})
	body := strings.Repeat("b", 32<<20)
	resp, err := client.Do(newRequest(t, http.MethodPost, "http://"+slow+"/upload", strings.NewReader(body)), queryCred(slow), credvault.NewSecret(testValue))
	if err != nil {
		t.Fatalf("a body written for longer than ResponseHeaderTimeout: %v", err)
	}
	if got := readAll(t, resp.Body); got != "ok" {
		t.Fatalf("got %q", got)
	}
}
