package injector

import (
	"bufio"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// Secrets of two tenants whose credentials are bound to the same upstream,
// so that their calls share the direct transport's pool.
const (
	secretA = "sk-tenantA-0123456789abcdefghijkl"
	secretB = "sk-tenantB-9876543210zyxwvutsrqpo"
)

// scripted is a raw HTTP/1.1 upstream on 127.0.0.1: it reads requests one
// after another on each connection and lets answer write whatever bytes it
// wants (answer returns false to close the connection). It counts
// connections and requests.
type scripted struct {
	host  string
	conns atomic.Int64
	reqs  atomic.Int64
	mu    sync.Mutex
	seen  []string // method+" "+path of every request read
}

func newScripted(t *testing.T, answer func(conn net.Conn, br *bufio.Reader, req *http.Request) bool) *scripted {
	t.Helper()
	s := &scripted{}
	s.host = rawUpstream(t, func(conn net.Conn) {
		s.conns.Add(1)
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			s.reqs.Add(1)
			s.mu.Lock()
			s.seen = append(s.seen, req.Method+" "+req.URL.Path)
			s.mu.Unlock()
			if !answer(conn, br, req) {
				return
			}
		}
	})
	return s
}

// own is the ordinary answer: the request's path and its X-Call header.
func own(conn net.Conn, req *http.Request) {
	io.Copy(io.Discard, req.Body)
	body := "own:" + req.URL.Path + ":" + req.Header.Get("X-Call")
	fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// echoAuth is a response that repeats the caller's Authorization header,
// as a buggy upstream's debug page would.
func echoAuth(req *http.Request) string {
	body := "echo:" + req.Header.Get("Authorization")
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

func callAs(t *testing.T, c *Client, s *scripted, secret, method, path string, body io.Reader) (*http.Response, error) {
	t.Helper()
	return c.Do(newRequest(t, method, "http://"+s.host+path, body), credential("bearer", "", "", s.host), credvault.NewSecret(secret))
}

// wantOwn checks that tenant B's next call gets its own answer, never the
// bytes the upstream sent after tenant A's response (which hold A's
// secret, unscrubbed for B).
func wantOwn(t *testing.T, c *Client, s *scripted, label string) {
	t.Helper()
	resp, err := callAs(t, c, s, secretB, http.MethodGet, "/b", nil)
	if err != nil {
		t.Fatalf("%s: B's call: %v", label, err)
	}
	got := readAll(t, resp.Body)
	if strings.Contains(got, "tenantA") || got != "own:/b:" {
		t.Fatalf("%s: B received %q, want its own answer", label, got)
	}
}

// TestDirectAttackDesync: an upstream that writes more than one response's
// worth of bytes for A's request (a second response, bytes after the
// Content-Length body, a body after 204/304 or after a HEAD answer), at
// once or a moment later while the connection is idle, never makes B's
// next call on the same host read them.
func TestDirectAttackDesync(t *testing.T) {
	cases := map[string]func(req *http.Request) (first, extra string){
		"two responses": func(req *http.Request) (string, string) {
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", echoAuth(req)
		},
		"bytes after Content-Length": func(req *http.Request) (string, string) {
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "tenantA-trailing-garbage"
		},
		"204 with a body": func(req *http.Request) (string, string) {
			return "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", echoAuth(req)
		},
		"304 with a body": func(req *http.Request) (string, string) {
			return "HTTP/1.1 304 Not Modified\r\n\r\n", echoAuth(req)
		},
		"HEAD answered with a body": func(req *http.Request) (string, string) {
			e := echoAuth(req)
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(e)), e
		},
	}
	for name, script := range cases {
		for _, delay := range []time.Duration{0, 30 * time.Millisecond} {
			label := fmt.Sprintf("%s, extra after %v", name, delay)
			s := newScripted(t, func(conn net.Conn, _ *bufio.Reader, req *http.Request) bool {
				if !strings.HasPrefix(req.URL.Path, "/a") {
					own(conn, req)
					return true
				}
				first, extra := script(req)
				if delay == 0 {
					io.WriteString(conn, first+extra)
				} else {
					io.WriteString(conn, first)
					time.Sleep(delay)
					io.WriteString(conn, extra)
				}
				return true
			})
			c := testClient(t, ClientOptions{})
			method := http.MethodGet
			if strings.HasPrefix(name, "HEAD") {
				method = http.MethodHead
			}
			resp, err := callAs(t, c, s, secretA, method, "/a", nil)
			if err != nil {
				t.Fatalf("%s: A's call: %v", label, err)
			}
			readAll(t, resp.Body)
			time.Sleep(100 * time.Millisecond) // the late bytes are in by now
			wantOwn(t, c, s, label)
		}
	}
}

// TestDirectAttackFraming: a body cut short of its Content-Length, a
// "Connection: close" the upstream does not act on, an HTTP/1.0 answer
// without keep-alive and a body delimited by the connection's end: none of
// these connections is used again (B gets its own answer on a new
// connection even though the upstream keeps the socket open and writes A's
// secret into it).
func TestDirectAttackFraming(t *testing.T) {
	cases := map[string]string{
		"short body":         "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial",
		"Connection: close":  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
		"HTTP/1.0":           "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"close-delimited":    "HTTP/1.1 200 OK\r\n\r\nok",
		"101 not asked":      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
		"truncated chunking": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n",
	}
	for name, first := range cases {
		s := newScripted(t, func(conn net.Conn, _ *bufio.Reader, req *http.Request) bool {
			if !strings.HasPrefix(req.URL.Path, "/a") {
				own(conn, req)
				return true
			}
			io.WriteString(conn, first)
			if strings.Contains(name, "short") || strings.Contains(name, "truncated") {
				time.Sleep(50 * time.Millisecond)
				// then a response that looks whole to anyone still reading
				io.WriteString(conn, echoAuth(req))
				return true
			}
			time.Sleep(150 * time.Millisecond) // B's call comes now
			io.WriteString(conn, echoAuth(req))
			return true
		})
		c := testClient(t, ClientOptions{})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		resp, err := c.Do(newRequest(t, http.MethodGet, "http://"+s.host+"/a", nil).WithContext(ctx), credential("bearer", "", "", s.host), credvault.NewSecret(secretA))
		if err == nil {
			io.ReadAll(resp.Body) // ends by the deadline at worst
			resp.Body.Close()
		}
		cancel()
		wantOwn(t, c, s, name)
		if n := s.conns.Load(); n != 2 {
			t.Fatalf("%s: %d connections, want B's call on a new one", name, n)
		}
	}
}

// TestDirectAttackInformational: five 1xx answers (100 and 103) before the
// final one are read past, as in net/http; a sixth fails the call, and its
// connection is not used again.
func TestDirectAttackInformational(t *testing.T) {
	for _, n := range []int{5, 6} {
		s := newScripted(t, func(conn net.Conn, _ *bufio.Reader, req *http.Request) bool {
			if req.URL.Path != "/a" {
				own(conn, req)
				return true
			}
			for i := 0; i < n; i++ {
				if i%2 == 0 {
					io.WriteString(conn, "HTTP/1.1 100 Continue\r\n\r\n")
				} else {
					io.WriteString(conn, "HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n")
				}
			}
			io.WriteString(conn, echoAuth(req))
			return true
		})
		c := testClient(t, ClientOptions{})
		resp, err := callAs(t, c, s, secretA, http.MethodGet, "/a", nil)
		if n == 5 {
			if err != nil {
				t.Fatalf("5 informational answers: %v", err)
			}
			if got := readAll(t, resp.Body); strings.Contains(got, secretA) || !strings.HasPrefix(got, "echo:") {
				t.Fatalf("got %q, want the final answer, scrubbed", got)
			}
			continue
		}
		wantError(t, err, credvault.EUNAVAILABLE, "upstream_unreachable", secretA)
		wantOwn(t, c, s, "after 6 informational answers")
		if s.conns.Load() != 2 {
			t.Fatalf("%d connections, want a new one after the failed call", s.conns.Load())
		}
	}
}

// TestDirectAttackNoDoubleSend: on a reused connection the upstream reads a
// request and then closes it without a word, or answers early (before the
// body is all there) and closes. A POST or PUT is never sent again; a GET
// (with a body that GetBody can give again) or a POST carrying an
// Idempotency-Key is sent again once, on a new connection (net/http's
// rule).
func TestDirectAttackNoDoubleSend(t *testing.T) {
	body := strings.Repeat("x", 4<<20)
	for _, mode := range []string{"silent close", "early answer"} {
		for _, tc := range []struct {
			method string
			idem   bool
			want   int64 // requests with path /p the upstream read
		}{{http.MethodPost, false, 1}, {http.MethodPut, false, 1}, {http.MethodPost, true, 2}, {http.MethodGet, false, 2}} {
			label := fmt.Sprintf("%s %s idem=%v", mode, tc.method, tc.idem)
			var p atomic.Int64
			s := newScripted(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) bool {
				if req.URL.Path != "/p" {
					own(conn, req)
					return true
				}
				if p.Add(1) > 1 { // the replay, on a new connection
					own(conn, req)
					return true
				}
				if mode == "early answer" {
					io.WriteString(conn, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				} else {
					io.Copy(io.Discard, req.Body)
				}
				if tc, ok := conn.(*net.TCPConn); ok {
					tc.SetLinger(0) // reset, whatever is still unread
				}
				return false
			})
			c := testClient(t, ClientOptions{})
			resp, err := callAs(t, c, s, secretA, http.MethodGet, "/warm", nil)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp.Body)
			req := newRequest(t, tc.method, "http://"+s.host+"/p", strings.NewReader(body))
			if tc.idem {
				req.Header.Set("Idempotency-Key", "k1")
			}
			resp, err = c.Do(req, credential("bearer", "", "", s.host), credvault.NewSecret(secretA))
			if err == nil {
				readAll(t, resp.Body)
			}
			if got := p.Load(); got != tc.want && (mode == "silent close" || got > tc.want) {
				t.Fatalf("%s: upstream read %d copies of the request, want %d (err %v)", label, got, tc.want, err)
			}
		}
	}
}

