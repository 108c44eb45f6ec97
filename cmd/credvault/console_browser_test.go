package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"credvault/internal/postgres/pgtest"
	"credvault/vault/vaulttest"
)

// chromiumPath is Debian's chromium; .ci/run installs it when missing.
const chromiumPath = "/usr/bin/chromium"

// shotsDir is where the browser tests write their 1280×800 screenshots:
// outside the repository ($TMPDIR/credvault-console-shots).
func shotsDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "credvault-console-shots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newBrowser starts a headless Chromium with a fresh profile; the test
// fails rather than skips when it is missing (CI installs it).
func newBrowser(t *testing.T, timeout time.Duration) (context.Context, context.CancelFunc) {
	t.Helper()
	path := chromiumPath
	if _, err := os.Stat(path); err != nil {
		if p, lerr := exec.LookPath("chromium"); lerr == nil {
			path = p
		} else {
			t.Fatalf("chromium is not installed at %s (apt-get install chromium; .ci/run does it)", chromiumPath)
		}
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(browserProfileDir(t)),
	}
	// A loaded machine occasionally fails a browser start; one more try
	// tells that apart from a missing or broken chromium.
	var err error
	for attempt := range 2 {
		ctx, cancelTimeout := context.WithTimeout(context.Background(), timeout)
		actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
		bctx, cancelBrowser := chromedp.NewContext(actx)
		if err = chromedp.Run(bctx); err == nil {
			return bctx, func() { cancelBrowser(); cancelAlloc(); cancelTimeout() }
		}
		cancelBrowser()
		cancelAlloc()
		cancelTimeout()
		t.Logf("start chromium (attempt %d): %v", attempt+1, err)
	}
	t.Fatalf("start chromium: %v", err)
	return nil, nil
}

// browserProfileDir makes Chromium's profile directory. It is not
// t.TempDir: Chromium's helper processes (crashpad, the zygote) may still
// write into the profile for a moment after the browser process has exited,
// and t.TempDir's single RemoveAll then fails the test. The directory is
// removed with retries over a few seconds instead, and a leftover is logged,
// never a failure.
func browserProfileDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "credvault-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var err error
		for range 20 {
			if err = os.RemoveAll(dir); err == nil {
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Logf("chromium profile %s left behind: %v", dir, err)
	})
	return dir
}

// tab is one browser profile (its own cookies) driven by the test, which
// keeps the HTML of every page it saw.
type tab struct {
	t     *testing.T
	ctx   context.Context
	name  string
	shots string
	mu    *sync.Mutex
	pages *[]seenPage
}

type seenPage struct {
	label, url, html string
}

func (b *tab) run(actions ...chromedp.Action) {
	b.t.Helper()
	if err := chromedp.Run(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", b.name, err)
	}
}

