package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Identity is the caller credvault verified: the key's org, user (empty
// for a service key), key id and scopes.
type Identity struct {
	OrgID  string
	UserID string
	KeyID  string
	Scopes []string
}

// HasScope reports whether the identity holds scope (or admin, which
// grants every scope).
func (id Identity) HasScope(scope string) bool {
	for _, s := range id.Scopes {
		if s == scope || s == "admin" {
			return true
		}
	}
	return false
}

type identityKey struct{}

// IdentityFrom returns the identity Middleware (or fibermw.New) put in
// the request's context.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// Default cache lifetimes of an Authenticator.
const (
	DefaultPositiveTTL = 5 * time.Second
	DefaultNegativeTTL = 2 * time.Second
)

// Authenticator authenticates a service's inbound requests by asking
// credvault's GET /v1/auth/check with the request's key headers, and
// caches the verdict locally.
//
// Cache and revocation: an accepted key is remembered for PositiveTTL
// (default 5 s), a refused one (401 or 403) for NegativeTTL (default
// 2 s), per key and required scopes, keyed by the key's SHA-256 (the key
// itself is never kept). A key revoked at credvault is therefore refused
// by this service at most PositiveTTL later; set PositiveTTL to 0 to ask
// credvault on every request. Calls answered from the cache do not count
// against the key's rate limit or update its last_used_at; a 429 and
// credvault being unreachable are never cached.
type Authenticator struct {
	// Credvault is credvault's base URL.
	Credvault string
	// Scopes every request must hold (credvault answers 403 otherwise).
	Scopes []string
	// KeyHeaders are the request headers that may carry the key and are
	// passed to credvault; default X-API-Key and Authorization.
	KeyHeaders []string
	// PositiveTTL and NegativeTTL: see the type's doc; zero values take the
	// defaults, a negative value disables that side of the cache.
	PositiveTTL, NegativeTTL time.Duration
	// HTTPClient calls credvault; http.DefaultClient when nil.
	HTTPClient *http.Client
	// MaxEntries bounds the cache (default 10000).
	MaxEntries int
	// Clock tells the time for the cache; time.Now when nil.
	Clock func() time.Time

	mu    sync.Mutex
	cache map[string]verdict
}

// verdict is one answer of credvault: an identity, or a refusal to pass
// back to the client as credvault wrote it.
type verdict struct {
	ok      bool
	id      Identity
	status  int
	header  http.Header
	body    []byte
	expires time.Time
}

// passHeaders are the headers of a refusal that reach the client.
var passHeaders = []string{"Content-Type", "Www-Authenticate", "Retry-After", "Ratelimit-Limit", "Ratelimit-Remaining", "Ratelimit-Reset", "X-Request-Id"}

func (a *Authenticator) ttl(ok bool) time.Duration {
	d, def := a.NegativeTTL, DefaultNegativeTTL
	if ok {
		d, def = a.PositiveTTL, DefaultPositiveTTL
	}
	if d == 0 {
		return def
	}
	return max(d, 0)
}

func (a *Authenticator) keyHeaders() []string {
	if len(a.KeyHeaders) == 0 {
		return []string{"X-API-Key", "Authorization"}
	}
	return a.KeyHeaders
}

func (a *Authenticator) clock() time.Time {
	if a.Clock != nil {
		return a.Clock()
	}
	return time.Now()
}

// check returns the verdict for the key headers in h.
func (a *Authenticator) check(ctx context.Context, h http.Header) verdict {
	sum := sha256.New()
	for _, name := range a.keyHeaders() {
		io.WriteString(sum, strings.ToLower(name)+"\x00"+h.Get(name)+"\x00") // #nosec G104 -- hash.Hash.Write never returns an error
	}
	ck := hex.EncodeToString(sum.Sum(nil))
	now := a.clock()
	a.mu.Lock()
	v, hit := a.cache[ck]
	a.mu.Unlock()
	if hit && now.Before(v.expires) {
		return v
	}
	v = a.ask(ctx, h)
	if v.status == 0 || v.status == http.StatusTooManyRequests || v.status >= 500 {
		return v
	}
	if ttl := a.ttl(v.ok); ttl > 0 {
		v.expires = now.Add(ttl)
		a.mu.Lock()
		if a.cache == nil {
			a.cache = map[string]verdict{}
		}
		limit := a.MaxEntries
		if limit <= 0 {
			limit = 10000
		}
		if len(a.cache) >= limit {
			for k, old := range a.cache {
				if !now.Before(old.expires) || len(a.cache) >= limit {
					delete(a.cache, k)
				}
			}
		}
		a.cache[ck] = v
		a.mu.Unlock()
	}
	return v
}

