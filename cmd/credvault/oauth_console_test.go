package main

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestOAuthConsoleConnect drives the console in headless Chromium: the
// owner connects an OAuth service (the fosite provider) from "Connect a
// service", follows the link to the provider and lands back on the
// credential's page showing "connected"; after the provider refuses the
// grant the badge says needs_reauth and "Reconnect" connects the same id
// again. No page holds a token.
func TestOAuthConsoleConnect(t *testing.T) {
	t.Parallel() // waits for a token to expire
	e := newOAuthEnv(t, 2*time.Second, 1, nil)
	inst := e.insts[0]
	link := newLink(t, e.cl, inst, e.owner, whoamiUser(t, e.cl, inst, e.owner))

	bctx, stop := newBrowser(t, 2*time.Minute)
	defer stop()
	var mu sync.Mutex
	var pages []seenPage
	owner := &tab{t: t, ctx: bctx, name: "owner", shots: shotsDir(t), mu: &mu, pages: &pages}
	owner.run(chromedp.EmulateViewport(1280, 800))
	owner.run(chromedp.Navigate(link), chromedp.WaitVisible("#continue", chromedp.ByID), chromedp.Click("#continue", chromedp.ByID))
	owner.waitURL("/credentials")

	owner.run(chromedp.Navigate(inst.url+"/credentials/new"), chromedp.WaitVisible("#oauth-start", chromedp.ByID))
	owner.snap("oauth-connect-form", true)
	owner.run(chromedp.SendKeys("#oauth-name", "Fosite API", chromedp.ByID),
		chromedp.SendKeys("#oauth-base", e.as.URL+"/api", chromedp.ByID),
		chromedp.SendKeys("#oauth-hosts", strings.TrimPrefix(e.as.URL, "http://"), chromedp.ByID),
		chromedp.Click("#oauth-start", chromedp.ByID), chromedp.WaitVisible("#authorize-link", chromedp.ByID))
	owner.snap("oauth-continue", true)
	owner.run(chromedp.Click("#authorize-link", chromedp.ByID))
	owner.waitURL("connected=1")
	if got := owner.text("#oauth-status"); got != "connected" {
		t.Fatalf("badge after connecting = %q", got)
	}
	owner.snap("oauth-connected", true)
	loc := owner.location()
	id := strings.TrimPrefix(loc[strings.Index(loc, "/credentials/")+len("/credentials/"):], "")
	id, _, _ = strings.Cut(id, "?")
	if p := e.proxy(0, id); p.status != 200 {
		t.Fatalf("proxied call through the console's connection: %d %s", p.status, p.body)
	}

	// The provider stops honouring credvault's refresh token.
	issued := e.as.IssuedTokens()
	if status, _ := e.as.RefreshDirectly(issued[len(issued)-1]); status != 200 {
		t.Fatalf("out-of-band refresh: %d", status)
	}
	time.Sleep(2100 * time.Millisecond)
	if p := e.proxy(0, id); p.status != 409 {
		t.Fatalf("call after the grant was refused: %d %s", p.status, p.body)
	}
	owner.run(chromedp.Navigate(inst.url+"/credentials/"+id), chromedp.WaitVisible("#oauth-status", chromedp.ByID))
	if got := owner.text("#oauth-status"); got != "needs_reauth" {
		t.Fatalf("badge after invalid_grant = %q", got)
	}
	if got := owner.text("#oauth-connect"); got != "Reconnect" || !strings.Contains(owner.text("#oauth-error"), "invalid_grant") {
		t.Fatalf("button %q, error %q", got, owner.text("#oauth-error"))
	}
	owner.snap("oauth-needs-reauth", true)
	owner.run(chromedp.Click("#oauth-connect", chromedp.ByID), chromedp.WaitVisible("#authorize-link", chromedp.ByID),
		chromedp.Click("#authorize-link", chromedp.ByID))
	owner.waitURL("connected=1")
	if got := owner.text("#oauth-status"); got != "connected" || !strings.Contains(owner.location(), id) {
		t.Fatalf("after reconnect: badge %q at %s", got, owner.location())
	}
	owner.snap("oauth-reconnected", true)

	seen := ""
	for _, p := range pages {
		seen += p.html
	}
	for _, tok := range e.as.IssuedTokens() {
		if strings.Contains(seen, tok) {
			t.Fatal("a console page holds a token")
		}
	}
	e.noTokenLeaks()
}
