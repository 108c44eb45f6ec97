package injector

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"credvault/internal/bench"
	"credvault/internal/credvault"
)

// tlsClient is a client for loopback upstreams that trusts srv's
// certificate (httptest's, for 127.0.0.1, ::1 and example.com).
func tlsClient(t *testing.T, srv *httptest.Server, opts ClientOptions) *Client {
	t.Helper()
	opts.RootCAs = x509.NewCertPool()
	opts.RootCAs.AddCert(srv.Certificate())
	return testClient(t, opts)
}

// httpsCred is a bearer credential for an https:// upstream at host.
func httpsCred(host string) *credvault.Credential {
	return &credvault.Credential{Placement: "bearer", BaseURL: "https://" + host, AllowedHosts: []string{host}}
}

// pool is one non-empty pool of the direct transport's idle connections:
// how many, and how many of them TLS.
type pool struct{ n, tls int }

// pooled lists the direct transport's non-empty pools (by key; the key's
// form is not looked at).
func pooled(c *Client) []pool {
	c.direct.mu.Lock()
	defer c.direct.mu.Unlock()
	var out []pool
	for _, list := range c.direct.idle {
		p := pool{n: len(list)}
		for _, dc := range list {
			if _, ok := dc.conn.(*tls.Conn); ok {
				p.tls++
			}
		}
		if p.n > 0 {
			out = append(out, p)
		}
	}
	return out
}

// TestDirectTLSNoGoroutinePerConnection: https:// calls to an HTTP/1.1
// upstream go over the direct transport (their connections sit in its pool)
// and keep no goroutine per upstream connection (net/http's Transport keeps
// a reader and a writer per connection).
func TestDirectTLSNoGoroutinePerConnection(t *testing.T) {
	// Each answer waits until two calls are in the handler at once (or 5 s
	// pass), so that the calls overlap and need connections of their own.
	var inHandler atomic.Int32
	overlap := make(chan struct{})
	var once sync.Once
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if inHandler.Add(1) >= 2 {
			once.Do(func() { close(overlap) })
		}
		select {
		case <-overlap:
		case <-time.After(5 * time.Second):
		}
		io.WriteString(w, r.Proto)
	}, nil, true)
	client := tlsClient(t, up.srv, ClientOptions{})
	cred, value := httpsCred(up.host()), credvault.NewSecret(testValue)
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
			if got, err := readAllErr(resp.Body); got != "HTTP/1.1" || err != nil {
				t.Errorf("upstream saw %q (%v)", got, err)
			}
		}()
	}
	wg.Wait()
	if up.conns.Load() < 2 {
		t.Fatalf("the upstream accepted %d connection(s) for 8 overlapping calls", up.conns.Load())
	}
	total := 0
	for _, p := range pooled(client) {
		if p.tls != p.n {
			t.Errorf("a pool of https:// calls holds %d plain connections", p.n-p.tls)
		}
		total += p.tls
	}
	if total != int(up.conns.Load()) {
		t.Fatalf("the direct pool holds %d connections of the %d the upstream accepted", total, up.conns.Load())
	}
	var sb strings.Builder
	pprof.Lookup("goroutine").WriteTo(&sb, 1)
	for _, g := range strings.Split(sb.String(), "\n\n") {
		perConn := strings.Contains(g, "net/http.(*persistConn)") || strings.Contains(g, "crypto/tls.(*Conn)") ||
			(strings.Contains(g, "credvault/internal/injector.(*directTransport)") && !strings.Contains(g, ".sweep"))
		// The upstream's own goroutines (its server reading a connection,
		// or reading ahead after an answer) are not the client's.
		server := strings.Contains(g, "net/http.(*conn).serve") || strings.Contains(g, "net/http.(*connReader).backgroundRead")
		if perConn && !server {
			t.Fatalf("a client goroutine per connection:\n%s", g)
		}
	}
}

// TestDirectTLSResumesSessions: a new connection to an upstream already
// met resumes its TLS session (an abbreviated handshake), in the direct
// transport as in net/http's.
func TestDirectTLSResumesSessions(t *testing.T) {
	var resumed []bool
	var mu sync.Mutex
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		resumed = append(resumed, r.TLS.DidResume)
		mu.Unlock()
	}, nil, true)
	client := tlsClient(t, up.srv, ClientOptions{})
	cred := httpsCred(up.host())
	for i := 0; i < 2; i++ {
		resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/r", nil), cred, credvault.NewSecret(testValue))
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp.Body)
		client.CloseIdleConnections() // the next call needs a new connection
	}
	mu.Lock()
	defer mu.Unlock()
	if up.conns.Load() != 2 || len(resumed) != 2 || resumed[0] || !resumed[1] {
		t.Fatalf("%d connections, resumed %v; want two, the second resumed", up.conns.Load(), resumed)
	}
}

