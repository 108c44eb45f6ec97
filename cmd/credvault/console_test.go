package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"credvault/internal/postgres"
)

// browserish is a cookie-keeping HTTP client that sends what a browser
// sends with a same-origin form (Origin, Sec-Fetch-Site) and never follows
// redirects on its own.
type browserish struct {
	t      *testing.T
	base   string
	client *http.Client
}

func newBrowserish(t *testing.T, base string) *browserish {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browserish{t: t, base: base, client: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type consolePage struct {
	status int
	header http.Header
	body   string
}

func (b *browserish) get(path string) consolePage {
	b.t.Helper()
	return b.do("GET", path, nil, nil)
}

// post sends a form; with csrf it adds the page's token.
func (b *browserish) post(path string, form url.Values, headers map[string]string) consolePage {
	b.t.Helper()
	return b.do("POST", path, form, headers)
}

func (b *browserish) do(method, path string, form url.Values, headers map[string]string) consolePage {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", b.base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return consolePage{status: resp.StatusCode, header: resp.Header, body: string(raw)}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the form token from a page.
func (b *browserish) csrf(path string) string {
	b.t.Helper()
	p := b.get(path)
	m := csrfRe.FindStringSubmatch(p.body)
	if m == nil {
		b.t.Fatalf("no form token on %s (%d)", path, p.status)
	}
	return m[1]
}

// signInWithLink redeems a link the way the page's button does.
func (b *browserish) signInWithLink(link string) consolePage {
	b.t.Helper()
	path := strings.TrimPrefix(link, b.base)
	tok := csrfRe.FindStringSubmatch(b.get(path).body)
	if tok == nil {
		b.t.Fatalf("link page has no form token")
	}
	return b.post("/sign-in/link", url.Values{"csrf": {tok[1]}, "token": {path[strings.LastIndex(path, "/")+1:]}}, nil)
}

// consoleCluster is one org on a cluster: the owner's key and a signed-in
// owner browser on the first instance.
func consoleCluster(t *testing.T) (*cluster, *instance, string) {
	t.Helper()
	cl := newCluster(t, nil)
	inst := cl.start()
	_, ownerKey := cl.bootstrap(inst, "acme")
	return cl, inst, ownerKey
}

// newLink makes a sign-in link through the API.
func newLink(t *testing.T, cl *cluster, inst *instance, key, userID string) string {
	t.Helper()
	r := cl.as(key, "POST", inst.url+"/v1/users/"+userID+"/sign-in-links", nil)
	if r.status != 201 {
		t.Fatalf("sign-in link: %d %s", r.status, r.body)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("sign-in link response Cache-Control = %q, want no-store", cc)
	}
	return r.json(t)["url"].(string)
}

func whoamiUser(t *testing.T, cl *cluster, inst *instance, key string) string {
	t.Helper()
	return cl.as(key, "GET", inst.url+"/v1/whoami", nil).json(t)["user_id"].(string)
}

func countRows(t *testing.T, dbURL, query string, args ...any) int {
	t.Helper()
	db, err := postgres.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := sqlx.GetContext(context.Background(), db, &n, query, args...); err != nil {
		t.Fatal(err)
	}
	return n
}

func execSQL(t *testing.T, dbURL, query string, args ...any) {
	t.Helper()
	db, err := postgres.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleCSRF: a form post without the token, with a wrong token, from
// a foreign Origin, or marked cross-site by Fetch metadata is a 403 and
// writes nothing.
func TestConsoleCSRF(t *testing.T) {
	cl, inst, ownerKey := consoleCluster(t)
	b := newBrowserish(t, inst.url)
	if p := b.signInWithLink(newLink(t, cl, inst, ownerKey, whoamiUser(t, cl, inst, ownerKey))); p.status != 303 {
		t.Fatalf("sign in: %d %s", p.status, p.body)
	}
	tok := b.csrf("/api-keys/new")
	wrong := "x" + tok[1:] // one character changed, whatever the token
	if tok[0] == 'x' {
		wrong = "y" + tok[1:]
	}
	form := func(csrf string) url.Values {
		v := url.Values{"name": {"forged"}, "scopes": {"keys:read"}, "expires_in": {"7d"}, "environment": {"live"}}
		if csrf != "" {
			v.Set("csrf", csrf)
		}
		return v
	}
	credForm := func(csrf string) url.Values {
		return url.Values{"csrf": {csrf}, "service": {"stripe"}, "value": {"sk_live_forged"}}
	}
	cases := []struct {
		name    string
		path    string
		form    url.Values
		headers map[string]string
	}{
		{"no token", "/api-keys", form(""), nil},
		{"wrong token", "/api-keys", form(wrong), nil},
		{"foreign origin", "/api-keys", form(tok), map[string]string{"Origin": "http://evil.test", "Sec-Fetch-Site": "cross-site"}},
		{"foreign origin, same-site claim", "/api-keys", form(tok), map[string]string{"Origin": "http://127.0.0.1.evil.test"}},
		{"null origin cross-site", "/api-keys", form(tok), map[string]string{"Origin": "null", "Sec-Fetch-Site": "cross-site"}},
		{"null origin no metadata", "/api-keys", form(tok), map[string]string{"Origin": "null", "Sec-Fetch-Site": ""}},
		{"credential, foreign origin", "/credentials", credForm(tok), map[string]string{"Origin": "http://evil.test", "Sec-Fetch-Site": ""}},
		{"credential, no token", "/credentials", credForm(""), nil},
		{"sign out, no token", "/sign-out", url.Values{}, nil},
	}
	keysBefore := countRows(t, cl.dbURL, `SELECT count(*) FROM api_keys`)
	credsBefore := countRows(t, cl.dbURL, `SELECT count(*) FROM credentials`)
	for _, tc := range cases {
		p := b.post(tc.path, tc.form, tc.headers)
		if p.status != 403 {
			t.Errorf("%s: status %d, want 403", tc.name, p.status)
		}
	}
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM api_keys`); n != keysBefore {
		t.Errorf("api_keys: %d rows after refused posts, want %d", n, keysBefore)
	}
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM credentials`); n != credsBefore {
		t.Errorf("credentials: %d rows after refused posts, want %d", n, credsBefore)
	}
	// The session survived the forged sign-out; the same form with its
	// token from the console's own origin works (the checks can pass).
	if p := b.post("/api-keys", form(tok), nil); p.status != 201 {
		t.Fatalf("genuine post: %d", p.status)
	}
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM api_keys`); n != keysBefore+1 {
		t.Errorf("genuine post stored %d keys", n-keysBefore)
	}
	// Sign-in forms are protected too (login CSRF).
	anon := newBrowserish(t, inst.url)
	anon.get("/sign-in")
	if p := anon.post("/sign-in/key", url.Values{"api_key": {ownerKey}}, nil); p.status != 403 {
		t.Errorf("sign-in without token: %d, want 403", p.status)
	}
}

// consolePages are the pages every signed-in person may open.
var consolePages = []string{"/credentials", "/credentials/new", "/credentials/new?service=stripe",
	"/credentials/new?service=custom", "/api-keys", "/api-keys/new", "/endpoints", "/members", "/audit"}

// TestConsoleSecurityHeaders: every page and asset carries the strict CSP
// (no inline script or style, no framing) and the other headers; pages
// are never stored by caches, and the one-time reveal says no-store.
func TestConsoleSecurityHeaders(t *testing.T) {
	cl, inst, ownerKey := consoleCluster(t)
	anon := newBrowserish(t, inst.url)
	b := newBrowserish(t, inst.url)
	link := newLink(t, cl, inst, ownerKey, whoamiUser(t, cl, inst, ownerKey))
	linkPage := anon.get(strings.TrimPrefix(link, inst.url))
	b.signInWithLink(link)
	tok := b.csrf("/api-keys/new")
	reveal := b.post("/api-keys", url.Values{"csrf": {tok}, "name": {"k"}, "scopes": {"keys:read"}, "expires_in": {"never"}, "environment": {"live"}}, nil)
	if reveal.status != 201 {
		t.Fatalf("create key: %d", reveal.status)
	}
	checked := map[string]consolePage{"/sign-in (anonymous)": anon.get("/sign-in"), "link page": linkPage, "reveal": reveal,
		"/static/console.css": b.get("/static/console.css"), "/static/console.js": b.get("/static/console.js"),
		"not found": b.get("/credentials/00000000-0000-0000-0000-000000000000")}
	for _, p := range consolePages {
		checked[p] = b.get(p)
	}
	for name, p := range checked {
		csp := p.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", name, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP allows inline code: %q", name, csp)
		}
		for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
			if got := p.header.Get(h); got != want {
				t.Errorf("%s: %s = %q, want %q", name, h, got, want)
			}
		}
		if strings.HasPrefix(name, "/static/") {
			continue
		}
		if cc := p.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control = %q, want no-store", name, cc)
		}
		// No inline script or style for the CSP to block.
		for _, bad := range []string{"<script>", "style=", "<style", "onclick=", "onsubmit=", "javascript:"} {
			if strings.Contains(p.body, bad) {
				t.Errorf("%s: page contains %q", name, bad)
			}
		}
	}
	// The session cookie: HttpOnly, SameSite=Lax, not Secure on plain http.
	c := newBrowserish(t, inst.url)
	p := c.signInWithLink(newLink(t, cl, inst, ownerKey, whoamiUser(t, cl, inst, ownerKey)))
	sc := strings.Join(p.header.Values("Set-Cookie"), "\n")
	if !regexp.MustCompile(`(?mi)^cv_session=[A-Za-z0-9_-]{43};.*HttpOnly.*SameSite=Lax`).MatchString(sc) {
		t.Errorf("session cookie: %s", sc)
	}
	if strings.Contains(strings.ToLower(sc), "secure") {
		t.Errorf("session cookie is Secure on plain http (browsers would drop it): %s", sc)
	}
}

// TestConsoleSessionCookieHTTPS: behind an https public URL the cookie is
// Secure with the __Host- prefix, and Origin must be that URL.
func TestConsoleSessionCookieHTTPS(t *testing.T) {
	cl := newCluster(t, map[string]string{"CREDVAULT_PUBLIC_URL": "https://vault.example.test"})
	inst := cl.start()
	_, ownerKey := cl.bootstrap(inst, "acme")
	link := newLink(t, cl, inst, ownerKey, whoamiUser(t, cl, inst, ownerKey))
	if !strings.HasPrefix(link, "https://vault.example.test/sign-in/link/") {
		t.Fatalf("link = %q", link)
	}
	b := newBrowserish(t, inst.url)
	path := strings.TrimPrefix(link, "https://vault.example.test")
	lp := b.get(path)
	if sc := lp.header.Get("Set-Cookie"); !strings.HasPrefix(sc, "__Host-cv_csrf=") || !strings.Contains(strings.ToLower(sc), "; secure") || !strings.Contains(strings.ToLower(sc), "path=/") {
		t.Errorf("pre-session cookie: %q", sc)
	}
	// The jar does not send Secure cookies over http; send it by hand.
	pre := strings.SplitN(strings.SplitN(lp.header.Get("Set-Cookie"), ";", 2)[0], "=", 2)[1]
	tok := csrfRe.FindStringSubmatch(lp.body)[1]
	form := url.Values{"csrf": {tok}, "token": {path[strings.LastIndex(path, "/")+1:]}}
	if p := b.post("/sign-in/link", form, map[string]string{"Cookie": "__Host-cv_csrf=" + pre}); p.status != 403 {
		t.Errorf("post with the listener's own origin behind a public URL: %d, want 403", p.status)
	}
	p := b.post("/sign-in/link", form, map[string]string{"Cookie": "__Host-cv_csrf=" + pre, "Origin": "https://vault.example.test"})
	if p.status != 303 {
		t.Fatalf("sign in: %d %s", p.status, p.body)
	}
	sc := strings.Join(p.header.Values("Set-Cookie"), "\n")
	if !regexp.MustCompile(`(?mi)^__Host-cv_session=[A-Za-z0-9_-]{43};.*path=/.*HttpOnly.*secure.*SameSite=Lax`).MatchString(sc) {
		t.Errorf("session cookie: %s", sc)
	}
}

// TestConsoleSessionEndsEverywhere: a deleted member's session, and a
// demoted admin's, is refused on a second instance within a second.
func TestConsoleSessionEndsEverywhere(t *testing.T) {
	cl, a, ownerKey := consoleCluster(t)
	bInst := cl.start()
	for _, tc := range []struct {
		name, role string
		end        func(id string) response
	}{
		{"deleted member", "member", func(id string) response { return cl.as(ownerKey, "DELETE", a.url+"/v1/users/"+id, nil) }},
		{"demoted admin", "admin", func(id string) response {
			return cl.as(ownerKey, "PATCH", a.url+"/v1/users/"+id, map[string]any{"role": "member"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := cl.as(ownerKey, "POST", a.url+"/v1/users", map[string]any{"email": tc.role + "@acme.test", "role": tc.role})
			if u.status != 201 {
				t.Fatalf("create user: %d %s", u.status, u.body)
			}
			id := u.json(t)["id"].(string)
			onA := newBrowserish(t, a.url)
			if p := onA.signInWithLink(newLink(t, cl, a, ownerKey, id)); p.status != 303 {
				t.Fatalf("sign in: %d", p.status)
			}
			// The same cookie, sent to instance B.
			onB := newBrowserish(t, bInst.url)
			au, _ := url.Parse(a.url)
			bu, _ := url.Parse(bInst.url)
			onB.client.Jar.SetCookies(bu, onA.client.Jar.Cookies(au))
			if p := onB.get("/credentials"); p.status != 200 {
				t.Fatalf("session on instance B: %d", p.status)
			}
			if r := tc.end(id); r.status/100 != 2 {
				t.Fatalf("end: %d %s", r.status, r.body)
			}
			deadline := time.Now().Add(time.Second)
			for {
				p := onB.get("/credentials")
				if p.status == 303 && p.header.Get("Location") == "/sign-in" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("instance B still serves the session 1 s later: %d", p.status)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if n := countRows(t, cl.dbURL, `SELECT count(*) FROM console_sessions WHERE user_id = $1`, id); n != 0 {
				t.Errorf("%d sessions left", n)
			}
		})
	}
}

// TestConsoleSignIn covers the sign-in rules: a link works once and only
// for 15 minutes, is stored hashed; service keys cannot sign in, personal
// keys can (and the session ends with the key); attempts are rate-limited
// and audited; sign-out ends the session.
func TestConsoleSignIn(t *testing.T) {
	cl, inst, ownerKey := consoleCluster(t)
	ownerID := whoamiUser(t, cl, inst, ownerKey)

	link := newLink(t, cl, inst, ownerKey, ownerID)
	token := link[strings.LastIndex(link, "/")+1:]
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM sign_in_links WHERE token_hash = sha256(convert_to($1, 'UTF8'))`, token); n != 1 {
		t.Fatalf("link not stored as its SHA-256 (%d rows)", n)
	}
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM sign_in_links WHERE position(convert_to($1, 'UTF8') in token_hash) > 0`, token); n != 0 {
		t.Fatal("the token itself is stored")
	}
	first := newBrowserish(t, inst.url)
	if p := first.signInWithLink(link); p.status != 303 || p.header.Get("Location") != "/credentials" {
		t.Fatalf("first use: %d %s", p.status, p.header.Get("Location"))
	}
	// Reuse is refused, from any browser.
	second := newBrowserish(t, inst.url)
	if p := second.signInWithLink(link); p.status != 401 || !strings.Contains(p.body, "already used, has expired") {
		t.Fatalf("reuse: %d", p.status)
	}
	if p := second.get("/credentials"); p.status != 303 {
		t.Fatalf("reuse signed in anyway: %d", p.status)
	}
	// Expiry: a link past its 15 minutes is refused.
	expired := newLink(t, cl, inst, ownerKey, ownerID)
	execSQL(t, cl.dbURL, `UPDATE sign_in_links SET expires_at = now() - interval '1 second' WHERE token_hash = sha256(convert_to($1, 'UTF8'))`,
		expired[strings.LastIndex(expired, "/")+1:])
	if p := newBrowserish(t, inst.url).signInWithLink(expired); p.status != 401 {
		t.Fatalf("expired link: %d", p.status)
	}
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM sign_in_links WHERE expires_at > created_at + interval '15 minutes' + interval '1 second'`); n != 0 {
		t.Errorf("%d links live longer than 15 minutes", n)
	}
	// A GET of the link page does not use the link up.
	fresh := newLink(t, cl, inst, ownerKey, ownerID)
	viewer := newBrowserish(t, inst.url)
	viewer.get(strings.TrimPrefix(fresh, inst.url))
	viewer.get(strings.TrimPrefix(fresh, inst.url))
	if p := viewer.signInWithLink(fresh); p.status != 303 {
		t.Fatalf("link after two GETs: %d", p.status)
	}

	// Idle and absolute timeouts: a session unused for 30 minutes, or
	// older than 12 hours, is refused and removed.
	for _, tc := range []struct{ name, set string }{
		{"idle 31 min", `UPDATE console_sessions SET last_seen_at = now() - interval '31 minutes' WHERE user_id = $1`},
		{"absolute 12 h", `UPDATE console_sessions SET expires_at = now() - interval '1 second' WHERE user_id = $1`},
	} {
		sb := newBrowserish(t, inst.url)
		if p := sb.signInWithLink(newLink(t, cl, inst, ownerKey, ownerID)); p.status != 303 {
			t.Fatalf("%s: sign in: %d", tc.name, p.status)
		}
		before := countRows(t, cl.dbURL, `SELECT count(*) FROM console_sessions WHERE user_id = $1`, ownerID)
		execSQL(t, cl.dbURL, tc.set+` AND created_at = (SELECT max(created_at) FROM console_sessions WHERE user_id = $1)`, ownerID)
		if p := sb.get("/credentials"); p.status != 303 || p.header.Get("Location") != "/sign-in" {
			t.Errorf("%s: %d, want 303 to /sign-in", tc.name, p.status)
		}
		if n := countRows(t, cl.dbURL, `SELECT count(*) FROM console_sessions WHERE user_id = $1`, ownerID); n != before-1 {
			t.Errorf("%s: the ended session was not removed (%d → %d)", tc.name, before, n)
		}
	}
	// A session opened now ends after 12 hours at the latest.
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM console_sessions WHERE expires_at > created_at + interval '12 hours'`); n != 0 {
		t.Errorf("%d sessions live longer than 12 hours", n)
	}

	// Keys: a service key is refused; a personal key signs in, with the
	// key's scopes, until the key is revoked.
	_, svc := cl.createKey(inst, ownerKey, map[string]any{"name": "svc", "kind": "service", "scopes": []string{"credentials:read"}})
	kb := newBrowserish(t, inst.url)
	tok := kb.csrf("/sign-in")
	if p := kb.post("/sign-in/key", url.Values{"csrf": {tok}, "api_key": {svc}}, nil); p.status != 401 || !strings.Contains(p.body, "service keys cannot sign in") {
		t.Fatalf("service key: %d", p.status)
	}
	keyID, personal := cl.createKey(inst, ownerKey, map[string]any{"name": "mine", "scopes": []string{"credentials:read", "keys:read"}})
	if p := kb.post("/sign-in/key", url.Values{"csrf": {tok}, "api_key": {personal}}, nil); p.status != 303 {
		t.Fatalf("personal key: %d %s", p.status, p.body)
	}
	if p := kb.get("/credentials"); p.status != 200 {
		t.Fatalf("key session: %d", p.status)
	}
	// The key lacks users:read: the console shows what the API would (403).
	if p := kb.get("/members"); p.status != 403 {
		t.Errorf("members page with a key lacking users:read: %d, want 403", p.status)
	}
	if r := cl.as(ownerKey, "POST", inst.url+"/v1/api-keys/"+keyID+"/revoke", nil); r.status != 200 {
		t.Fatalf("revoke: %d", r.status)
	}
	if p := kb.get("/credentials"); p.status != 303 {
		t.Fatalf("key session after revoke: %d, want 303 to /sign-in", p.status)
	}

	// Sign out ends the session server-side.
	ctok := first.csrf("/credentials/new")
	cookies := first.client.Jar.Cookies(mustURL(t, inst.url))
	if p := first.post("/sign-out", url.Values{"csrf": {ctok}}, nil); p.status != 303 {
		t.Fatalf("sign out: %d", p.status)
	}
	replay := newBrowserish(t, inst.url)
	replay.client.Jar.SetCookies(mustURL(t, inst.url), cookies)
	if p := replay.get("/credentials"); p.status != 303 {
		t.Fatalf("old cookie after sign-out: %d", p.status)
	}

	// Attempts are audited (success and refusal) and rate-limited.
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM audit_events WHERE action = 'session.create'`); n < 3 {
		t.Errorf("session.create events: %d", n)
	}
	for _, reason := range []string{"used_link", "expired_link", "service_key"} {
		if n := countRows(t, cl.dbURL, `SELECT count(*) FROM audit_events WHERE action = 'session.refused' AND data->>'reason' = $1`, reason); n != 1 {
			t.Errorf("session.refused %s events: %d", reason, n)
		}
	}
	rl := newBrowserish(t, inst.url)
	rtok := rl.csrf("/sign-in")
	limited := false
	for i := 0; i < 20; i++ {
		p := rl.post("/sign-in/key", url.Values{"csrf": {rtok}, "api_key": {"cv_live_guess" + strings.Repeat("x", i)}}, nil)
		if p.status == 429 {
			limited = p.header.Get("Retry-After") != ""
			break
		}
	}
	if !limited {
		t.Error("20 sign-in attempts in a row were never rate-limited")
	}
	// No response and no audit event carries a key or link token.
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM audit_events WHERE data::text LIKE '%' || $1 || '%' OR data::text LIKE '%' || $2 || '%'`, token, personal); n != 0 {
		t.Errorf("%d audit events hold a token or key", n)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestKeyVerificationCounters: verifications are counted per key and day
// off the hot path (the verifier's batched write-back), as successful,
// refused and rate-limited, and the key's console page charts them.
func TestKeyVerificationCounters(t *testing.T) {
	cl, inst, ownerKey := consoleCluster(t)
	id, key := cl.createKey(inst, ownerKey, map[string]any{"name": "counted", "scopes": []string{"keys:read"},
		"rate_limit": map[string]any{"requests": 2, "window_seconds": 3600}})
	var codes []int
	for range 3 {
		codes = append(codes, cl.as(key, "GET", inst.url+"/v1/whoami", nil).status)
	}
	if r := cl.as(ownerKey, "POST", inst.url+"/v1/api-keys/"+id+"/revoke", nil); r.status != 200 {
		t.Fatalf("revoke: %d", r.status)
	}
	codes = append(codes, cl.as(key, "GET", inst.url+"/v1/whoami", nil).status)
	if want := []int{200, 200, 429, 401}; fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v", codes, want)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := countRows(t, cl.dbURL, `SELECT count(*) FROM api_key_daily_verifications
			WHERE key_id = $1 AND day = (now() AT TIME ZONE 'UTC')::date AND valid = 2 AND rate_limited = 1 AND refused = 1
			AND revoked = 1 AND expired = 0`, id)
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the day's counters never reached 2 allowed, 1 refused (revoked), 1 rate-limited")
		}
		time.Sleep(100 * time.Millisecond)
	}
	b := newBrowserish(t, inst.url)
	b.signInWithLink(newLink(t, cl, inst, ownerKey, whoamiUser(t, cl, inst, ownerKey)))
	p := b.get("/api-keys/" + id)
	if p.status != 200 || !strings.Contains(p.body, "2 allowed, 1 refused: revoked, 0 refused: expired, 1 rate-limited") {
		t.Fatalf("key page (%d) does not chart the counts", p.status)
	}
	if !strings.Contains(p.body, "<svg") || !strings.Contains(p.body, `class="s2"`) {
		t.Error("no chart bars on the key page")
	}
}

// TestConsoleSessionPurge: ended sessions and long-expired links are
// deleted; live ones stay.
func TestConsoleSessionPurge(t *testing.T) {
	cl, inst, ownerKey := consoleCluster(t)
	ownerID := whoamiUser(t, cl, inst, ownerKey)
	for range 3 {
		newBrowserish(t, inst.url).signInWithLink(newLink(t, cl, inst, ownerKey, ownerID))
	}
	newLink(t, cl, inst, ownerKey, ownerID)      // unused, still valid
	waitStartRuns(t, cl.dbURL, "purge_sessions") // its start run would purge the rows planted below
	execSQL(t, cl.dbURL, `UPDATE console_sessions SET last_seen_at = now() - interval '2 hours'
		WHERE id = (SELECT id FROM console_sessions ORDER BY created_at LIMIT 1)`)
	execSQL(t, cl.dbURL, `UPDATE console_sessions SET expires_at = now() - interval '1 minute'
		WHERE id = (SELECT id FROM console_sessions ORDER BY created_at DESC LIMIT 1)`)
	execSQL(t, cl.dbURL, `UPDATE sign_in_links SET expires_at = now() - interval '2 days'
		WHERE id = (SELECT id FROM sign_in_links ORDER BY created_at LIMIT 1)`)
	n, err := inst.s.sessions.Purge(context.Background())
	if err != nil || n != 3 {
		t.Fatalf("purge: %d rows, %v; want 3", n, err)
	}
	if s := countRows(t, cl.dbURL, `SELECT count(*) FROM console_sessions`); s != 1 {
		t.Errorf("%d sessions left, want 1", s)
	}
	if l := countRows(t, cl.dbURL, `SELECT count(*) FROM sign_in_links`); l != 3 {
		t.Errorf("%d links left, want 3", l)
	}
}

// TestConsoleMemberSeesWhatAPIShows: a member's console shows their own
// keys only, no manager pages or controls, and offers only the scopes
// they hold; the org's owner sees everything.
func TestConsoleMemberSeesWhatAPIShows(t *testing.T) {
	cl, inst, ownerKey := consoleCluster(t)
	u := cl.as(ownerKey, "POST", inst.url+"/v1/users", map[string]any{"email": "max@acme.test", "role": "member"})
	memberID := u.json(t)["id"].(string)
	_, _ = cl.createKey(inst, ownerKey, map[string]any{"name": "owner-only-key", "scopes": []string{"keys:read"}})
	m := newBrowserish(t, inst.url)
	if p := m.signInWithLink(newLink(t, cl, inst, ownerKey, memberID)); p.status != 303 {
		t.Fatalf("member sign in: %d", p.status)
	}
	for path, want := range map[string]int{"/endpoints": 403, "/audit": 403, "/members": 200, "/api-keys": 200, "/credentials": 200} {
		if p := m.get(path); p.status != want {
			t.Errorf("member GET %s: %d, want %d", path, p.status, want)
		}
	}
	if p := m.get("/api-keys"); strings.Contains(p.body, "owner-only-key") || strings.Contains(p.body, "bootstrap") {
		t.Error("a member sees other people's keys")
	}
	if p := m.get("/members"); strings.Contains(p.body, `id="add-member"`) || strings.Contains(p.body, "sign-in-link") {
		t.Error("a member gets the manage-members controls")
	}
	newKey := m.get("/api-keys/new").body
	for _, s := range []string{"users:write", "endpoints:write", "audit:read", "credentials:resolve", "keys:verify", `value="admin"`} {
		if strings.Contains(newKey, `value="`+strings.TrimPrefix(s, `value="`)) {
			t.Errorf("a member is offered the scope %s", s)
		}
	}
	// Forcing a manager action through a form is refused by the service.
	tok := m.csrf("/members")
	before := countRows(t, cl.dbURL, `SELECT count(*) FROM users`)
	if p := m.post("/members", url.Values{"csrf": {tok}, "email": {"evil@acme.test"}, "role": {"owner"}}, nil); p.status != 403 {
		t.Errorf("member adding a user: %d, want 403", p.status)
	}
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM users`); n != before {
		t.Errorf("users: %d → %d", before, n)
	}
	o := newBrowserish(t, inst.url)
	o.signInWithLink(newLink(t, cl, inst, ownerKey, whoamiUser(t, cl, inst, ownerKey)))
	if p := o.get("/api-keys"); !strings.Contains(p.body, "owner-only-key") {
		t.Error("the owner does not see the org's keys")
	}
}

