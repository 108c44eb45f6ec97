package main

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsoleIntegrationsBrowser drives the Integrations and Activity
// pages in headless Chromium at 1280 and 390 px: the owner creates an
// integration (a bad label first: refused, named, nothing written),
// disables another from the list (its key answers 403
// integration_disabled), enables it from its own page (the key works
// again), switches a key off and on from the key page, and reads the
// Activity page: checks, refusals by reason, rate-limit hits, the busiest
// key and integration and the switch events. No key is on any page, and
// no page is wider than a 390 px phone.
func TestConsoleIntegrationsBrowser(t *testing.T) {
	t.Parallel() // with the other integration tests, after the package's serial ones: their waits overlap
	cl := newCluster(t, nil)
	inst := cl.start()
	_, owner := cl.bootstrap(inst, "acme")
	r := cl.as(owner, "POST", inst.url+"/v1/integrations", map[string]any{"name": "support bot", "agent": "claude", "environment": "production"})
	iid := r.json(t)["id"].(string)
	keyID, key := cl.createKey(inst, owner, map[string]any{"name": "bot key", "scopes": []string{"keys:read"}, "integration_id": iid,
		"rate_limit": map[string]any{"requests": 2, "window_seconds": 3600}})
	oldID, oldKey := cl.createKey(inst, owner, map[string]any{"name": "old key", "scopes": []string{"keys:read"}})
	for range 4 { // 2 accepted, 2 rate-limited
		cl.as(key, "GET", inst.url+"/v1/whoami", nil)
	}
	cl.as(owner, "POST", inst.url+"/v1/api-keys/"+oldID+"/revoke", nil)
	cl.as(oldKey, "GET", inst.url+"/v1/whoami", nil) // refused: revoked

	bctx, stop := newBrowser(t, 3*time.Minute)
	defer stop()
	var mu sync.Mutex
	var pages []seenPage
	b := &tab{t: t, ctx: bctx, name: "owner", shots: shotsDir(t), mu: &mu, pages: &pages}
	acceptDialogs(b.ctx)
	b.run(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(inst.url+"/sign-in"), chromedp.WaitVisible("#api_key", chromedp.ByID),
		chromedp.SendKeys("#api_key", owner, chromedp.ByID), chromedp.Submit("#api_key", chromedp.ByID))
	b.waitURL("/credentials")

	// The list, and a create refused for a bad label: named, nothing written.
	b.run(chromedp.Navigate(inst.url+"/integrations"), chromedp.WaitVisible("#integrations", chromedp.ByID))
	if txt := b.text("#integrations"); !strings.Contains(txt, "support bot") || !strings.Contains(txt, "claude") || !strings.Contains(txt, "enabled") {
		t.Fatalf("integrations list: %q", txt)
	}
	b.snap("integrations", true)
	before := countRows(t, cl.dbURL, `SELECT count(*) FROM integrations`)
	b.run(chromedp.SendKeys("#i-name", "billing", chromedp.ByID), chromedp.SendKeys("#i-env", "Prod EU", chromedp.ByID),
		chromedp.Click("#create-integration", chromedp.ByID), chromedp.WaitVisible("p.error", chromedp.ByQuery))
	if msg := b.text("p.error"); !strings.Contains(msg, "environment") {
		t.Fatalf("bad label: %q", msg)
	}
	var invalid string
	b.run(chromedp.AttributeValue("#i-env", "aria-invalid", &invalid, nil, chromedp.ByID))
	if invalid != "true" || countRows(t, cl.dbURL, `SELECT count(*) FROM integrations`) != before {
		t.Fatalf("bad label: aria-invalid %q, or a row was written", invalid)
	}
	b.snap("integrations-bad-label", true)
	b.run(chromedp.Clear("#i-env", chromedp.ByID), chromedp.SendKeys("#i-env", "prod-eu", chromedp.ByID),
		chromedp.Click("#create-integration", chromedp.ByID))
	b.waitURL("/integrations/")
	if h := b.text("main h1"); h != "billing" {
		t.Fatalf("after create: h1 %q", h)
	}

	// Disable from the list: the key is refused on the API.
	b.run(chromedp.Navigate(inst.url+"/integrations"), chromedp.WaitVisible("#integrations", chromedp.ByID),
		chromedp.Click(`button[aria-label="Disable support bot"]`, chromedp.ByQuery))
	b.waitURL("notice=disabled")
	waitForStatus(t, "key after console disable", time.Second, 403, "integration_disabled", func() response {
		return cl.as(key, "GET", inst.url+"/v1/whoami", nil)
	})
	b.snap("integrations-disabled", true)

	// Its page: its key, and Enable.
	b.run(chromedp.Navigate(inst.url+"/integrations/"+iid), chromedp.WaitVisible("#keys", chromedp.ByID))
	if txt := b.text("#keys"); !strings.Contains(txt, "bot key") || b.text("#state") != "disabled" {
		t.Fatalf("integration page: keys %q state %q", txt, b.text("#state"))
	}
	b.snap("integration-disabled", true)
	b.run(chromedp.Click("#switch", chromedp.ByID))
	b.waitURL("notice=enabled")
	if b.text("#state") != "enabled" {
		t.Fatalf("after enable: %q", b.text("#state"))
	}
	waitForStatus(t, "key after console enable", time.Second, 429, "rate_limited", func() response {
		return cl.as(key, "GET", inst.url+"/v1/whoami", nil) // its window is as it was: still exhausted
	})

	// A key alone, from its page.
	b.run(chromedp.Navigate(inst.url+"/api-keys/"+keyID), chromedp.WaitVisible("#key-switch", chromedp.ByID))
	if txt := b.text("#integration"); txt != "support bot" {
		t.Fatalf("key page integration: %q", txt)
	}
	b.run(chromedp.Click("#key-switch", chromedp.ByID))
	b.waitURL("notice=disabled")
	waitForStatus(t, "key disabled in the console", time.Second, 403, "api_key_disabled", func() response {
		return cl.as(key, "GET", inst.url+"/v1/whoami", nil)
	})
	b.snap("api-key-disabled", true)
	b.run(chromedp.Click("#key-switch", chromedp.ByID))
	b.waitURL("notice=enabled")

	// Activity: the counters are written back about once a second.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.run(chromedp.Navigate(inst.url+"/activity"), chromedp.WaitVisible("#tiles", chromedp.ByID))
		limited, _ := strconv.Atoi(b.text("#t-limited"))
		rows := reasonCounts(b.text("#reasons"))
		if limited >= 3 && rows["revoked_api_key"] == 1 && rows["integration_disabled"] >= 1 && rows["api_key_disabled"] >= 1 &&
			b.exists("#top-integrations") && b.exists("#events") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("activity never showed the checks: limited %d, refusals by reason %v", limited, rows)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if top := b.text("#top-keys"); !strings.Contains(top, "bot key") {
		t.Fatalf("busiest keys: %q", top)
	}
	if top := b.text("#top-integrations"); !strings.Contains(top, "support bot") {
		t.Fatalf("busiest integrations: %q", top)
	}
	if ev := b.text("#events"); !strings.Contains(ev, "integration.disable") || !strings.Contains(ev, "api_key.disable") {
		t.Fatalf("events: %q", ev)
	}
	var bars int
	b.run(chromedp.Evaluate(`document.querySelectorAll('figure.chart svg rect').length`, &bars))
	if bars == 0 {
		t.Fatal("the activity charts have no bars")
	}
	b.snap("activity", true)

	// A phone: the same pages fit 390 px (wide tables scroll in their box).
	b.run(chromedp.EmulateViewport(390, 844))
	for _, p := range []struct{ path, label string }{
		{"/integrations", "phone-integrations"}, {"/integrations/" + iid, "phone-integration"}, {"/activity", "phone-activity"},
	} {
		b.run(chromedp.Navigate(inst.url+p.path), chromedp.WaitVisible("main h1", chromedp.ByQuery))
		var overflow bool
		b.run(chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth + 1`, &overflow))
		if overflow {
			t.Errorf("%s is wider than 390 px", p.path)
		}
		b.snap(p.label, true)
	}
	for _, p := range pages {
		if strings.Contains(p.html, key) || strings.Contains(p.html, owner) || strings.Contains(p.html, oldKey) {
			t.Errorf("page %s (%s) contains an API key", p.label, p.url)
		}
	}
	if strings.Contains(inst.logs.String(), key) || strings.Contains(inst.logs.String(), owner) {
		t.Error("an API key is in the logs")
	}
}

// exists reports whether sel matches an element of the current page.
func (b *tab) exists(sel string) bool {
	b.t.Helper()
	var n int
	b.run(chromedp.Evaluate(`document.querySelectorAll(`+strconv.Quote(sel)+`).length`, &n))
	return n > 0
}

// reasonCounts reads the refusals table's text ("Label\tcode\tn" rows)
// into code -> count.
func reasonCounts(text string) map[string]int {
	out := map[string]int{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.Atoi(f[len(f)-1])
		if err != nil {
			continue
		}
		out[f[len(f)-2]] = n
	}
	return out
}
