package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestUnknownRouteAndWrongMethod: an unknown route is a 404 not_found with
// or without a key (which routes exist is public: api/openapi.yaml); a
// known route asked with another method is a 405 with Allow (RFC 9110
// §15.5.6); neither opens anything a key guards.
func TestUnknownRouteAndWrongMethod(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	for _, key := range []string{"", owner} {
		h := map[string]string{}
		if key != "" {
			h["X-API-Key"] = key
		}
		for _, p := range []string{"/v1/nothing", "/v1", "/v1/", "/v1/api-keys/x/y/z", "/v1/credentials/x/nope", "/nothing"} {
			r := cl.call("GET", a.url+p, h, nil)
			if r.status != 404 || r.errCode(t) != "not_found" || !strings.Contains(r.errMessage(t), "no such route") {
				t.Errorf("GET %s (key %v): %d %s, want 404 not_found", p, key != "", r.status, r.body)
			}
		}
		cases := []struct{ method, path, allow string }{
			{"DELETE", "/v1/api-keys/6b0d2a57-5c3c-4a4e-9a54-1b1f3a0c0c0c", "GET, HEAD"},
			{"PUT", "/v1/whoami", "GET, HEAD"},
			{"GET", "/v1/inject", "POST"},
			{"POST", "/healthz", "GET, HEAD"},
			{"DELETE", "/V1/Credentials/abc/Sharing/", "PUT"},
		}
		for _, tc := range cases {
			r := cl.call(tc.method, a.url+tc.path, h, nil)
			if r.status != 405 || r.errCode(t) != "method_not_allowed" {
				t.Errorf("%s %s: %d %s, want 405", tc.method, tc.path, r.status, r.body)
				continue
			}
			// Other work may add methods to a route: Allow must list the
			// registered ones, at least these.
			for _, m := range strings.Split(tc.allow, ", ") {
				if !strings.Contains(r.header.Get("Allow"), m) {
					t.Errorf("%s %s: Allow %q lacks %s", tc.method, tc.path, r.header.Get("Allow"), m)
				}
			}
			if r.header.Get("Allow") == "" || strings.Contains(r.header.Get("Allow"), tc.method) {
				t.Errorf("%s %s: Allow %q", tc.method, tc.path, r.header.Get("Allow"))
			}
		}
	}
	// A route that exists still needs a key; case and trailing slash do not
	// get around it.
	for _, p := range []string{"/v1/whoami", "/V1/WHOAMI", "/v1/whoami/", "/v1/api-keys/6b0d2a57-5c3c-4a4e-9a54-1b1f3a0c0c0c"} {
		if r := cl.call("GET", a.url+p, nil, nil); r.status != 401 {
			t.Errorf("GET %s without a key: %d %s, want 401", p, r.status, r.body)
		}
	}
}

// TestEveryRouteNeedsAKey walks every registered /v1 route: none answers
// without a key except the two that authenticate by themselves.
func TestEveryRouteNeedsAKey(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	self := map[string]bool{"POST /v1/api-keys/verify": true, "GET /v1/auth/check": true, "HEAD /v1/auth/check": true}
	n := 0
	for _, r := range a.s.http.Handler().GetRoutes(true) {
		if !strings.HasPrefix(r.Path, "/v1/") || self[r.Method+" "+r.Path] {
			continue
		}
		path := strings.NewReplacer(":id", "6b0d2a57-5c3c-4a4e-9a54-1b1f3a0c0c0c", "*", "anything").Replace(r.Path)
		resp := cl.call(r.Method, a.url+path, nil, nil)
		if resp.status != http.StatusUnauthorized {
			t.Errorf("%s %s without a key: %d, want 401", r.Method, path, resp.status)
		}
		n++
	}
	if n < 20 {
		t.Fatalf("walked only %d routes", n)
	}
}

// TestAuthHeadersAdd: with CREDVAULT_AUTH_HEADERS=nected-api-key the key is
// accepted in that header and still in X-API-Key and Authorization, and
// the 401 for a missing key names all three.
func TestAuthHeadersAdd(t *testing.T) {
	cl := newCluster(t, map[string]string{"CREDVAULT_AUTH_HEADERS": "nected-api-key"})
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	for _, h := range []map[string]string{{"nected-api-key": owner}, {"X-API-Key": owner}, {"Authorization": "Bearer " + owner}} {
		if r := cl.call("GET", a.url+"/v1/whoami", h, nil); r.status != 200 {
			t.Errorf("key in %v: %d %s", h, r.status, r.body)
		}
	}
	r := cl.call("GET", a.url+"/v1/whoami", nil, nil)
	msg := r.errMessage(t)
	for _, want := range []string{"nected-api-key", "X-API-Key", "Authorization: Bearer"} {
		if r.status != 401 || !strings.Contains(msg, want) {
			t.Errorf("missing key: %d %q, want 401 naming %s", r.status, msg, want)
		}
	}
	r = cl.call("GET", a.url+"/v1/whoami?nected-api-key=x", nil, nil)
	if r.status != 401 || !strings.Contains(r.errMessage(t), "nected-api-key") {
		t.Errorf("key in query: %d %q", r.status, r.errMessage(t))
	}
}

// TestDateOnlyExpiryNamesTheField: a date without time and zone is refused
// with a message naming the field and the format, and writes nothing.
func TestDateOnlyExpiryNamesTheField(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	count := func() (n int) {
		if err := a.s.db.Get(&n, `SELECT count(*) FROM api_keys WHERE org_id = $1`, res.OrgID); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	for _, v := range []string{"2027-01-15", "2027-01-15 10:00:00", "15/01/2027", "2027-01-15T10:00:00"} {
		r := cl.as(owner, "POST", a.url+"/v1/api-keys", map[string]any{"name": "x", "scopes": []string{"keys:read"}, "expires_at": v})
		msg := r.errMessage(t)
		if r.status != 400 || !strings.Contains(msg, `field "expires_at"`) || !strings.Contains(msg, "RFC 3339") {
			t.Errorf("expires_at %q: %d %q, want 400 naming expires_at and RFC 3339", v, r.status, msg)
		}
	}
	if n := count(); n != before {
		t.Fatalf("api_keys rows %d -> %d after bad expires_at", before, n)
	}
}