// TestDirectTLSRefusesUntrustedCertificate: an upstream whose certificate
// does not chain to a trusted CA, or does not name the host called, gets
// no request: 502-class upstream_unreachable, as over net/http.
func TestDirectTLSRefusesUntrustedCertificate(t *testing.T) {
	up := startUpstream(t, nil, nil, true)
	other, err := bench.NewTestCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(other.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	stranger := testClient(t, ClientOptions{RootCAs: pool})
	_, err = stranger.Do(newRequest(t, http.MethodGet, up.url()+"/x", nil), httpsCred(up.host()), credvault.NewSecret(testValue))
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_unreachable", testValue)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("got %v, want an unknown-authority error", err)
	}

	// Trusted CA, other name: httptest's certificate names 127.0.0.1,
	// ::1 and example.com, not localhost.
	_, port, _ := net.SplitHostPort(up.host())
	host := net.JoinHostPort("localhost", port)
	trusting := tlsClient(t, up.srv, ClientOptions{})
	_, err = trusting.Do(newRequest(t, http.MethodGet, "https://"+host+"/x", nil), httpsCred(host), credvault.NewSecret(testValue))
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_unreachable", testValue)
	var wrongName x509.HostnameError
	if !errors.As(err, &wrongName) {
		t.Fatalf("got %v, want a host name error", err)
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("the upstream got %d requests", n)
	}
}

// TestDirectTLSConnectionsKeptPerCredential: https:// connections in the
// direct pool are kept per credential value (and apart from plain http://
// ones): calls with another value never get a connection of the first.
func TestDirectTLSConnectionsKeptPerCredential(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }, nil, true)
	plain := newUpstream(t, nil)
	client := tlsClient(t, up.srv, ClientOptions{})
	values := []string{testValue, testValue, secretB, testValue, secretB}
	want := []int64{1, 1, 2, 2, 2} // connections accepted after each call
	for i, v := range values {
		resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/", nil), httpsCred(up.host()), credvault.NewSecret(v))
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		readAll(t, resp.Body)
		if n := up.conns.Load(); n != want[i] {
			t.Fatalf("call %d: %d connections, want %d (one per credential value, reused by its own calls)", i, n, want[i])
		}
	}
	resp, err := client.Do(newRequest(t, http.MethodGet, plain.url()+"/", nil), credential("bearer", "", "", plain.host()), credvault.NewSecret(testValue))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp.Body)
	pools := pooled(client)
	tlsPools := 0
	for _, p := range pools {
		if p.n != 1 {
			t.Errorf("a pool holds %d connections, want 1", p.n)
		}
		tlsPools += p.tls
	}
	if len(pools) != 3 || tlsPools != 2 {
		t.Fatalf("pools %v, want 2 of TLS connections (one per value) and 1 of plain ones", pools)
	}
}

// TestDirectTLSIdleCloseNotReused: an idle TLS connection that the upstream
// closed (close_notify, then FIN) is found by the idle check before use, so
// that a POST (never resent) goes out on a new connection.
func TestDirectTLSIdleCloseNotReused(t *testing.T) {
	up := &upstream{}
	var posted atomic.Value
	up.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPost {
			posted.Store(string(body))
		}
	}))
	up.srv.Config.IdleTimeout = 100 * time.Millisecond
	up.srv.Listener = countingListener{Listener: up.srv.Listener, n: &up.conns}
	up.srv.StartTLS()
	defer up.srv.Close()
	client := tlsClient(t, up.srv, ClientOptions{})
	cred, value := httpsCred(up.host()), credvault.NewSecret(testValue)
	for i := 0; i < 3; i++ {
		resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/r", nil), cred, value)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp.Body)
	}
	if n := up.conns.Load(); n != 1 {
		t.Fatalf("3 sequential calls used %d connections, want 1", n)
	}
	time.Sleep(400 * time.Millisecond) // the upstream closes the idle connection
	resp, err := client.Do(newRequest(t, http.MethodPost, up.url()+"/p", strings.NewReader("body")), cred, value)
	if err != nil {
		t.Fatalf("POST after the upstream closed the idle TLS connection: %v", err)
	}
	readAll(t, resp.Body)
	if got, _ := posted.Load().(string); got != "body" || up.conns.Load() != 2 {
		t.Fatalf("upstream got POST body %q over %d connections; want it over a second one", got, up.conns.Load())
	}
	if p := pooled(client); len(p) != 1 || p[0].tls != 1 {
		t.Fatalf("direct pools %v, want one TLS connection", p)
	}
}