// snap records the current page's HTML under label and, when shot is
// set, writes a 1280×800 screenshot named after it.
func (b *tab) snap(label string, shot bool) string {
	b.t.Helper()
	var html, loc string
	b.run(chromedp.OuterHTML("html", &html, chromedp.ByQuery), chromedp.Location(&loc))
	// Every visible form control has a label (label[for], a wrapping
	// label, or aria-label), so screen readers name it.
	var unlabeled []string
	b.run(chromedp.Evaluate(`Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
		.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
		.map(e => e.name || e.id || e.outerHTML.slice(0, 60))`, &unlabeled))
	for _, u := range unlabeled {
		b.t.Errorf("%s: form control %q has no label", label, u)
	}
	b.mu.Lock()
	*b.pages = append(*b.pages, seenPage{label: b.name + "/" + label, url: loc, html: html})
	b.mu.Unlock()
	if shot {
		var png []byte
		b.run(chromedp.CaptureScreenshot(&png))
		if err := os.WriteFile(filepath.Join(b.shots, label+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	return html
}

// waitURL waits (bounded) until the address contains sub: a submitted
// form has been answered and its redirect followed.
func (b *tab) waitURL(sub string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(b.location(), sub) {
			b.run(chromedp.WaitVisible("main h1", chromedp.ByQuery))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("%s: address never contained %q (at %s)", b.name, sub, b.location())
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	var s string
	b.run(chromedp.Text(sel, &s, chromedp.ByQuery))
	return s
}

func (b *tab) location() string {
	b.t.Helper()
	var s string
	b.run(chromedp.Location(&s))
	return s
}

// acceptDialogs answers every confirm() with OK, as a person would.
func acceptDialogs(ctx context.Context) {
	chromedp.ListenTarget(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			go func() { _ = chromedp.Run(ctx, page.HandleJavaScriptDialog(true)) }()
		}
	})
}

var signInLineRe = regexp.MustCompile(`Sign in:\s+(http://\S+)`)
var adminKeyRe = regexp.MustCompile(`Admin key:\s+(cv_\S+)`)

// TestConsoleBrowser drives the console in headless Chromium through the
// flows a team goes through: the owner signs in with the link `credvault
// dev` printed, connects Stripe with only a key, points it at a local
// upstream and shares it with a member as "use"; the member signs in with
// their own link, runs Test connection, and can neither see the value nor
// edit; the owner creates an API key, copies it from the one-time reveal,
// reloads and sees only prefix…last4, uses it on /v1/whoami, revokes it
// and the next call is 401; then creates a JWT key for an agent (test
// mode, label staging), copies the whole wrapped token, uses it, reloads
// to prefix…last4, and has a bad agent and a bad label refused with
// nothing written; deleting the used credential shows the workflows. Every page's HTML is searched for the planted value and key.
func TestConsoleBrowser(t *testing.T) {
	if vaulttest.Real() {
		t.Skip("runs credvault dev with its built-in transit server")
	}
	const planted = "sk_live_PLANTEDconsoleValue7f3a9"
	var (
		upMu    sync.Mutex
		upAuths []string
	)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upMu.Lock()
		upAuths = append(upAuths, r.Header.Get("Authorization"))
		upMu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+planted {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"balance"}`)
	}))
	defer upstream.Close()
	upHost := strings.TrimPrefix(upstream.URL, "http://")

	_, dbURL := pgtest.New(t)
	s := startRun(t, map[string]string{
		"CREDVAULT_ADDR": "127.0.0.1:0", "DATABASE_URL": dbURL, "CREDVAULT_DATA_DIR": t.TempDir(),
		"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true",
	}, "dev")
	out := s.stdout.String()
	link := signInLineRe.FindStringSubmatch(out)
	admin := adminKeyRe.FindStringSubmatch(out)
	if link == nil || admin == nil {
		t.Fatalf("dev printed no sign-in link or admin key:\n%s", out)
	}
	adminKey := admin[1]

	bctx, stop := newBrowser(t, 3*time.Minute)
	defer stop()
	shots := shotsDir(t)
	var mu sync.Mutex
	var pages []seenPage
	owner := &tab{t: t, ctx: bctx, name: "owner", shots: shots, mu: &mu, pages: &pages}
	acceptDialogs(owner.ctx)
	owner.run(chromedp.EmulateViewport(1280, 800))

	// Signed out, every page leads to the sign-in page.
	owner.run(chromedp.Navigate(s.url+"/credentials"), chromedp.WaitVisible("#api_key", chromedp.ByID))
	owner.snap("sign-in", true)

	// The owner signs in with the link dev printed.
	owner.run(chromedp.Navigate(link[1]), chromedp.WaitVisible("#continue", chromedp.ByID))
	owner.snap("sign-in-link", true)
	owner.run(chromedp.Click("#continue", chromedp.ByID))
	owner.waitURL("/credentials")
	if h := owner.text("main h1"); h != "Credentials" {
		t.Fatalf("after sign-in: h1 = %q", h)
	}
	owner.snap("credentials-empty", true)

	// Connect Stripe with only the key.
	owner.run(chromedp.Navigate(s.url+"/credentials/new"), chromedp.WaitVisible(".grid", chromedp.ByQuery))
	owner.snap("connect-grid", true)
	owner.run(chromedp.Click(`a[href="/credentials/new?service=stripe"]`, chromedp.ByQuery), chromedp.WaitVisible("#value", chromedp.ByID))
	owner.snap("connect-stripe", true)
	owner.run(chromedp.SendKeys("#value", planted, chromedp.ByID), chromedp.Submit("#value", chromedp.ByID),
		chromedp.WaitVisible("#h-meta", chromedp.ByID))
	meta := owner.text("dl.meta")
	if !strings.Contains(meta, "••••9a3") && !strings.Contains(meta, "••••f3a9") {
		t.Fatalf("detail shows no hint ••••last4: %q", meta)
	}
	if !strings.Contains(meta, "api.stripe.com") || !strings.Contains(meta, "Authorization: Bearer") {
		t.Fatalf("Stripe preset not applied: %q", meta)
	}
	credURL := owner.location()
	credPath := credURL[strings.Index(credURL, "/credentials/"):]
	if i := strings.IndexByte(credPath, '?'); i >= 0 {
		credPath = credPath[:i]
	}
	credID := strings.TrimPrefix(credPath, "/credentials/")

	// Point it at the local upstream (the value again: changing where it
	// goes needs it).
	owner.run(
		chromedp.SetValue("#s-base", upstream.URL, chromedp.ByID),
		chromedp.SetValue("#s-hosts", upHost, chromedp.ByID),
		chromedp.SendKeys("#s-value", planted, chromedp.ByID),
		chromedp.Click("#save-settings", chromedp.ByID),
	)
	owner.waitURL("notice=saved")

	// Add a member and create their sign-in link on the Members page.
	owner.run(chromedp.Navigate(s.url+"/members"), chromedp.WaitVisible("#m-email", chromedp.ByID),
		chromedp.SendKeys("#m-email", "mia@default.test", chromedp.ByID), chromedp.Click("#add-member", chromedp.ByID))
	owner.waitURL("notice=added")
	owner.run(chromedp.Click(`button[data-link-for="mia@default.test"]`, chromedp.ByQuery), chromedp.WaitVisible("#link", chromedp.ByID))
	owner.snap("members", true)
	var memberLink string
	owner.run(chromedp.Value("#link", &memberLink, chromedp.ByID))
	if !strings.HasPrefix(memberLink, s.url+"/sign-in/link/") {
		t.Fatalf("member link = %q", memberLink)
	}

	// Share the credential with the member as "use".
	owner.run(chromedp.Navigate(s.url+credPath), chromedp.WaitVisible("#save-sharing", chromedp.ByID),
		chromedp.Click(`input[name="mode"][value="members"]`, chromedp.ByQuery),
		chromedp.SetValue(`select[name^="perm_"]`, "use", chromedp.ByQuery),
		chromedp.Click("#save-sharing", chromedp.ByID))
	owner.waitURL("notice=shared")
	owner.snap("credential-owner", true)
	owner.run(chromedp.Navigate(s.url+"/credentials"), chromedp.WaitVisible("table", chromedp.ByQuery))
	owner.snap("credentials-list", true)

	// The member, in a browser of their own (own profile and cookies), signs in with their
	// link and tests the connection.
	mctx, mstop := newBrowser(t, 2*time.Minute)
	defer mstop()
	member := &tab{t: t, ctx: mctx, name: "member", shots: shots, mu: &mu, pages: &pages}
	member.run(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(memberLink), chromedp.WaitVisible("#continue", chromedp.ByID),
		chromedp.Click("#continue", chromedp.ByID))
	member.waitURL("/credentials")
	member.snap("member-credentials", false)
	member.run(chromedp.Navigate(s.url+credPath), chromedp.WaitVisible("#test", chromedp.ByID),
		chromedp.Click("#test", chromedp.ByID), chromedp.WaitVisible("#test-result", chromedp.ByID))
	if r := member.text("#test-result"); !strings.Contains(r, "Works") {
		t.Fatalf("member's test connection: %q", r)
	}
	html := member.snap("credential-member", true)
	for _, ctl := range []string{`id="save-settings"`, `id="save-sharing"`, `id="delete"`} {
		if strings.Contains(html, ctl) {
			t.Errorf("a member with use sees the control %s", ctl)
		}
	}
	upMu.Lock()
	if len(upAuths) == 0 || upAuths[len(upAuths)-1] != "Bearer "+planted {
		t.Errorf("upstream got %q, want the injected bearer", upAuths)
	}
	upMu.Unlock()
	// Editing anyway (a forged form with the member's own valid token) is
	// refused by the service.
	var status string
	member.run(chromedp.Evaluate(fmt.Sprintf(`(function(){
		var f=document.createElement('form');f.method='post';f.action=%q;
		var c=document.createElement('input');c.name='csrf';c.value=document.querySelector('input[name=csrf]').value;f.appendChild(c);
		var n=document.createElement('input');n.name='name';n.value='hijacked';f.appendChild(n);
		document.body.appendChild(f);f.submit();return 'sent';})()`, credPath+"/settings"), &status))
	member.waitURL(credPath + "/settings")
	// Refused on the credential's own page, with the service's reason.
	if h, msg := member.text("main h1"), member.text("p.error"); h != "Stripe" || !strings.Contains(msg, "manage") {
		t.Errorf("member editing: h1 = %q, message %q; want the credential's page saying manage is needed", h, msg)
	}
	member.snap("member-edit-refused", false)
	r := getJSON(t, "GET", s.url+"/v1/credentials/"+credID, adminKey)
	if r["name"] != "Stripe" {
		t.Errorf("credential name after the member's attempt = %v", r["name"])
	}

	// The owner creates an API key, copies it, reloads.
	owner.run(chromedp.Navigate(s.url+"/api-keys/new"), chromedp.WaitVisible("#k-name", chromedp.ByID))
	owner.snap("api-key-new", true)
	owner.run(chromedp.SendKeys("#k-name", "whoami-check", chromedp.ByID),
		chromedp.Click(`input[name="scopes"][value="keys:read"]`, chromedp.ByQuery),
		chromedp.SetValue("#k-exp", "30d", chromedp.ByID),
		chromedp.Click("#create-key", chromedp.ByID), chromedp.WaitVisible("#secret", chromedp.ByID))
	var key string
	owner.run(chromedp.Value("#secret", &key, chromedp.ByID))
	if !strings.HasPrefix(key, "cv_live_") {
		t.Fatalf("revealed key = %q", key)
	}
	owner.snap("api-key-reveal", true)
	owner.run(grantClipboard(s.url), chromedp.Click(`button[data-copy="secret"]`, chromedp.ByQuery),
		waitCopied())
	var copied string
	if err := chromedp.Run(owner.ctx, chromedp.Evaluate(`navigator.clipboard.readText()`, &copied, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
		return p.WithAwaitPromise(true)
	})); err != nil {
		t.Fatalf("read clipboard: %v", err)
	}
	if copied != key {
		t.Fatalf("clipboard holds %q, want the revealed key", copied)
	}
	owner.run(chromedp.Reload(), chromedp.WaitVisible("#display", chromedp.ByID))
	keyPage := owner.location()
	if !strings.Contains(keyPage, "/api-keys/") {
		t.Fatalf("reload went to %s, want the key's page", keyPage)
	}
	html = owner.snap("api-key-detail", true)
	if strings.Contains(html, key) {
		t.Fatal("the key is still on the page after a reload")
	}
	display := owner.text("#display")
	if display != key[:len("cv_live")]+"_…"+key[len(key)-4:] {
		t.Fatalf("after reload: display %q", display)
	}
	if code := callStatus(t, s.url+"/v1/whoami", key); code != 200 {
		t.Fatalf("whoami with the new key: %d", code)
	}
	owner.run(chromedp.Navigate(s.url+"/api-keys"), chromedp.WaitVisible("table", chromedp.ByQuery))
	owner.snap("api-keys", true)
	owner.run(chromedp.Navigate(keyPage), chromedp.WaitVisible("#revoke", chromedp.ByID),
		chromedp.Click("#revoke", chromedp.ByID), chromedp.WaitVisible("#confirm", chromedp.ByID))
	owner.snap("api-key-revoke", true)
	owner.run(chromedp.Click("#confirm", chromedp.ByID))
	owner.waitURL("notice=revoked")
	if code := callStatus(t, s.url+"/v1/whoami", key); code != 401 {
		t.Fatalf("whoami after revoke: %d, want 401", code)
	}

	// The owner creates a JWT key for an agent, in test mode, labelled
	// staging: the reveal shows the whole token wrapped, the copy button
	// copies all of it, it works on /v1/whoami, and a reload shows only
	// prefix…last4.
	owner.run(chromedp.Navigate(s.url+"/api-keys/new"), chromedp.WaitVisible("#k-name", chromedp.ByID),
		chromedp.SendKeys("#k-name", "support-agent", chromedp.ByID),
		chromedp.Click(`input[name="scopes"][value="keys:read"]`, chromedp.ByQuery),
		chromedp.Click(`input[name="format"][value="jwt"]`, chromedp.ByQuery),
		chromedp.SendKeys("#k-agent", "support-bot", chromedp.ByID),
		chromedp.Click(`input[name="mode"][value="test"]`, chromedp.ByQuery),
		chromedp.SendKeys("#k-env", "staging", chromedp.ByID))
	owner.snap("api-key-new-jwt", true)
	owner.run(chromedp.Click("#create-key", chromedp.ByID), chromedp.WaitVisible("#secret", chromedp.ByID))
	var jwtKey string
	owner.run(chromedp.Value("#secret", &jwtKey, chromedp.ByID))
	if !strings.HasPrefix(jwtKey, "eyJ") || strings.Count(jwtKey, ".") != 2 {
		t.Fatalf("revealed JWT key = %q", jwtKey)
	}
	// All of it is on screen: no horizontal scroll in the field or the
	// page, and no hidden lines in the field.
	var fit []bool
	owner.run(chromedp.Evaluate(`(function(){var e=document.getElementById('secret');
		return [e.scrollWidth<=e.clientWidth, e.scrollHeight<=e.clientHeight+1, document.documentElement.scrollWidth<=window.innerWidth];})()`, &fit))
	if len(fit) != 3 || !fit[0] || !fit[1] || !fit[2] {
		t.Errorf("the JWT key does not fit its field wrapped (no horizontal scroll, every line shown, page not wider): %v", fit)
	}
	owner.snap("api-key-reveal-jwt", true)
	owner.run(chromedp.Click(`button[data-copy="secret"]`, chromedp.ByQuery), waitCopied())
	copied = ""
	if err := chromedp.Run(owner.ctx, chromedp.Evaluate(`navigator.clipboard.readText()`, &copied, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
		return p.WithAwaitPromise(true)
	})); err != nil {
		t.Fatalf("read clipboard: %v", err)
	}
	if copied != jwtKey {
		t.Fatalf("clipboard holds %d characters %q, want the whole JWT key (%d)", len(copied), copied, len(jwtKey))
	}
	if code := callStatus(t, s.url+"/v1/whoami", jwtKey); code != 200 {
		t.Fatalf("whoami with the console's JWT key: %d", code)
	}
	owner.run(chromedp.Reload(), chromedp.WaitVisible("#display", chromedp.ByID))
	if !strings.Contains(owner.location(), "/api-keys/") {
		t.Fatalf("reload went to %s, want the key's page", owner.location())
	}
	html = owner.snap("api-key-detail-jwt", true)
	if strings.Contains(html, jwtKey) || strings.Contains(html, jwtKey[:60]) {
		t.Fatal("the JWT key is still on the page after a reload")
	}
	if d := owner.text("#display"); d != "jwt_test_…"+jwtKey[len(jwtKey)-4:] {
		t.Fatalf("after reload: display %q", d)
	}
	for sel, want := range map[string]string{"#format": "JWT", "#agent": "support-bot", "#mode": "test", "#environment": "staging"} {
		if got := owner.text(sel); got != want {
			t.Errorf("key page %s = %q, want %q", sel, got, want)
		}
	}
	// A bad agent (on an opaque key) and a bad label are refused with a
	// message naming the field, and write nothing.
	keysBefore := countRows(t, dbURL, `SELECT count(*) FROM api_keys`)
	for _, bad := range []struct {
		label, field string
		fill         []chromedp.Action
	}{
		{"api-key-bad-agent", "agent", []chromedp.Action{chromedp.SendKeys("#k-agent", "support-bot", chromedp.ByID)}},
		{"api-key-bad-label", "environment", []chromedp.Action{chromedp.Click(`input[name="format"][value="jwt"]`, chromedp.ByQuery),
			chromedp.SendKeys("#k-env", "Staging EU", chromedp.ByID)}},
	} {
		owner.run(chromedp.Navigate(s.url+"/api-keys/new"), chromedp.WaitVisible("#k-name", chromedp.ByID),
			chromedp.SendKeys("#k-name", "refused", chromedp.ByID),
			chromedp.Click(`input[name="scopes"][value="keys:read"]`, chromedp.ByQuery))
		owner.run(bad.fill...)
		owner.run(chromedp.Click("#create-key", chromedp.ByID), chromedp.WaitVisible("p.error", chromedp.ByQuery))
		if msg := owner.text("p.error"); !strings.Contains(msg, `field "`+bad.field+`"`) {
			t.Errorf("%s: message %q does not name field %s", bad.label, msg, bad.field)
		}
		owner.snap(bad.label, true)
	}
	if n := countRows(t, dbURL, `SELECT count(*) FROM api_keys`); n != keysBefore {
		t.Errorf("refused forms stored %d keys", n-keysBefore)
	}
	owner.run(chromedp.Navigate(s.url+"/api-keys?environment=staging"), chromedp.WaitVisible("table", chromedp.ByQuery))
	if rows := owner.text("tbody"); !strings.Contains(rows, "support-agent") || strings.Contains(rows, "whoami-check") {
		t.Errorf("environment=staging lists %q", rows)
	}
	owner.snap("api-keys-staging", true)

	// A workflow uses the credential; deleting it shows that workflow.
	req, _ := http.NewRequest("GET", s.url+"/v1/proxy/"+credID+"/v1/balance", nil)
	req.Header.Set("X-API-Key", adminKey)
	req.Header.Set("X-Credvault-Workflow-Id", "wf-billing-sync")
	req.Header.Set("X-Credvault-Node-Id", "charge-node")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("proxy call: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	waitUsage(t, s.url, credID, adminKey, "wf-billing-sync")
	owner.run(chromedp.Navigate(s.url+credPath), chromedp.WaitVisible("#delete", chromedp.ByID))
	owner.snap("credential-usage", true)
	owner.run(chromedp.Click("#delete", chromedp.ByID), chromedp.WaitVisible("#workflows", chromedp.ByID))
	if wf := owner.text("#workflows"); !strings.Contains(wf, "wf-billing-sync") {
		t.Fatalf("delete confirmation lists %q", wf)
	}
	owner.snap("credential-delete", true)
	owner.run(chromedp.Click("#force-delete", chromedp.ByID))
	owner.waitURL("notice=deleted")
	if code := callStatus(t, s.url+"/v1/credentials/"+credID, adminKey); code != 404 {
		t.Fatalf("credential after forced delete: %d", code)
	}

	// The remaining pages, for the screenshots and the search.
	for _, p := range []struct{ path, label string }{
		{"/credentials", "credentials"}, {"/endpoints", "endpoints"}, {"/audit", "audit"},
		{"/credentials/new?service=custom", "connect-custom"},
	} {
		owner.run(chromedp.Navigate(s.url+p.path), chromedp.WaitVisible("main h1", chromedp.ByQuery))
		owner.snap(p.label, true)
	}
	owner.run(chromedp.EmulateViewport(390, 844), chromedp.Navigate(s.url+"/api-keys"), chromedp.WaitVisible("main h1", chromedp.ByQuery))
	owner.snap("phone-api-keys", true)

	// The planted value is on no page; the key only on its reveal.
	for _, p := range pages {
		if strings.Contains(p.html, planted) {
			t.Errorf("page %s (%s) contains the credential value", p.label, p.url)
		}
		if strings.Contains(p.html, key) && p.label != "owner/api-key-reveal" {
			t.Errorf("page %s (%s) contains the API key", p.label, p.url)
		}
		if strings.Contains(p.html, jwtKey) && p.label != "owner/api-key-reveal-jwt" {
			t.Errorf("page %s (%s) contains the JWT API key", p.label, p.url)
		}
	}
	t.Logf("screenshots in %s", shots)
}

// waitCopied waits (bounded) until the copy button reports that the
// clipboard write finished, so that reading it back sees the new value.
func waitCopied() chromedp.Action {
	return chromedp.Poll(`document.getElementById('copied').textContent !== ''`, nil, chromedp.WithPollingTimeout(10*time.Second))
}

// grantClipboard lets the console's copy button write to the clipboard and
// the test read it back, as a person's browser would after their consent.
func grantClipboard(origin string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		c := chromedp.FromContext(ctx)
		bctx := cdp.WithExecutor(ctx, c.Browser)
		perms := []browser.PermissionType{browser.PermissionTypeClipboardReadWrite, browser.PermissionTypeClipboardSanitizedWrite}
		g := browser.GrantPermissions(perms).WithOrigin(origin)
		if c.BrowserContextID != "" {
			g = g.WithBrowserContextID(c.BrowserContextID)
		}
		return g.Do(bctx)
	})
}

// getJSON calls the API with a key and decodes the object it answers.
func getJSON(t *testing.T, method, url, key string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return m
}

// callStatus is the status of a GET with a key.
func callStatus(t *testing.T, url, key string) int {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitUsage waits (bounded) until the usage writer has stored a use by
// workflow.
func waitUsage(t *testing.T, base, credID, key, workflow string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m := getJSON(t, "GET", base+"/v1/credentials/"+credID+"/usage", key)
		b, _ := json.Marshal(m)
		if strings.Contains(string(b), workflow) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("usage by %s never recorded", workflow)
}