// TestSignInLinkAPIRules: POST /v1/users/{id}/sign-in-links follows the
// user-management rules: owners and admins only, only owners for owners,
// users of the caller's org only; refusals write nothing.
func TestSignInLinkAPIRules(t *testing.T) {
	cl, inst, ownerKey := consoleCluster(t)
	ownerID := whoamiUser(t, cl, inst, ownerKey)
	mk := func(email, role string) (string, string) {
		u := cl.as(ownerKey, "POST", inst.url+"/v1/users", map[string]any{"email": email, "role": role})
		if u.status != 201 {
			t.Fatalf("create %s: %d", role, u.status)
		}
		id := u.json(t)["id"].(string)
		_, key := cl.createKey(inst, ownerKey, map[string]any{"name": role, "user_id": id, "scopes": []string{"admin"}})
		return id, key
	}
	adminID, adminKey := mk("ada@acme.test", "admin")
	memberID, memberKey := mk("max@acme.test", "member")
	_, otherOwner := cl.bootstrap(inst, "other")
	cases := []struct {
		name, key, user string
		want            int
	}{
		{"admin for an owner", adminKey, ownerID, 403},
		{"member for a member", memberKey, memberID, 403},
		{"another org's owner", otherOwner, memberID, 404},
		{"unknown user", ownerKey, "00000000-0000-0000-0000-000000000000", 404},
		{"malformed id", ownerKey, "not-a-uuid", 404},
	}
	before := countRows(t, cl.dbURL, `SELECT count(*) FROM sign_in_links`)
	for _, tc := range cases {
		if r := cl.as(tc.key, "POST", inst.url+"/v1/users/"+tc.user+"/sign-in-links", nil); r.status != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.want)
		}
	}
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM sign_in_links`); n != before {
		t.Errorf("refused requests stored %d links", n-before)
	}
	if r := cl.as(adminKey, "POST", inst.url+"/v1/users/"+memberID+"/sign-in-links", nil); r.status != 201 {
		t.Errorf("admin for a member: %d", r.status)
	}
	if r := cl.as(ownerKey, "POST", inst.url+"/v1/users/"+adminID+"/sign-in-links", nil); r.status != 201 {
		t.Errorf("owner for an admin: %d", r.status)
	}
}
