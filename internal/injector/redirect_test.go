package injector

import (
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"credvault/internal/credvault"
)

// redirector answers every request with status and Location loc (computed
// per request, so it may point at the upstream itself).
func redirector(status int, loc func(r *http.Request) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", loc(r))
		w.WriteHeader(status)
	}
}

// holdsCredential reports whether any part of a received request carries
// the value in any encoding.
func holdsCredential(r received, value string) bool {
	sc := NewScrubber(credvault.NewSecret(value))
	if sc.String(r.RawQuery) != r.RawQuery || sc.String(r.Path) != r.Path || sc.String(r.Body) != r.Body {
		return true
	}
	for _, vs := range r.Header {
		for _, v := range vs {
			if sc.String(v) != v {
				return true
			}
		}
	}
	return false
}

func placementCreds(hosts ...string) map[string]*credvault.Credential {
	return map[string]*credvault.Credential{
		"header": credential("header", "X-Api-Key", "Token ", hosts...),
		"query":  credential("query", "api_key", "", hosts...),
		"bearer": credential("bearer", "", "", hosts...),
	}
}

func TestRedirectToOtherAllowedHostDropsCredential(t *testing.T) {
	b := newUpstream(t, nil)
	// A sends the caller on to B, copying a query-placed key into B's query
	// string the way a careless upstream might.
	a := newUpstream(t, redirector(http.StatusFound, func(r *http.Request) string {
		loc := b.url() + "/landing?x=1"
		if k := r.URL.Query().Get("api_key"); k != "" {
			loc += "&api_key=" + url.QueryEscape(k)
		}
		return loc
	}))
	client := testClient(t, ClientOptions{})
	for placement, cred := range placementCreds(a.host(), b.host()) {
		t.Run(placement, func(t *testing.T) {
			req := newRequest(t, http.MethodGet, a.url()+"/start", nil)
			req.Header.Set("Cookie", "session=1")
			resp, err := client.Do(req, cred, credvault.NewSecret(testValue))
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got status %d, want 200 from B", resp.StatusCode)
			}
			got := b.last(t)
			if got.Path != "/landing" || got.RawQuery != "x=1" {
				t.Fatalf("B got %s?%s, want /landing?x=1", got.Path, got.RawQuery)
			}
			if holdsCredential(got, testValue) {
				t.Fatalf("B received the credential: %+v", got)
			}
			for _, h := range []string{"X-Api-Key", "Authorization", "Cookie"} {
				if v := got.Header.Get(h); v != "" {
					t.Fatalf("B received %s: %q", h, v)
				}
			}
			if !holdsCredential(a.last(t), testValue) {
				t.Fatal("A did not receive the credential")
			}
		})
	}
}

func TestRedirectWithValueInPathIsNotFollowed(t *testing.T) {
	b := newUpstream(t, nil)
	a := newUpstream(t, redirector(http.StatusFound, func(r *http.Request) string {
		return b.url() + "/keys/" + url.PathEscape(testValue)
	}))
	client := testClient(t, ClientOptions{})
	resp, err := client.Do(newRequest(t, http.MethodGet, a.url()+"/", nil), credential("bearer", "", "", a.host(), b.host()), credvault.NewSecret(testValue))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp.Body)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("got %d, want the 302 back", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); strings.Contains(loc, testValue) || !strings.Contains(loc, redactedMark) {
		t.Fatalf("Location not scrubbed: %q", loc)
	}
	if n := b.conns.Load(); n != 0 {
		t.Fatalf("B got %d connections, want none", n)
	}
}