// TestDirectAttackCancelAndRace: many tenants call one upstream at once,
// a third of them canceling at a random point (before the answer, inside
// the body); every completed call gets the answer to its own request, and
// the connection of a canceled call is never used again.
func TestDirectAttackCancelAndRace(t *testing.T) {
	s := newScripted(t, func(conn net.Conn, _ *bufio.Reader, req *http.Request) bool {
		id := req.Header.Get("X-Call")
		if strings.HasSuffix(req.URL.Path, "/slow") {
			body := "own:" + req.URL.Path + ":" + id
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:5])
			time.Sleep(20 * time.Millisecond)
			_, err := io.WriteString(conn, body[5:])
			return err == nil
		}
		if strings.HasSuffix(req.URL.Path, "/late") {
			time.Sleep(20 * time.Millisecond)
		}
		own(conn, req)
		return true
	})
	c := testClient(t, ClientOptions{})
	const workers, calls = 24, 30
	var wg sync.WaitGroup
	var done, canceled atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			secret := fmt.Sprintf("sk-tenant%02d-0123456789abcdefghij", w)
			for i := 0; i < calls; i++ {
				id := fmt.Sprintf("%d-%d", w, i)
				path := []string{"/fast", "/late", "/slow"}[i%3]
				ctx, cancel := context.WithCancel(context.Background())
				if (w+i)%3 == 0 {
					time.AfterFunc(time.Duration(i%4)*5*time.Millisecond, cancel)
				}
				req := newRequest(t, http.MethodGet, "http://"+s.host+path, nil).WithContext(ctx)
				req.Header.Set("X-Call", id)
				resp, err := c.Do(req, credential("bearer", "", "", s.host), credvault.NewSecret(secret))
				if err != nil {
					cancel()
					canceled.Add(1)
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				cancel()
				if err != nil {
					canceled.Add(1)
					continue
				}
				if want := "own:" + path + ":" + id; string(b) != want {
					t.Errorf("call %s got %q, want %q", id, b, want)
					return
				}
				done.Add(1)
			}
		}(w)
	}
	wg.Wait()
	t.Logf("%d calls answered, %d canceled, %d connections, %d requests", done.Load(), canceled.Load(), s.conns.Load(), s.reqs.Load())
	if done.Load() == 0 || canceled.Load() == 0 {
		t.Fatalf("answered %d, canceled %d: want both", done.Load(), canceled.Load())
	}
}

