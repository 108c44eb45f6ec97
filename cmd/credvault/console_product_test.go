package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"credvault/vault/vaulttest"
)

// fitJS reports what does not fit the viewport: the page wider than the
// window, or a table wider than its box (a table that scrolls sideways).
const fitJS = `(function(){var out=[];
	var de=document.documentElement;
	if (de.scrollWidth > de.clientWidth) out.push('page '+de.scrollWidth+'>'+de.clientWidth);
	document.querySelectorAll('main *').forEach(function(e){ var r=e.getBoundingClientRect(); if (r.width>0 && r.right > de.clientWidth+1 && getComputedStyle(e).position!=='absolute') out.push((e.id||e.tagName)+' ends at '+Math.round(r.right)); });
	document.querySelectorAll('.tablewrap').forEach(function(w,i){ if (w.scrollWidth > w.clientWidth+1) out.push('table '+i+' '+w.scrollWidth+'>'+w.clientWidth); });
	return out;})()`

// markerJS lists each visible person summary (details.person, as in the
// audit log's Who column) whose ▸ marker wrapped onto a line of its own:
// the summary's box then ends a line below its text's last line.
const markerJS = `(function(){var out=[];
	document.querySelectorAll('details.person summary').forEach(function(s){
		if (!s.offsetParent) return;
		var r=document.createRange(); r.selectNodeContents(s);
		var rects=Array.prototype.filter.call(r.getClientRects(), function(x){ return x.width>0; });
		if (!rects.length) return;
		var last=rects[rects.length-1], box=s.getBoundingClientRect();
		if (box.bottom-last.bottom > last.height/2) out.push(s.textContent.trim()+' (text ends '+Math.round(last.bottom)+', summary '+Math.round(box.bottom)+')');
	});
	return out;})()`

// productPages are the pages TestConsoleProduct photographs at 1280 and
// 390 px wide, with the element each waits for.
type productPage struct {
	label, path, wait string
}