func TestRedirectOutsideAllowedHostsIsNotFollowed(t *testing.T) {
	c := newUpstream(t, nil)
	a := newUpstream(t, redirector(http.StatusTemporaryRedirect, func(r *http.Request) string {
		return c.url() + "/steal"
	}))
	client := testClient(t, ClientOptions{})
	for placement, cred := range placementCreds(a.host()) {
		t.Run(placement, func(t *testing.T) {
			resp, err := client.Do(newRequest(t, http.MethodGet, a.url()+"/", nil), cred, credvault.NewSecret(testValue))
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp.Body)
			if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != c.url()+"/steal" {
				t.Fatalf("got %d %q, want the 307 as it was", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
	if n, conns := len(c.requests()), c.conns.Load(); n != 0 || conns != 0 {
		t.Fatalf("C got %d requests on %d connections, want none", n, conns)
	}
}

func TestRedirectSameHostReappliesCredential(t *testing.T) {
	var a *upstream //lint:ignore S1021 the handler below refers to a, so it is declared first
	a = newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			// The Location carries a stale key; the injected one must win.
			w.Header().Set("Location", "/new?page=2&api_key=stale")
			w.WriteHeader(http.StatusMovedPermanently)
			return
		}
		io.WriteString(w, "ok")
	})
	client := testClient(t, ClientOptions{})
	for placement, cred := range placementCreds(a.host()) {
		t.Run(placement, func(t *testing.T) {
			resp, err := client.Do(newRequest(t, http.MethodGet, a.url()+"/old", nil), cred, credvault.NewSecret(testValue))
			if err != nil {
				t.Fatal(err)
			}
			if body := readAll(t, resp.Body); body != "ok" {
				t.Fatalf("got body %q", body)
			}
			got := a.last(t)
			if got.Path != "/new" {
				t.Fatalf("got path %s, want /new", got.Path)
			}
			switch placement {
			case "header":
				if vs := got.Header.Values("X-Api-Key"); len(vs) != 1 || vs[0] != "Token "+testValue {
					t.Fatalf("got %q", vs)
				}
			case "bearer":
				if vs := got.Header.Values("Authorization"); len(vs) != 1 || vs[0] != "Bearer "+testValue {
					t.Fatalf("got %q", vs)
				}
			case "query":
				if want := "page=2&api_key=" + url.QueryEscape(testValue); got.RawQuery != want {
					t.Fatalf("got query %q, want %q", got.RawQuery, want)
				}
			}
		})
	}
}

func TestRedirectMethodsAndBodies(t *testing.T) {
	var a *upstream //lint:ignore S1021 the handler below refers to a, so it is declared first
	a = newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/303":
			w.Header().Set("Location", "/done")
			w.WriteHeader(http.StatusSeeOther)
		case "/307":
			w.Header().Set("Location", "/done")
			w.WriteHeader(http.StatusTemporaryRedirect)
		default:
			io.WriteString(w, "ok")
		}
	})
	client := testClient(t, ClientOptions{})
	cred := credential("bearer", "", "", a.host())
	for _, tc := range []struct{ path, method, body string }{
		{"/303", http.MethodGet, ""},
		{"/307", http.MethodPost, `{"n":1}`},
	} {
		req := newRequest(t, http.MethodPost, a.url()+tc.path, strings.NewReader(`{"n":1}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req, cred, credvault.NewSecret(testValue))
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp.Body)
		got := a.last(t)
		if got.Path != "/done" || got.Method != tc.method || got.Body != tc.body {
			t.Fatalf("%s: got %s %s body %q, want %s /done body %q", tc.path, got.Method, got.Path, got.Body, tc.method, tc.body)
		}
	}

	// A streamed body cannot be replayed: the 307 comes back as it is.
	req := newRequest(t, http.MethodPost, a.url()+"/307", io.NopCloser(strings.NewReader("x")))
	before := len(a.requests())
	resp, err := client.Do(req, cred, credvault.NewSecret(testValue))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp.Body)
	if resp.StatusCode != http.StatusTemporaryRedirect || len(a.requests()) != before+1 {
		t.Fatalf("got %d after %d requests, want the 307 after one", resp.StatusCode, len(a.requests())-before)
	}
}

func TestRedirectLoopIsCapped(t *testing.T) {
	a := newUpstream(t, redirector(http.StatusFound, func(r *http.Request) string { return "/loop" }))
	client := testClient(t, ClientOptions{MaxRedirects: 3})
	resp, err := client.Do(newRequest(t, http.MethodGet, a.url()+"/loop", nil), credential("bearer", "", "", a.host()), credvault.NewSecret(testValue))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp.Body)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("got %d, want the last 302", resp.StatusCode)
	}
	if got := len(a.requests()); got != 4 {
		t.Fatalf("got %d requests, want 4 (the first and 3 redirects)", got)
	}

	none := testClient(t, ClientOptions{MaxRedirects: -1})
	resp, err = none.Do(newRequest(t, http.MethodGet, a.url()+"/loop", nil), credential("bearer", "", "", a.host()), credvault.NewSecret(testValue))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp.Body)
	if got := len(a.requests()); got != 5 {
		t.Fatalf("got %d requests, want 5: a negative MaxRedirects follows none", got)
	}
}

// TestRedirectHTTPSToHTTPIsNotFollowed uses a loopback TLS upstream that
// redirects to a plain-http one whose host is allowed too.
func TestRedirectHTTPSToHTTPIsNotFollowed(t *testing.T) {
	plain := newUpstream(t, nil)
	secure := startUpstream(t, redirector(http.StatusFound, func(r *http.Request) string {
		return plain.url() + "/downgraded"
	}), nil, true)
	client := testClient(t, ClientOptions{})
	pool := x509.NewCertPool()
	pool.AddCert(secure.srv.Certificate())
	client.transport.TLSClientConfig.RootCAs = pool

	cred := &credvault.Credential{Placement: "bearer", BaseURL: secure.url(), AllowedHosts: []string{secure.host(), plain.host()}}
	resp, err := client.Do(newRequest(t, http.MethodGet, secure.url()+"/", nil), cred, credvault.NewSecret(testValue))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp.Body)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("got %d, want the 302 back", resp.StatusCode)
	}
	if got := secure.last(t).Header.Get("Authorization"); got != "Bearer "+testValue {
		t.Fatalf("the https upstream got Authorization %q", got)
	}
	if n := plain.conns.Load(); n != 0 {
		t.Fatalf("the http upstream got %d connections, want none", n)
	}
}