// TestDirectAttackPoolKey: a connection is kept per host:port as written
// in the URL, so a connection dialed for one name is not used for another
// name or an address literal of the same port, and a Client whose dialer
// refuses the port never gets a connection another Client had dialed.
func TestDirectAttackPoolKey(t *testing.T) {
	s := newScripted(t, func(conn net.Conn, _ *bufio.Reader, req *http.Request) bool {
		own(conn, req)
		return true
	})
	_, port, _ := net.SplitHostPort(s.host)
	c := testClient(t, ClientOptions{})
	hosts := []string{s.host, "localhost:" + port, s.host, "127.0.0.1.:" + port, "localhost:" + port}
	want := []int64{1, 2, 2, 3, 3} // connections after each call
	for i, host := range hosts {
		resp, err := c.Do(newRequest(t, http.MethodGet, "http://"+host+"/b", nil), credential("bearer", "", "", host), credvault.NewSecret(secretB))
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		readAll(t, resp.Body)
		if n := s.conns.Load(); n != want[i] {
			t.Fatalf("call %d to %s: %d connections, want %d", i, host, n, want[i])
		}
	}
	strict := NewClient(ClientOptions{})
	defer strict.CloseIdleConnections()
	_, err := strict.Do(newRequest(t, http.MethodGet, "http://"+s.host+"/b", nil), credential("bearer", "", "", s.host), credvault.NewSecret(secretB))
	wantError(t, err, credvault.EFORBIDDEN, "egress_denied", secretB)
}