// TestDirectTLSHandshakeDeadline: an upstream that accepts and never
// answers the ClientHello is given up on at TLSHandshakeTimeout, at the
// call's own deadline when sooner, and at once when the caller cancels.
func TestDirectTLSHandshakeDeadline(t *testing.T) {
	silent := rawUpstream(t, func(conn net.Conn) { io.Copy(io.Discard, conn) })
	req := func(ctx context.Context) *http.Request {
		return newRequest(t, http.MethodGet, "https://"+silent+"/x", nil).WithContext(ctx)
	}
	for _, tc := range []struct {
		name   string
		opts   ClientOptions
		cancel time.Duration
		reason string
	}{
		{"TLSHandshakeTimeout", ClientOptions{TLSHandshakeTimeout: 200 * time.Millisecond}, 0, "upstream_timeout"},
		{"call deadline", ClientOptions{Timeout: 200 * time.Millisecond}, 0, "upstream_timeout"},
		{"canceled", ClientOptions{}, 200 * time.Millisecond, "upstream_unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := testClient(t, tc.opts)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel > 0 {
				time.AfterFunc(tc.cancel, cancel)
			}
			start := time.Now()
			_, err := client.Do(req(ctx), httpsCred(silent), credvault.NewSecret(testValue))
			wantError(t, err, credvault.EUNAVAILABLE, tc.reason, testValue)
			if d := time.Since(start); d > 1500*time.Millisecond {
				t.Fatalf("gave up after %v, want about 200ms", d)
			}
		})
	}
}

// TestDirectTLSDialChecksAddress: the dial-time address check holds for
// https:// upstreams: a name resolving to loopback is refused on a port not
// allowed, before any packet; an allowed loopback port is reached.
func TestDirectTLSDialChecksAddress(t *testing.T) {
	name := loopbackName(t)
	up := startUpstream(t, nil, nil, true)
	_, portText, _ := net.SplitHostPort(up.host())
	port, _ := strconv.ParseUint(portText, 10, 16)
	pool := x509.NewCertPool()
	pool.AddCert(up.srv.Certificate())
	host := net.JoinHostPort(name, portText)

	refusing := NewClient(ClientOptions{RootCAs: pool, AllowLoopbackPorts: []uint16{uint16(port) + 1}})
	defer refusing.CloseIdleConnections()
	for _, h := range []string{host, up.host()} {
		_, err := refusing.Do(newRequest(t, http.MethodGet, "https://"+h+"/x", nil), httpsCred(h), credvault.NewSecret(testValue))
		wantError(t, err, credvault.EFORBIDDEN, "egress_denied", testValue)
		if !errors.Is(err, ErrPrivateAddress) {
			t.Fatalf("%s: got %v, want errors.Is ErrPrivateAddress", h, err)
		}
	}
	if n := up.conns.Load(); n != 0 {
		t.Fatalf("the upstream accepted %d connections, want none", n)
	}

	allowing := NewClient(ClientOptions{RootCAs: pool, AllowLoopbackPorts: []uint16{uint16(port)}})
	defer allowing.CloseIdleConnections()
	resp, err := allowing.Do(newRequest(t, http.MethodGet, up.url()+"/x", nil), httpsCred(up.host()), credvault.NewSecret(testValue))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp.Body)
	if resp.StatusCode != http.StatusOK || up.conns.Load() != 1 || len(pooled(allowing)) != 1 || pooled(allowing)[0].tls != 1 {
		t.Fatalf("status %d, %d connections, direct pools %v; want 200 over one direct connection", resp.StatusCode, up.conns.Load(), pooled(allowing))
	}
}

// TestHTTPSUpstreamChoosingHTTP2: an upstream that picks h2 in ALPN gets
// its calls over HTTP/2 (net/http's client) by default, the first one too,
// body intact, though the direct transport made the first connection; with
// HTTP1Only (CREDVAULT_UPSTREAM_HTTP2=false) it gets HTTP/1.1 over the
// direct transport.
func TestHTTPSUpstreamChoosingHTTP2(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Proto+" "+r.Method+" "+string(body))
		mu.Unlock()
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	host := srv.Listener.Addr().String()
	for _, tc := range []struct {
		opts  ClientOptions
		proto string
		pools int
	}{{ClientOptions{}, "HTTP/2.0", 0}, {ClientOptions{HTTP1Only: true}, "HTTP/1.1", 1}} {
		seen = nil
		client := tlsClient(t, srv, tc.opts)
		for _, m := range []string{http.MethodPost, http.MethodPost, http.MethodGet} {
			var body io.Reader
			if m == http.MethodPost {
				body = strings.NewReader("payload")
			}
			resp, err := client.Do(newRequest(t, m, srv.URL+"/x", body), httpsCred(host), credvault.NewSecret(testValue))
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp.Body)
		}
		mu.Lock()
		got := strings.Join(seen, ", ")
		mu.Unlock()
		want := tc.proto + " POST payload, " + tc.proto + " POST payload, " + tc.proto + " GET "
		if got != want || len(pooled(client)) != tc.pools {
			t.Fatalf("HTTP1Only %v: upstream saw %q, direct pools %v; want %q", tc.opts.HTTP1Only, got, pooled(client), want)
		}
	}
}