// TestConsoleProduct drives the console as a team uses it daily, in
// headless Chromium at 1280 and 390 px, and writes a screenshot of every
// page at both widths (in $TMPDIR/credvault-console-shots/product):
//   - people by name and email with the id one click away (audit log, key
//     owners, sharing, members), the audit log filtered by email;
//   - inline errors naming the field on the forms (a member whose email
//     exists, a Basic credential without a username, an endpoint whose
//     name is taken), with what was typed kept and nothing written; a 4xx
//     page that says what happened and leads back;
//   - a favicon, "1 member", a search box and filters on credentials,
//     keys and members, Basic in the credential form;
//   - tables that fit both widths, relative times with the exact time on
//     hover;
//   - charts on a round scale with the outcomes per key, per credential
//     and for the org; empty states that say what to do next;
//   - keyboard use: every control reachable with Tab, focus visible.
func TestConsoleProduct(t *testing.T) {
	t.Parallel() // waits on processes and a browser more than the CPU: overlaps with the other slow ones
	if vaulttest.Real() {
		t.Skip("console flows are covered once, on the dev transit server")
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/denied":
			w.WriteHeader(http.StatusUnauthorized)
		case "/slow-down":
			w.WriteHeader(http.StatusTooManyRequests)
		case "/broken":
			w.WriteHeader(http.StatusBadGateway)
		default:
			fmt.Fprint(w, `{"ok":true}`)
		}
	}))
	defer up.Close()
	cl := newCluster(t, privateEgress())
	inst := cl.start()
	boot, owner := cl.bootstrap(inst, "acme")
	base := inst.url

	bctx, stop := newBrowser(t, 4*time.Minute)
	defer stop()
	shots := filepath.Join(shotsDir(t), "product")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var pages []seenPage
	b := &tab{t: t, ctx: bctx, name: "owner", shots: shots, mu: &mu, pages: &pages}
	acceptDialogs(b.ctx)
	// Signed out: the sign-in page at both widths.
	for _, w := range []struct{ w, h int }{{1280, 800}, {390, 844}} {
		b.run(chromedp.EmulateViewport(int64(w.w), int64(w.h)), emulation.SetScrollbarsHidden(true),
			chromedp.Navigate(base+"/sign-in"), chromedp.WaitVisible("#api_key", chromedp.ByID))
		var bad []string
		b.run(chromedp.Evaluate(fitJS, &bad))
		if len(bad) > 0 {
			t.Errorf("sign-in at %d px does not fit: %v", w.w, bad)
		}
		b.shot(fmt.Sprintf("sign-in-%d", w.w), true)
	}
	// A wrong key is refused on the sign-in page, the field marked.
	b.run(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+"/sign-in"), chromedp.WaitVisible("#api_key", chromedp.ByID),
		chromedp.SendKeys("#api_key", "cv_live_not-a-key", chromedp.ByID), chromedp.Submit("#api_key", chromedp.ByID),
		chromedp.WaitVisible("#err-api_key", chromedp.ByID))
	b.expectInvalid("#api_key", "err-api_key")
	b.shot("sign-in-refused-1280", true)
	b.run(chromedp.Navigate(newLink(t, cl, inst, owner, boot.UserID)),
		chromedp.WaitVisible("#continue", chromedp.ByID), chromedp.Click("#continue", chromedp.ByID))
	b.waitURL("/credentials")

	// Empty states say what to do next.
	for path, want := range map[string]string{
		"/credentials": "Connect your first service", "/endpoints": "Register an endpoint",
	} {
		b.run(chromedp.Navigate(base+path), chromedp.WaitVisible("main h1", chromedp.ByQuery))
		if got := b.text("section.empty"); !strings.Contains(got, want) {
			t.Errorf("%s empty state: %q, want %q", path, got, want)
		}
	}
	b.shot("credentials-empty-1280", true)

	// The favicon is there, linked from every page.
	if r := cl.call("GET", base+"/favicon.ico", nil, nil); r.status != 200 || r.header.Get("Content-Type") != "image/x-icon" || len(r.body) < 100 {
		t.Errorf("favicon.ico: %d %q %d bytes", r.status, r.header.Get("Content-Type"), len(r.body))
	}
	var icon string
	b.run(chromedp.AttributeValue(`link[rel="icon"]`, "href", &icon, nil, chromedp.ByQuery))
	if icon != "/favicon.ico" {
		t.Errorf("icon link %q", icon)
	}

	// People and things through the API.
	mia := cl.as(owner, "POST", base+"/v1/users", map[string]any{"email": "mia@acme.test", "name": "Mia Wong", "role": "member"}).json(t)
	miaID := mia["id"].(string)
	cl.as(owner, "POST", base+"/v1/users", map[string]any{"email": "leo@acme.test", "role": "admin"})
	upHost := strings.TrimPrefix(up.URL, "http://")
	crm := cl.createCredential(inst, owner, map[string]any{"name": "Acme CRM", "service": "acme-crm", "placement": "bearer", "value": "crm-secret-0001",
		"base_url": up.URL, "allowed_hosts": []string{upHost},
		"sharing": map[string]any{"mode": "members", "members": []map[string]any{{"user_id": miaID, "permission": "use"}}}})["id"].(string)
	cl.createCredential(inst, owner, map[string]any{"name": "Stripe live", "service": "stripe", "value": "sk_live_0000000000000001",
		"sharing": map[string]any{"mode": "team"}})
	for _, p := range []string{"/ok", "/ok", "/denied", "/slow-down", "/broken"} {
		if r := cl.as(owner, "GET", base+"/v1/proxy/"+crm+p, nil); r.status == 0 {
			t.Fatalf("proxy %s: no answer", p)
		}
	}
	ciID, ci := cl.createKey(inst, owner, map[string]any{"name": "ci-deploy", "scopes": []string{"keys:read"},
		"rate_limit": map[string]any{"requests": 1, "window_seconds": 3600}})
	oldID, old := cl.createKey(inst, owner, map[string]any{"name": "old-script", "scopes": []string{"keys:read"}})
	cl.as(ci, "GET", base+"/v1/whoami", nil)
	cl.as(ci, "GET", base+"/v1/whoami", nil) // rate-limited
	cl.as(owner, "POST", base+"/v1/api-keys/"+oldID+"/revoke", nil)
	cl.as(old, "GET", base+"/v1/whoami", nil) // refused: revoked
	deadline := time.Now().Add(10 * time.Second)
	for countRows(t, cl.dbURL, `SELECT count(*) FROM credential_usage WHERE credential_id = $1`, crm) < 5 ||
		countRows(t, cl.dbURL, `SELECT count(*) FROM api_key_daily_verifications WHERE key_id = $1 AND rate_limited = 1`, ciID) < 1 ||
		countRows(t, cl.dbURL, `SELECT count(*) FROM api_key_daily_verifications WHERE key_id = $1 AND revoked = 1`, oldID) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("uses and verifications were never written")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Basic placement in the credential form; a Basic credential without
	// a username is refused inline, naming the field, and writes nothing.
	credsBefore := countRows(t, cl.dbURL, `SELECT count(*) FROM credentials`)
	basicForm := func(username string) {
		b.run(chromedp.Navigate(base+"/credentials/new?service=custom"), chromedp.WaitVisible("#placement", chromedp.ByID),
			chromedp.SendKeys("#name", "Twilio", chromedp.ByID), chromedp.SendKeys("#service", "twilio", chromedp.ByID),
			chromedp.SetValue("#placement", "basic", chromedp.ByID),
			chromedp.SetValue("#base_url", "https://api.twilio.com", chromedp.ByID),
			chromedp.SetValue("#allowed_hosts", "api.twilio.com", chromedp.ByID),
			chromedp.SendKeys("#value", "twilio-auth-token-0001", chromedp.ByID))
		if username != "" {
			b.run(chromedp.SendKeys("#username", username, chromedp.ByID))
		}
		b.run(chromedp.Submit("#value", chromedp.ByID))
	}
	basicForm("")
	b.run(chromedp.WaitVisible("p.error", chromedp.ByQuery))
	if msg := b.text("p.error"); !strings.Contains(msg, `"username"`) {
		t.Errorf("Basic without a username: %q does not name the field", msg)
	}
	b.expectInvalid("#username", "err-username")
	var kept string
	b.run(chromedp.Value("#name", &kept, chromedp.ByID))
	if kept != "Twilio" {
		t.Errorf("the refused form lost the name: %q", kept)
	}
	b.shot("connect-basic-refused-1280", true)
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM credentials`); n != credsBefore {
		t.Errorf("a refused Basic credential was stored (%d more)", n-credsBefore)
	}
	basicForm("AC0123456789")
	b.run(chromedp.WaitVisible("#h-meta", chromedp.ByID))
	if meta := b.text("dl.meta"); !strings.Contains(meta, "Authorization: Basic (user AC0123456789)") {
		t.Errorf("Basic credential page: %q", meta)
	}

	// A member whose email exists: the Members page again, the email
	// field marked with the message under it, nothing written.
	usersBefore := countRows(t, cl.dbURL, `SELECT count(*) FROM users`)
	b.run(chromedp.Navigate(base+"/members"), chromedp.WaitVisible("#m-email", chromedp.ByID),
		chromedp.SendKeys("#m-email", "MIA@acme.test", chromedp.ByID), chromedp.SendKeys("#m-name", "Mia again", chromedp.ByID),
		chromedp.Click("#add-member", chromedp.ByID), chromedp.WaitVisible("p.error", chromedp.ByQuery))
	if h := b.text("main h1"); h != "Members" {
		t.Errorf("adding an existing email: h1 %q, want the Members page", h)
	}
	if msg := b.text("#err-email"); !strings.Contains(msg, "already exists") {
		t.Errorf("adding an existing email: field message %q", msg)
	}
	b.expectInvalid("#m-email", "err-email")
	b.run(chromedp.Value("#m-name", &kept, chromedp.ByID))
	if kept != "Mia again" {
		t.Errorf("the refused member form lost the name: %q", kept)
	}
	b.shot("members-duplicate-1280", true)
	if n := countRows(t, cl.dbURL, `SELECT count(*) FROM users`); n != usersBefore {
		t.Errorf("a refused member was stored")
	}
	if r := b.status(base + "/members"); r != 200 {
		t.Errorf("members: %d", r)
	}

	// An endpoint whose name is taken: the field is marked.
	cl.as(owner, "POST", base+"/v1/endpoints", map[string]any{"name": "orders-api", "auth_mode": "private"})
	b.run(chromedp.Navigate(base+"/endpoints"), chromedp.WaitVisible("#e-name", chromedp.ByID),
		chromedp.SendKeys("#e-name", "orders-api", chromedp.ByID), chromedp.Click("#register-endpoint", chromedp.ByID),
		chromedp.WaitVisible("p.error", chromedp.ByQuery))
	b.expectInvalid("#e-name", "err-name")
	b.shot("endpoints-taken-1280", true)

	// A 4xx page says what happened and leads back.
	b.run(chromedp.Navigate(base+"/credentials/00000000-0000-4000-8000-000000000000"), chromedp.WaitVisible("main h1", chromedp.ByQuery))
	if h, back := b.text("main h1"), b.text("main a.button"); h != "Not found" || back != "Back to credentials" {
		t.Errorf("unknown credential: h1 %q, link %q", h, back)
	}

	// Lists: search and filters.
	b.run(chromedp.Navigate(base+"/credentials"), chromedp.WaitVisible("#f-q", chromedp.ByID))
	if rows := b.text("tbody"); !strings.Contains(rows, "1 member") || strings.Contains(rows, "1 members") {
		t.Errorf("credentials sharing column: %q", rows)
	}
	b.run(chromedp.SendKeys("#f-q", "twil", chromedp.ByID), chromedp.Submit("#f-q", chromedp.ByID))
	b.waitURL("q=twil")
	if rows := b.text("tbody"); !strings.Contains(rows, "Twilio") || strings.Contains(rows, "Acme CRM") {
		t.Errorf("search twil: %q", rows)
	}
	for _, c := range []struct{ path, has, hasNot string }{
		{"/credentials?sharing=team", "Stripe live", "Twilio"},
		{"/api-keys?q=ci-dep", "ci-deploy", "old-script"},
		{"/api-keys?status=revoked", "old-script", "ci-deploy"},
	} {
		b.run(chromedp.Navigate(base+c.path), chromedp.WaitVisible("tbody", chromedp.ByQuery))
		if rows := b.text("tbody"); !strings.Contains(rows, c.has) || strings.Contains(rows, c.hasNot) {
			t.Errorf("%s lists %q, want %s and not %s", c.path, rows, c.has, c.hasNot)
		}
	}
	b.run(chromedp.Navigate(base+"/credentials?q=nothing-like-this"), chromedp.WaitVisible("section.empty", chromedp.ByQuery))
	if e := b.text("section.empty"); !strings.Contains(e, "Clear the filters") {
		t.Errorf("no match: %q", e)
	}
	b.run(chromedp.Navigate(base+"/members?q=MIA"), chromedp.WaitVisible("tbody", chromedp.ByQuery))
	if rows := b.text("tbody"); !strings.Contains(rows, "Mia Wong") || strings.Contains(rows, "leo@") || b.text("p.count") != "1 member of 3" {
		t.Errorf("members search MIA: %q (%q)", rows, b.text("p.count"))
	}

	// Names, with the id one click (or Enter) away.
	b.run(chromedp.Navigate(base+"/audit"), chromedp.WaitVisible("details.person summary", chromedp.ByQuery))
	if who := b.text("tbody tr td:nth-child(3) summary"); strings.Contains(who, boot.UserID) || !strings.Contains(who, "@") {
		t.Errorf("audit log Who shows %q, want an email", who)
	}
	b.run(chromedp.Focus("tbody tr td:nth-child(3) summary", chromedp.ByQuery), chromedp.KeyEvent(kb.Enter))
	b.run(chromedp.WaitVisible("tbody tr td:nth-child(3) details[open] code", chromedp.ByQuery))
	if id := b.text("tbody tr td:nth-child(3) details[open] code"); len(id) != 36 {
		t.Errorf("the id behind the name: %q", id)
	}
	b.run(chromedp.Navigate(base+"/audit?actor_id=mia@acme.test"), chromedp.WaitVisible("main h1", chromedp.ByQuery))
	if n := b.count("tbody tr"); n != 0 {
		t.Errorf("audit by mia's email (she did nothing): %d events", n)
	}

	// Charts: round scales and outcomes, per credential, key and org.
	for path, wants := range map[string][]string{
		"/credentials/" + crm: {"succeeded 2", "refused by the API (401/403) 1", "rate-limited by the API (429) 1", "failed (other errors, no answer) 1"},
		"/api-keys/" + ciID:   {"allowed 1", "rate-limited 1"},
		"/api-keys/" + oldID:  {"refused: revoked 1"},
		"/credentials":        {"succeeded 2", "failed (other errors, no answer) 1"},
		"/api-keys":           {"refused: revoked 1", "rate-limited 1"},
	} {
		b.run(chromedp.Navigate(base+path), chromedp.WaitVisible("ul.breakdown", chromedp.ByQuery))
		got := b.text("ul.breakdown")
		for _, w := range wants {
			if !strings.Contains(strings.Join(strings.Fields(got), " "), w) {
				t.Errorf("%s breakdown %q lacks %q", path, got, w)
			}
		}
		var ticks []string
		b.run(chromedp.Evaluate(`Array.from(document.querySelectorAll('figure.chart svg text.tick')).filter(e=>e.getAttribute('text-anchor')==='end').map(e=>e.textContent)`, &ticks))
		if len(ticks) < 2 || ticks[0] != "0" || ticks[len(ticks)-1] == "0" {
			t.Errorf("%s axis ticks %v, want 0 up to a round number", path, ticks)
		}
	}

	// Keyboard: Tab reaches the search box, the filters and the main
	// action, and every focused control shows a visible focus ring.
	b.run(chromedp.Navigate(base+"/credentials"), chromedp.WaitVisible("#f-q", chromedp.ByID))
	reached := map[string]bool{}
	for i := 0; i < 40; i++ {
		b.run(chromedp.KeyEvent(kb.Tab))
		var f struct {
			ID, Tag, Text, Outline string
			Width                  float64
		}
		b.run(chromedp.Evaluate(`(function(){var e=document.activeElement, s=getComputedStyle(e);
			return {ID:e.id, Tag:e.tagName, Text:(e.textContent||'').trim().slice(0,40), Outline:s.outlineStyle, Width:parseFloat(s.outlineWidth)};})()`, &f))
		if f.Tag == "BODY" {
			break
		}
		reached[f.ID] = true
		reached[f.Text] = true
		if f.Outline == "none" || f.Width < 2 {
			t.Errorf("focused %s %q has no visible focus (outline %s %v)", f.Tag, f.ID+f.Text, f.Outline, f.Width)
		}
	}
	for _, want := range []string{"f-q", "f-service", "f-sharing", "Connect a service", "Acme CRM"} {
		if !reached[want] {
			t.Errorf("Tab never reached %q", want)
		}
	}

	// Every page at 1280 and 390 px: nothing wider than the window,
	// relative times with the exact time on hover, screenshots.
	list := []productPage{
		{"credentials", "/credentials", "tbody"}, {"credential", "/credentials/" + crm, "#h-usage"},
		{"connect-custom", "/credentials/new?service=custom", "#placement"}, {"api-keys", "/api-keys", "tbody"},
		{"api-key", "/api-keys/" + ciID, "#h-ver"}, {"members", "/members", "tbody"}, {"audit", "/audit", "tbody"},
		{"endpoints", "/endpoints", "#e-name"}, {"api-key-new", "/api-keys/new", "#k-name"},
		{"connect-grid", "/credentials/new", ".grid"}, {"api-key-revoke", "/api-keys/" + ciID + "/revoke", "#confirm"},
		{"not-found", "/api-keys/00000000-0000-4000-8000-000000000000", "main h1"},
	}
	for _, w := range []struct{ w, h int }{{1280, 800}, {390, 844}} {
		// No scrollbar, so that the screenshot is the full width a person
		// sees (a phone's scrollbars overlay the page).
		b.run(chromedp.EmulateViewport(int64(w.w), int64(w.h)), emulation.SetScrollbarsHidden(true))
		for _, p := range list {
			b.run(chromedp.Navigate(base+p.path), chromedp.WaitVisible(p.wait, chromedp.ByQuery))
			var bad []string
			b.run(chromedp.Evaluate(fitJS, &bad))
			if len(bad) > 0 {
				t.Errorf("%s at %d px does not fit: %v", p.label, w.w, bad)
			}
			var wrapped []string
			b.run(chromedp.Evaluate(markerJS, &wrapped))
			if len(wrapped) > 0 {
				t.Errorf("%s at %d px: the ▸ after a person wraps to its own line: %v", p.label, w.w, wrapped)
			}
			b.shot(fmt.Sprintf("%s-%d", p.label, w.w), true)
		}
	}
	b.run(chromedp.Navigate(base+"/api-keys"), chromedp.WaitVisible("tbody time", chromedp.ByQuery))
	var title, rel string
	b.run(chromedp.AttributeValue("tbody time", "title", &title, nil, chromedp.ByQuery), chromedp.Text("tbody time", &rel, chromedp.ByQuery))
	if !strings.HasSuffix(title, " UTC") || !strings.Contains(rel, "ago") && rel != "just now" {
		t.Errorf("relative time %q with title %q", rel, title)
	}
	b.run(chromedp.Navigate(base+"/members"), chromedp.WaitVisible("#m-email", chromedp.ByID),
		chromedp.SendKeys("#m-email", "leo@acme.test", chromedp.ByID), chromedp.Click("#add-member", chromedp.ByID),
		chromedp.WaitVisible("#err-email", chromedp.ByID))
	b.shot("members-duplicate-390", true)
	t.Logf("screenshots in %s", shots)
}

// expectInvalid checks that the field sel is marked aria-invalid and
// described by the message element id.
func (b *tab) expectInvalid(sel, msgID string) {
	b.t.Helper()
	var inv, desc string
	var ok bool
	b.run(chromedp.AttributeValue(sel, "aria-invalid", &inv, &ok, chromedp.ByQuery),
		chromedp.AttributeValue(sel, "aria-describedby", &desc, nil, chromedp.ByQuery))
	if inv != "true" || !strings.Contains(desc, msgID) {
		b.t.Errorf("%s: aria-invalid %q, aria-describedby %q; want true and %s", sel, inv, desc, msgID)
	}
}

// count is how many elements match sel.
func (b *tab) count(sel string) int {
	b.t.Helper()
	var n int
	b.run(chromedp.Evaluate(fmt.Sprintf(`document.querySelectorAll(%q).length`, sel), &n))
	return n
}

// status is the HTTP status of the page at url as the browser loads it.
func (b *tab) status(url string) int {
	b.t.Helper()
	var n int
	b.run(chromedp.Navigate(url), chromedp.Evaluate(`performance.getEntriesByType('navigation')[0].responseStatus`, &n))
	return n
}

// shot records the page's HTML like snap, and writes a screenshot of the
// whole page (not only the viewport) named label.png.
func (b *tab) shot(label string, _ bool) {
	b.t.Helper()
	b.snap(label, false)
	var png []byte
	b.run(chromedp.FullScreenshot(&png, 100))
	if err := os.WriteFile(filepath.Join(b.shots, label+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