// TestDirectAttackHeaderInjection: CR or LF in a credential value (header,
// custom header, cookie, basic) or in a caller's header value or name is
// refused before any byte is sent, and the error never holds the value.
func TestDirectAttackHeaderInjection(t *testing.T) {
	s := newScripted(t, func(conn net.Conn, _ *bufio.Reader, req *http.Request) bool {
		own(conn, req)
		return true
	})
	c := testClient(t, ClientOptions{})
	evil := "sk-injected-0123456789\r\nX-Smuggled: 1\r\n\r\nGET /other HTTP/1.1"
	for _, cred := range []*credvault.Credential{
		credential("bearer", "", "", s.host),
		credential("header", "X-Api-Key", "", s.host),
	} {
		_, err := c.Do(newRequest(t, http.MethodGet, "http://"+s.host+"/b", nil), cred, credvault.NewSecret(evil))
		if err == nil {
			t.Fatalf("%s: a value with CR LF was sent", cred.Placement)
		}
		if strings.Contains(err.Error(), "sk-injected") {
			t.Fatalf("error holds the value: %v", err)
		}
	}
	for _, h := range [][2]string{{"X-A", "v\r\nX-Smuggled: 1"}, {"X-A", "v\nX-Smuggled: 1"}, {"X-A\r\nX-Smuggled", "1"}} {
		req := newRequest(t, http.MethodGet, "http://"+s.host+"/b", nil)
		req.Header[h[0]] = []string{h[1]}
		if _, err := c.Do(req, credential("bearer", "", "", s.host), credvault.NewSecret(secretB)); err == nil {
			t.Fatalf("header %q: %q was sent", h[0], h[1])
		}
	}
	// The same, handed to the direct transport itself (past Do's checks).
	for _, h := range [][2]string{{"Authorization", "Bearer " + secretB + "\r\nX-Smuggled: 1"}, {"X-A\nB", "1"}} {
		req := newRequest(t, http.MethodGet, "http://"+s.host+"/b", nil)
		req.Header[h[0]] = []string{h[1]}
		_, err := c.direct.RoundTrip(req)
		if err == nil || strings.Contains(err.Error(), secretB) {
			t.Fatalf("direct transport, header %q: got %v, want a refusal without the value", h[0], err)
		}
	}
	if n := s.conns.Load(); n != 0 {
		t.Fatalf("the upstream accepted %d connections, want none", n)
	}
	// A control byte in the request target is refused by Request.Write,
	// after the dial (as in net/http), so nothing but the connection.
	req := newRequest(t, http.MethodGet, "http://"+s.host+"/b", nil)
	req.URL.RawQuery = "a=1 HTTP/1.1\r\nX-Smuggled: 1\r\n"
	if _, err := c.Do(req, credential("bearer", "", "", s.host), credvault.NewSecret(secretB)); err == nil {
		t.Fatal("a query with CR LF was sent")
	}
	if n := s.reqs.Load(); n != 0 {
		t.Fatalf("the upstream read %d requests, want none", n)
	}
}