// ask calls credvault once.
func (a *Authenticator) ask(ctx context.Context, h http.Header) verdict {
	u, err := url.Parse(strings.TrimSuffix(a.Credvault, "/") + "/v1/auth/check")
	if err != nil {
		return unavailable()
	}
	if len(a.Scopes) > 0 {
		u.RawQuery = url.Values{"scope": {strings.Join(a.Scopes, ",")}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return unavailable()
	}
	for _, name := range a.keyHeaders() {
		if v := h.Get(name); v != "" {
			req.Header.Set(name, v)
		}
	}
	hc := a.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return unavailable()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK && resp.Header.Get("X-Credvault-Key-Id") != "" {
		id := Identity{
			OrgID:  resp.Header.Get("X-Credvault-Org-Id"),
			UserID: resp.Header.Get("X-Credvault-User-Id"),
			KeyID:  resp.Header.Get("X-Credvault-Key-Id"),
		}
		for _, s := range strings.Split(resp.Header.Get("X-Credvault-Scopes"), ",") {
			if s = strings.TrimSpace(s); s != "" {
				id.Scopes = append(id.Scopes, s)
			}
		}
		return verdict{ok: true, id: id, status: 200}
	}
	if resp.StatusCode == http.StatusOK {
		// PUBLIC_ENDPOINT needs an endpoint, which this middleware never
		// names: treat anything else as credvault misbehaving.
		return unavailable()
	}
	hd := http.Header{}
	for _, name := range passHeaders {
		if v := resp.Header.Get(name); v != "" {
			hd.Set(name, v)
		}
	}
	return verdict{status: resp.StatusCode, header: hd, body: body}
}

func unavailable() verdict {
	return verdict{status: 0, header: http.Header{"Content-Type": {"application/json"}},
		body: []byte(`{"error":{"code":"auth_unavailable","message":"credvault could not be asked to verify the API key; try again"}}`)}
}

// WithIdentity returns ctx carrying id, for IdentityFrom: adapters for
// other frameworks (api/client/fibermw) put the verified caller there.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// Refusal is credvault's answer to a request it did not accept, to pass
// back to the caller as it is: the status (401, 403, 429, or 503 when
// credvault could not be asked), the headers that matter to a client
// (WWW-Authenticate, Retry-After, RateLimit-*, Content-Type, X-Request-Id)
// and the JSON error body.
type Refusal struct {
	Status int
	Header http.Header
	Body   []byte
}

// Authenticate checks the key headers of an inbound request (names from
// KeyHeaders) through the cache and credvault: the caller's Identity, or
// the Refusal to send back. Middleware and api/client/fibermw are built on
// it; other frameworks can be too.
func (a *Authenticator) Authenticate(ctx context.Context, h http.Header) (Identity, *Refusal) {
	v := a.check(ctx, h)
	if v.ok {
		return v.id, nil
	}
	status := v.status
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	return Identity{}, &Refusal{Status: status, Header: v.header, Body: v.body}
}

// HeaderNames are the request headers that may carry the key (KeyHeaders,
// or X-API-Key and Authorization by default).
func (a *Authenticator) HeaderNames() []string { return a.keyHeaders() }

// Middleware returns net/http middleware: a request credvault accepts
// reaches next with its Identity in the context (IdentityFrom); any other
// gets credvault's status, JSON body and WWW-Authenticate / Retry-After /
// RateLimit-* headers (503 auth_unavailable when credvault cannot be
// asked).
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ref := a.Authenticate(r.Context(), r.Header)
		if ref == nil {
			next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
			return
		}
		for k, vs := range ref.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(ref.Status)
		w.Write(ref.Body) // #nosec G104 -- a failed write to the client has no one left to report to
	})
}
