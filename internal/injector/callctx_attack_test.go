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
	"testing"
	"time"

	"credvault/internal/credvault"
)

// TestCallDeadlineAttack: with Do's call context (no timer; the deadline
// acts on the connection), a call never outlives ClientOptions.Timeout and
// answers upstream_timeout, whether the upstream stalls before its header,
// trickles its body a byte at a time, or stalls between redirects; and a
// connection kept from a call whose deadline has long passed serves the
// next call without a spurious timeout.
func TestCallDeadlineAttack(t *testing.T) {
	trickle := func(conn net.Conn, stop time.Time) {
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
		for time.Now().Before(stop) {
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	s := newScripted(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) bool {
		switch req.URL.Path {
		case "/stall":
			time.Sleep(2 * time.Second)
			return false
		case "/trickle":
			trickle(conn, time.Now().Add(2*time.Second))
			return false
		case "/redirect":
			io.WriteString(conn, "HTTP/1.1 302 Found\r\nLocation: /trickle\r\nContent-Length: 0\r\n\r\n")
			return true
		}
		own(conn, req)
		return true
	})
	c := testClient(t, ClientOptions{Timeout: 300 * time.Millisecond})
	for _, path := range []string{"/stall", "/trickle", "/redirect"} {
		start := time.Now()
		resp, err := callAs(t, c, s, secretA, http.MethodGet, path, nil)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Fatalf("%s: the call took %v, past its 300ms timeout", path, d)
		}
		wantError(t, err, credvault.EUNAVAILABLE, "upstream_timeout", secretA)
	}

	// A kept connection's deadlines are the last call's, long past now.
	before := s.conns.Load()
	resp, err := callAs(t, c, s, secretB, http.MethodGet, "/one", nil)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp.Body)
	time.Sleep(400 * time.Millisecond)
	resp, err = callAs(t, c, s, secretB, http.MethodGet, "/two", nil)
	if err != nil {
		t.Fatalf("a call on a connection kept past the last call's deadline: %v", err)
	}
	if got := readAll(t, resp.Body); got != "own:/two:" {
		t.Fatalf("got %q", got)
	}
	if n := s.conns.Load() - before; n != 1 {
		t.Fatalf("%d connections for two calls, want the first one kept", n)
	}
}