// TestDirectAttackScrubStreamAndTrailers: the value split across chunks of
// a chunked body, in a trailer, and in a body delimited by the connection's
// end is scrubbed on the direct transport.
func TestDirectAttackScrubStreamAndTrailers(t *testing.T) {
	half := len(secretA) / 2
	s := newScripted(t, func(conn net.Conn, _ *bufio.Reader, req *http.Request) bool {
		switch req.URL.Path {
		case "/chunked":
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Echo\r\n\r\n%x\r\n%s\r\n", half+3, "a: "+secretA[:half])
			time.Sleep(20 * time.Millisecond)
			fmt.Fprintf(conn, "%x\r\n%s\r\n0\r\nX-Echo: %s\r\n\r\n", len(secretA)-half, secretA[half:], secretA)
			return true
		default:
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nb: "+secretA[:half])
			time.Sleep(20 * time.Millisecond)
			io.WriteString(conn, secretA[half:]+" end")
			return false
		}
	})
	c := testClient(t, ClientOptions{})
	for _, path := range []string{"/chunked", "/close"} {
		resp, err := callAs(t, c, s, secretA, http.MethodGet, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, resp.Body)
		if strings.Contains(got, secretA) || strings.Contains(got, secretA[:half]) || len(got) < 4 {
			t.Fatalf("%s: body %q", path, got)
		}
		for k, vv := range resp.Trailer {
			for _, v := range vv {
				if strings.Contains(v, secretA) {
					t.Fatalf("%s: trailer %s holds the value", path, k)
				}
			}
		}
		if path == "/chunked" && resp.Trailer.Get("X-Echo") == "" {
			t.Fatalf("trailer missing: %v", resp.Trailer)
		}
	}
}

// TestDirectAttackMalformedEcho: an upstream whose malformed answer repeats
// the credential (as the status line, a header line without a colon, a
// 1xx line, a chunk size) makes the call fail with errors that never hold
// the value, and the connection is not used again.
func TestDirectAttackMalformedEcho(t *testing.T) {
	for _, shape := range []string{
		"%s\r\n\r\n",
		"HTTP/1.1 200 OK\r\n%s\r\n\r\n",
		"HTTP/1.1 %s\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\n%s\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: x%s\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\n",
	} {
		s := newScripted(t, func(conn net.Conn, _ *bufio.Reader, req *http.Request) bool {
			if req.URL.Path != "/a" {
				own(conn, req)
				return true
			}
			fmt.Fprintf(conn, shape, req.Header.Get("Authorization"))
			return true
		})
		c := testClient(t, ClientOptions{})
		resp, err := callAs(t, c, s, secretA, http.MethodGet, "/a", nil)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			t.Fatalf("%q: no error", shape)
		}
		wantError(t, err, credvault.EUNAVAILABLE, "upstream_unreachable", secretA)
		wantOwn(t, c, s, shape)
	}
}

