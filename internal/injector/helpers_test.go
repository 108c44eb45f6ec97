package injector

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"credvault/internal/credvault"
)

// received is what a test upstream saw of one request.
type received struct {
	Method   string      `json:"method"`
	Path     string      `json:"path"`
	RawQuery string      `json:"raw_query"`
	Host     string      `json:"host"`
	Header   http.Header `json:"header"`
	Body     string      `json:"body"`
}

// upstream is a loopback test server that records every request and counts
// accepted connections, so that a test can prove nothing reached it.
type upstream struct {
	srv   *httptest.Server
	conns atomic.Int64
	mu    sync.Mutex
	reqs  []received
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// newUpstream starts an upstream on 127.0.0.1. With h nil it echoes what it
// received as JSON; otherwise h answers (after the request is recorded).
func newUpstream(t testing.TB, h http.HandlerFunc) *upstream {
	t.Helper()
	return startUpstream(t, h, nil, false)
}

// startUpstream is newUpstream with a chosen listener (nil: 127.0.0.1:0)
// and optionally TLS.
func startUpstream(t testing.TB, h http.HandlerFunc, ln net.Listener, tlsOn bool) *upstream {
	t.Helper()
	u := &upstream{}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := received{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Host: r.Host, Header: r.Header.Clone(), Body: string(body)}
		u.mu.Lock()
		u.reqs = append(u.reqs, rec)
		u.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rec)
	}))
	if ln != nil {
		u.srv.Listener.Close()
		u.srv.Listener = ln
	}
	u.srv.Listener = countingListener{Listener: u.srv.Listener, n: &u.conns}
	if tlsOn {
		u.srv.StartTLS()
	} else {
		u.srv.Start()
	}
	t.Cleanup(u.srv.Close)
	return u
}

// host is the upstream's host:port.
func (u *upstream) host() string { return u.srv.Listener.Addr().String() }

// url is the upstream's base URL.
func (u *upstream) url() string { return u.srv.URL }

func (u *upstream) requests() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]received(nil), u.reqs...)
}

func (u *upstream) last(t *testing.T) received {
	t.Helper()
	r := u.requests()
	if len(r) == 0 {
		t.Fatal("upstream received no request")
	}
	return r[len(r)-1]
}

// credential builds a credential bound to hosts, whose base_url is the
// first host over http.
func credential(placement, name, prefix string, hosts ...string) *credvault.Credential {
	c := &credvault.Credential{Placement: placement, ParamName: name, ValuePrefix: prefix, AllowedHosts: hosts}
	if len(hosts) > 0 {
		c.BaseURL = "http://" + hosts[0]
	}
	return c
}

func newRequest(t testing.TB, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// testClient is a client for loopback upstreams.
func testClient(t testing.TB, opts ClientOptions) *Client {
	t.Helper()
	opts.AllowPrivate = true
	c := NewClient(opts)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// wantError checks code and reason of err, and that its text never holds
// any form of the secret.
func wantError(t *testing.T, err error, code, reason string, secret string) *credvault.Error {
	t.Helper()
	var ce *credvault.Error
	if !errors.As(err, &ce) {
		t.Fatalf("got error %v (%T), want *credvault.Error %s/%s", err, err, code, reason)
	}
	if ce.Code != code || ce.Reason != reason {
		t.Fatalf("got %s/%s (%v), want %s/%s", ce.Code, ce.Reason, err, code, reason)
	}
	if secret != "" {
		sc := NewScrubber(credvault.NewSecret(secret))
		for _, text := range []string{err.Error(), ce.Message} {
			if strings.Contains(text, secret) || sc.String(text) != text {
				t.Fatalf("error text holds the secret: %q", text)
			}
		}
	}
	return ce
}

// readAll reads and closes a body.
func readAll(t *testing.T, r io.ReadCloser) string {
	t.Helper()
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}