// TestCallCancelAttack: a caller that goes away mid-body (its context
// canceled) ends the upstream call at once: the read fails as canceled
// (upstream_unreachable, errors.Is context.Canceled) and the upstream sees
// its connection closed, long before the call's timeout.
func TestCallCancelAttack(t *testing.T) {
	closed := make(chan time.Duration, 1)
	s := newScripted(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) bool {
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npart")
		start := time.Now()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		br.ReadByte() // returns when credvault closes the connection
		closed <- time.Since(start)
		return false
	})
	c := testClient(t, ClientOptions{Timeout: 10 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	req := newRequest(t, http.MethodGet, "http://"+s.host+"/x", nil).WithContext(ctx)
	resp, err := c.Do(req, credential("bearer", "", "", s.host), credvault.NewSecret(secretA))
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("reading went on %v after the caller canceled", d)
	}
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_unreachable", secretA)
	select {
	case d := <-closed:
		if d > 2*time.Second {
			t.Fatalf("the upstream connection stayed open %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream connection was never closed")
	}
}

// TestPooledHeaderAcrossCredentialsAttack: many concurrent calls with
// different credentials (header placement, so that each call's value sits
// in the pooled outbound header) to one echoing upstream: every call's
// upstream sees its own Authorization and no other, and every caller's
// answer holds its own (scrubbed) value only, including calls that
// redirect, fail or are answered 401. Run under -race.
func TestPooledHeaderAcrossCredentialsAttack(t *testing.T) {
	s := newScripted(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) bool {
		switch {
		case strings.HasPrefix(req.URL.Path, "/redir"):
			io.WriteString(conn, "HTTP/1.1 307 Temporary Redirect\r\nLocation: /echo\r\nContent-Length: 0\r\n\r\n")
			return true
		case strings.HasPrefix(req.URL.Path, "/drop"):
			return false
		case strings.HasPrefix(req.URL.Path, "/401"):
			body := "auth=" + req.Header.Get("Authorization") + ";call=" + req.Header.Get("X-Call")
			fmt.Fprintf(conn, "HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			return true
		}
		body := "auth=" + req.Header.Get("Authorization") + ";call=" + req.Header.Get("X-Call") + ";n=" + fmt.Sprint(len(req.Header["Authorization"])) + ";" + sameTenant(req)
		fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		return true
	})
	c := testClient(t, ClientOptions{})
	const tenants, callsEach = 8, 40
	secrets := make([]string, tenants)
	creds := make([]*credvault.Credential, tenants)
	for i := range secrets {
		secrets[i] = fmt.Sprintf("sk-tenant%02d-%s", i, strings.Repeat(string(rune('a'+i)), 24))
		creds[i] = credential("bearer", "", "", s.host)
	}
	var wg sync.WaitGroup
	errs := make(chan string, tenants*callsEach)
	for i := 0; i < tenants; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for k := 0; k < callsEach; k++ {
				path := []string{"/echo", "/redir", "/drop", "/401"}[k%4]
				call := fmt.Sprintf("%d-%d", i, k)
				req, _ := http.NewRequest(http.MethodGet, "http://"+s.host+path, nil)
				req.Header.Set("X-Call", call)
				req.Header.Set("X-Filler-"+call, strings.Repeat("f", k))
				resp, err := c.Do(req, creds[i], credvault.NewSecret(secrets[i]))
				if path == "/drop" {
					if err == nil {
						resp.Body.Close()
						errs <- call + ": want an error"
					}
					continue
				}
				if err != nil {
					errs <- call + ": " + err.Error()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got := string(b)
				if !strings.Contains(got, ";call="+call) || !strings.Contains(got, "auth=Bearer [REDACTED") {
					errs <- fmt.Sprintf("%s: answer %q", call, got)
				}
				if strings.Contains(got, "sk-tenant") || (path != "/401" && !strings.HasSuffix(got, ";n=1;same")) {
					errs <- fmt.Sprintf("%s: answer %q shows a value or a second Authorization", call, got)
				}
				if resp.Request != req {
					errs <- call + ": resp.Request is not the caller's request"
				}
				if len(req.Header["Authorization"]) != 0 {
					errs <- call + ": the caller's request holds Authorization"
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// sameTenant tells whether the Authorization of req is the tenant's whose
// number starts X-Call ("same"), else "other".
func sameTenant(req *http.Request) string {
	var i, k int
	fmt.Sscanf(req.Header.Get("X-Call"), "%d-%d", &i, &k)
	if req.Header.Get("Authorization") == fmt.Sprintf("Bearer sk-tenant%02d-%s", i, strings.Repeat(string(rune('a'+i)), 24)) {
		return "same"
	}
	return "other"
}

// TestCallDeadlineAttackHTTPS: on net/http's Transport (https://), which
// gets the call as a context.WithDeadline of its own, a body trickled a
// byte at a time and a stalled header both end at the call's timeout
// with upstream_timeout; a caller's cancel mid-body ends the read as
// canceled.
func TestCallDeadlineAttackHTTPS(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stall" {
			sleeper(2*time.Second)(w, r)
			return
		}
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		for stop := time.Now().Add(2 * time.Second); time.Now().Before(stop); time.Sleep(20 * time.Millisecond) {
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}, nil, true)
	client := testClient(t, ClientOptions{Timeout: 300 * time.Millisecond})
	pool := x509.NewCertPool()
	pool.AddCert(up.srv.Certificate())
	client.transport.TLSClientConfig.RootCAs = pool
	cred := &credvault.Credential{Placement: "bearer", BaseURL: up.url(), AllowedHosts: []string{up.host()}}
	for _, path := range []string{"/stall", "/trickle"} {
		start := time.Now()
		resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+path, nil), cred, credvault.NewSecret(secretA))
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Fatalf("%s: the call took %v, past its 300ms timeout", path, d)
		}
		wantError(t, err, credvault.EUNAVAILABLE, "upstream_timeout", secretA)
	}
	slow := testClient(t, ClientOptions{Timeout: 10 * time.Second})
	slow.transport.TLSClientConfig.RootCAs = pool
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := slow.Do(newRequest(t, http.MethodGet, up.url()+"/trickle", nil).WithContext(ctx), cred, credvault.NewSecret(secretA))
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("reading went on %v after the caller canceled", d)
	}
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_unreachable", secretA)
}
