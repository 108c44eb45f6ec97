package main

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsoleWebhooksAndHealth drives the webhook pages and a credential's
// health section in headless Chromium at 1280 and 390 px: the owner adds
// a webhook for two event types, sees the signing secret once (gone on
// reload), sends a test event and sees it delivered in the log; a bad URL
// is refused naming the field with nothing stored; on a credential page
// the owner schedules the health check and sees its status and history.
// No page holds the credential value, and only the creation page holds
// the secret.
func TestConsoleWebhooksAndHealth(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"})
	a := cl.startWith(startOptions{events: fastEvents()})
	_, ownerKey := cl.bootstrap(a, "acme")
	rcv := newReceiver(t)
	up := newHookUpstream(t, 503)
	credID := cl.checkedCredential(a, ownerKey, up)

	bctx, stop := newBrowser(t, 3*time.Minute)
	defer stop()
	var mu sync.Mutex
	var pages []seenPage
	owner := &tab{t: t, ctx: bctx, name: "owner", shots: shotsDir(t), mu: &mu, pages: &pages}
	acceptDialogs(owner.ctx)
	for _, width := range []int{1280, 390} {
		w := map[int]string{1280: "", 390: "phone-"}[width]
		owner.run(chromedp.EmulateViewport(int64(width), 844))
		if width == 1280 {
			owner.run(chromedp.Navigate(a.url+"/sign-in"), chromedp.WaitVisible("#api_key", chromedp.ByID),
				chromedp.SendKeys("#api_key", ownerKey, chromedp.ByID), chromedp.Submit("#api_key", chromedp.ByID))
			owner.waitURL("/credentials")
		}
		owner.run(chromedp.Navigate(a.url+"/webhooks"), chromedp.WaitVisible("#w-url", chromedp.ByID))
		owner.snap(w+"webhooks-empty", true)
		if width == 390 {
			break // the rest once: the phone view of the pages made below
		}

		// A private address under the production policy would be refused;
		// here (egress allowed) a malformed URL shows the refusal.
		owner.run(chromedp.SetValue("#w-url", "ftp://hooks.example.com/x", chromedp.ByID),
			chromedp.Click(`input[value="api_key.revoked"]`, chromedp.ByQuery), chromedp.Click("#w-create", chromedp.ByID),
			chromedp.WaitVisible("p.error", chromedp.ByQuery))
		if msg := owner.text("p.error"); !strings.Contains(msg, `"url"`) {
			t.Fatalf("bad URL: error %q does not name the field", msg)
		}
		var n int
		if err := a.s.db.Get(&n, `SELECT count(*) FROM webhooks`); err != nil || n != 0 {
			t.Fatalf("refused webhook stored: %d %v", n, err)
		}

		owner.run(chromedp.Navigate(a.url+"/webhooks"), chromedp.WaitVisible("#w-url", chromedp.ByID),
			chromedp.SendKeys("#w-url", rcv.srv.URL+"/hook", chromedp.ByID),
			chromedp.Click(`input[value="api_key.revoked"]`, chromedp.ByQuery),
			chromedp.Click(`input[value="credential.health_failed"]`, chromedp.ByQuery),
			chromedp.Click("#w-create", chromedp.ByID), chromedp.WaitVisible("#secret", chromedp.ByID))
		var secret string
		owner.run(chromedp.Value("#secret", &secret, chromedp.ByID))
		if !strings.HasPrefix(secret, "whsec_") {
			t.Fatalf("shown secret %q", secret)
		}
		owner.snap("webhook-created", true)
		var whID string
		if err := a.s.db.Get(&whID, `SELECT id FROM webhooks`); err != nil {
			t.Fatal(err)
		}
		owner.run(chromedp.Navigate(a.url+"/webhooks/"+whID), chromedp.WaitVisible("#send-test", chromedp.ByID))
		if page := owner.snap("webhook-reloaded", false); strings.Contains(page, secret) {
			t.Fatal("the secret is shown again after a reload")
		}
		owner.run(chromedp.Click("#send-test", chromedp.ByID))
		owner.waitURL("notice=test")
		rcv.waitFor(t, "the test event", 15*time.Second, ofType("webhook.test", 1))
		got := rcv.delivered()
		if err := verifyStandardWebhook(secret, got[0].header, got[0].body, time.Now()); err != nil {
			t.Fatalf("test event does not verify with the secret the page showed: %v", err)
		}
		// The receiver has it; the log records the attempt right after.
		for deadline := time.Now().Add(15 * time.Second); ; {
			owner.run(chromedp.Reload(), chromedp.WaitVisible("#deliveries", chromedp.ByID))
			log := owner.text("#deliveries")
			if strings.Contains(log, "webhook.test") && strings.Contains(log, "delivered") && strings.Contains(log, "204") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("delivery log shows %q", log)
			}
			time.Sleep(200 * time.Millisecond)
		}
		owner.snap("webhook-delivery-log", true)

		// Health: schedule a check every 5 minutes on the credential page.
		owner.run(chromedp.Navigate(a.url+"/credentials/"+credID), chromedp.WaitVisible("#m-interval", chromedp.ByID),
			chromedp.SetValue("#m-interval", "5", chromedp.ByID), chromedp.Click("#save-monitor", chromedp.ByID))
		owner.waitURL("notice=monitor")
		waitChecks(t, a, credID, 1)
		owner.run(chromedp.Reload(), chromedp.WaitVisible("#health-history", chromedp.ByID))
		if st := owner.text("#health-status"); st != "failing" {
			t.Fatalf("health status %q, want failing (the upstream answers 503)", st)
		}
		if hist := owner.text("#health-history"); !strings.Contains(hist, "5xx") {
			t.Fatalf("history %q", hist)
		}
		owner.snap("credential-health", true)
		rcv.waitFor(t, "health_failed", 15*time.Second, ofType("credential.health_failed", 1))
	}
	// The phone view of the pages made above.
	for _, p := range []struct{ path, label string }{{"/webhooks", "phone-webhooks"}, {"/credentials/" + credID, "phone-credential-health"}} {
		owner.run(chromedp.Navigate(a.url+p.path), chromedp.WaitVisible("main h1", chromedp.ByQuery))
		owner.snap(p.label, true)
		var overflow bool
		owner.run(chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth + 1`, &overflow))
		if overflow {
			t.Errorf("%s: the page scrolls sideways at 390 px", p.label)
		}
	}
	var whID string
	_ = a.s.db.Get(&whID, `SELECT id FROM webhooks`)
	owner.run(chromedp.Navigate(a.url+"/webhooks/"+whID), chromedp.WaitVisible("main h1", chromedp.ByQuery))
	owner.snap("phone-webhook", true)

	for _, p := range pages {
		if strings.Contains(p.html, plantedValue) {
			t.Errorf("page %s holds the credential value", p.label)
		}
	}
	for _, p := range pages {
		if strings.Contains(p.html, "whsec_") && p.label != "owner/webhook-created" {
			t.Errorf("page %s holds a signing secret", p.label)
		}
	}
}
