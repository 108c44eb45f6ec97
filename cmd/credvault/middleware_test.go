package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"credvault/api/client"
	"credvault/api/client/fibermw"
)

// countingTransport counts the calls an Authenticator makes to credvault.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// fakeClock is the cache's time, moved by the test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeClock) add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

// TestMiddleware runs the net/http and the Fiber middleware in front of a
// handler that echoes the identity, against a running credvault: valid
// key → identity; missing/revoked → credvault's 401; scope → 403; the
// positive and negative caches spare credvault calls, and a revoked key is
// refused once the positive TTL has passed; 429 is never cached.
func TestMiddleware(t *testing.T) {
	cl := newCluster(t, nil)
	inst := cl.start()
	boot, owner := cl.bootstrap(inst, "mw")

	for _, kind := range []string{"net/http", "fiber"} {
		t.Run(strings.ReplaceAll(kind, "/", "-"), func(t *testing.T) {
			kid, key := cl.createKey(inst, owner, map[string]any{"name": "svc-" + kind, "scopes": []string{"keys:read"}})
			_, limited := cl.createKey(inst, owner, map[string]any{"name": "lim-" + kind, "scopes": []string{"keys:read"},
				"rate_limit": map[string]any{"requests": 1, "window_seconds": 300}})
			calls := &countingTransport{}
			clock := &fakeClock{t: time.Now()}
			newAuth := func(scopes ...string) *client.Authenticator {
				return &client.Authenticator{Credvault: inst.url, Scopes: scopes, PositiveTTL: 5 * time.Second, NegativeTTL: 2 * time.Second,
					HTTPClient: &http.Client{Transport: calls}, Clock: clock.now}
			}
			do := serveWith(t, kind, newAuth())
			doAdmin := serveWith(t, kind, newAuth("admin"))

			status, body, hdr := do(map[string]string{"X-API-Key": key})
			var id client.Identity
			if status != 200 || json.Unmarshal([]byte(body), &id) != nil || id.OrgID != boot.OrgID || id.KeyID != kid || !id.HasScope("keys:read") {
				t.Fatalf("valid key: %d %s", status, body)
			}
			if hdr.Get("WWW-Authenticate") != "" {
				t.Errorf("valid key answered with WWW-Authenticate %q", hdr.Get("WWW-Authenticate"))
			}
			before := calls.n.Load()
			if status, _, _ = do(map[string]string{"Authorization": "Bearer " + key}); status != 200 {
				t.Fatalf("bearer: %d", status)
			}
			if status, _, _ = do(map[string]string{"X-API-Key": key}); status != 200 || calls.n.Load() != before+1 {
				t.Errorf("a cached key asked credvault again: %d calls after the first, want 1 (bearer)", calls.n.Load()-before)
			}

			status, body, hdr = do(nil)
			if status != 401 || !strings.Contains(body, `"missing_api_key"`) || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("missing key: %d %s %v", status, body, hdr)
			}
			status, body, _ = doAdmin(map[string]string{"X-API-Key": key})
			if status != 403 || !strings.Contains(body, `"insufficient_scope"`) {
				t.Errorf("scope: %d %s", status, body)
			}
			bogus := map[string]string{"X-API-Key": "not-a-key"}
			do(bogus)
			before = calls.n.Load()
			if status, _, _ = do(bogus); status != 401 || calls.n.Load() != before {
				t.Errorf("negative cache: %d, %d calls", status, calls.n.Load()-before)
			}

			// Revocation: honoured once the positive TTL has passed.
			if r := cl.as(owner, "POST", inst.url+"/v1/api-keys/"+kid+"/revoke", nil); r.status != 200 {
				t.Fatal(r.status)
			}
			if status, _, _ = do(map[string]string{"X-API-Key": key}); status != 200 {
				t.Errorf("within the TTL the cached verdict stands: got %d", status)
			}
			clock.add(5*time.Second + time.Millisecond)
			status, body, _ = do(map[string]string{"X-API-Key": key})
			if status != 401 || !strings.Contains(body, `"revoked_api_key"`) {
				t.Errorf("revoked key after the TTL: %d %s", status, body)
			}

			// 429 passes through with Retry-After and is never cached. The
			// first call uses the limit and is cached; past the TTL credvault
			// is asked again.
			if status, _, _ = do(map[string]string{"X-API-Key": limited}); status != 200 {
				t.Fatalf("limited key, first call: %d", status)
			}
			clock.add(5*time.Second + time.Millisecond)
			status, body, hdr = do(map[string]string{"X-API-Key": limited})
			if status != 429 || hdr.Get("Retry-After") == "" || !strings.Contains(body, `"rate_limited"`) {
				t.Errorf("rate limited: %d %s", status, body)
			}
			before = calls.n.Load()
			do(map[string]string{"X-API-Key": limited})
			if calls.n.Load() != before+1 {
				t.Errorf("a 429 was cached")
			}
			if strings.Contains(body, key) {
				t.Error("a key leaked into an answer")
			}
		})
	}
}

// serveWith returns a function that sends one request through the
// middleware of kind in front of a handler that writes the identity as
// JSON.
func serveWith(t *testing.T, kind string, a *client.Authenticator) func(map[string]string) (int, string, http.Header) {
	t.Helper()
	if kind == "fiber" {
		app := fiber.New()
		app.Use(fibermw.New(a))
		app.Get("/", func(c *fiber.Ctx) error {
			id, ok := client.IdentityFrom(c.UserContext())
			if !ok || c.Locals(fibermw.LocalsKey) == nil {
				return c.SendStatus(500)
			}
			return c.JSON(id)
		})
		return func(h map[string]string) (int, string, http.Header) {
			req := httptest.NewRequest("GET", "/", nil)
			for k, v := range h {
				req.Header.Set(k, v)
			}
			resp, err := app.Test(req, 10000)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b), resp.Header
		}
	}
	srv := httptest.NewServer(a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := client.IdentityFrom(r.Context())
		if !ok {
			w.WriteHeader(500)
			return
		}
		json.NewEncoder(w).Encode(id)
	})))
	t.Cleanup(srv.Close)
	return func(h map[string]string) (int, string, http.Header) {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
}