// TestDirectAttackCallerSmugglesThroughUpstream: an upstream that answers a
// POST early (401) without reading its body, then parses that body as the
// next request, lets a malicious caller M queue a request of its own on the
// connection. With the pool shared between credentials, tenant B's next
// call would read the answer to M's smuggled request, and M's call after
// that would read B's answer (B's secret, not scrubbed for M). Connections
// are kept per credential, so the desync stays on M's own connections.
func TestDirectAttackCallerSmugglesThroughUpstream(t *testing.T) {
	s := newScripted(t, func(conn net.Conn, _ *bufio.Reader, req *http.Request) bool {
		switch req.URL.Path {
		case "/reject": // early answer, body left unread on the connection
			io.WriteString(conn, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
		case "/smuggled":
			time.Sleep(150 * time.Millisecond)
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nspoofed-by-M")
		default:
			time.Sleep(150 * time.Millisecond)
			io.WriteString(conn, echoAuth(req))
		}
		return true
	})
	c := testClient(t, ClientOptions{})
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	credM, credB := credential("bearer", "", "", s.host), credential("bearer", "", "", s.host)
	credM.ID, credB.ID = "cred_M", "cred_B"
	resp, err := c.Do(newRequest(t, http.MethodPost, "http://"+s.host+"/reject", strings.NewReader(smuggled)), credM, credvault.NewSecret(secretA))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp.Body)
	resp, err = c.Do(newRequest(t, http.MethodGet, "http://"+s.host+"/b", nil), credB, credvault.NewSecret(secretB))
	if err != nil {
		t.Fatal(err)
	}
	gotB := readAll(t, resp.Body)
	resp, err = c.Do(newRequest(t, http.MethodGet, "http://"+s.host+"/m", nil), credM, credvault.NewSecret(secretA))
	gotM := ""
	if err == nil {
		gotM = readAll(t, resp.Body)
	}
	if strings.Contains(gotB, "spoofed") || !strings.HasPrefix(gotB, "echo:") || strings.Contains(gotM, "tenantB") {
		t.Fatalf("B read %q, then M read %q; want B's own answer, and never B's secret for M", gotB, gotM)
	}
}

// TestHTTPSConnectionsKeptPerCredential: calls to an https:// upstream
// (net/http's transport, not the direct one) share kept-alive connections
// only with calls made with the same credential value, as the direct
// transport's do, so that an upstream that loses HTTP/1.1's framing cannot
// hand one credential's answer to another's caller there either.
func TestHTTPSConnectionsKeptPerCredential(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }, nil, true)
	client := testClient(t, ClientOptions{})
	pool := x509.NewCertPool()
	pool.AddCert(up.srv.Certificate())
	client.transport.TLSClientConfig.RootCAs = pool
	cred := &credvault.Credential{Placement: "bearer", BaseURL: up.url(), AllowedHosts: []string{up.host()}}
	values := []string{testValue, testValue, secretB, testValue, secretB}
	want := []int64{1, 1, 2, 2, 2} // connections accepted after each call
	for i, v := range values {
		resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/", nil), cred, credvault.NewSecret(v))
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		readAll(t, resp.Body)
		if n := up.conns.Load(); n != want[i] {
			t.Fatalf("call %d: %d connections, want %d (one per credential value, reused by its own calls)", i, n, want[i])
		}
	}
}
