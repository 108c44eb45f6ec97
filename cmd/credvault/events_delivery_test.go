package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// revokeKeys makes n api_key.revoked events and returns the key ids.
func (cl *cluster) revokeKeys(a *instance, owner string, n int) []string {
	cl.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i], _ = cl.createKey(a, owner, map[string]any{"name": "k", "scopes": []string{"keys:read"}})
		if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+ids[i]+"/revoke", nil); r.status != 200 {
			cl.t.Fatalf("revoke: %d %s", r.status, r.body)
		}
	}
	return ids
}

// deliveryFigures checks what a receiver got for the keys revoked: each
// event delivered (0 lost), every request of one event under one
// webhook-id and every id for one event. It returns sent (requests),
// delivered (events) and retried (requests that were not the first of
// their event).
func deliveryFigures(t *testing.T, rcv *receiver, keyIDs []string) (sent, delivered, retried int) {
	t.Helper()
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	idOfKey := map[string]string{}
	keyOfID := map[string]string{}
	first := map[string]bool{}
	for _, g := range rcv.got {
		if g.typ != credvault.EventKeyRevoked {
			continue
		}
		sent++
		id, key := g.header.Get("webhook-id"), g.data["key_id"].(string)
		if prev, ok := idOfKey[key]; ok && prev != id {
			t.Errorf("key %s revoked once, sent under two ids %s and %s", key, prev, id)
		}
		if prev, ok := keyOfID[id]; ok && prev != key {
			t.Errorf("id %s names two events", id)
		}
		idOfKey[key], keyOfID[id] = id, key
		if first[id] {
			retried++
		}
		first[id] = true
	}
	got := map[string]bool{}
	for _, g := range rcv.ok {
		if g.typ == credvault.EventKeyRevoked {
			got[g.data["key_id"].(string)] = true
		}
	}
	lost := 0
	for _, k := range keyIDs {
		if !got[k] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d events lost", lost, len(keyIDs))
	}
	return sent, len(got), retried
}

// hookSetup is one instance with fast event periods, the org acme, a
// webhook for every event to a receiver, and revoked keys.
type hookSetup struct {
	cl          *cluster
	a           *instance
	owner, whID string
	rcv         *receiver
	keys        []string
}

// revokedWithWebhook makes a hookSetup whose receiver prepare set up
// before n keys are revoked.
func revokedWithWebhook(t *testing.T, n int, prepare func(*receiver)) hookSetup {
	t.Helper()
	cl := newCluster(t, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"})
	a := cl.startWith(startOptions{events: fastEvents()})
	_, owner := cl.bootstrap(a, "acme")
	rcv := newReceiver(t)
	prepare(rcv)
	whID, _ := cl.webhookFor(a, owner, rcv)
	return hookSetup{cl: cl, a: a, owner: owner, whID: whID, rcv: rcv, keys: cl.revokeKeys(a, owner, n)}
}

// TestReceiverOutageLosesNothing: the receiver answers 503 while 20
// events happen, then comes back; every event arrives, each under one id.
func TestReceiverOutageLosesNothing(t *testing.T) {
	t.Parallel()
	hs := revokedWithWebhook(t, 20, func(r *receiver) { r.setDown(true) })
	cl, a, owner, rcv, whID, keys := hs.cl, hs.a, hs.owner, hs.rcv, hs.whID, hs.keys
	// Down long enough for several attempts of each.
	deadline := time.Now().Add(15 * time.Second)
	for {
		rcv.mu.Lock()
		n := rcv.attempts
		rcv.mu.Unlock()
		if n >= 60 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	rcv.setDown(false)
	rcv.waitFor(t, "all 20 events", 30*time.Second, distinctIDs(20))
	sent, delivered, retried := deliveryFigures(t, rcv, keys)
	t.Logf("receiver outage: events 20, requests sent %d, delivered %d, retried %d, lost %d", sent, delivered, retried, 20-delivered)
	if retried == 0 {
		t.Error("no request was retried: the outage did not bite")
	}
	m := scrape(t, cl, a)
	if m[`credvault_events_emitted_total{type="api_key.revoked"}`] != 20 || m[`credvault_webhook_deliveries_total{outcome="delivered"}`] < 20 ||
		m[`credvault_webhook_deliveries_total{outcome="retry"}`] < float64(retried) {
		t.Errorf("metrics do not follow: emitted %v, delivered %v, retry %v", m[`credvault_events_emitted_total{type="api_key.revoked"}`],
			m[`credvault_webhook_deliveries_total{outcome="delivered"}`], m[`credvault_webhook_deliveries_total{outcome="retry"}`])
	}
	// The delivery log shows every attempt.
	r := cl.as(owner, "GET", a.url+"/v1/webhooks/"+whID+"/deliveries?limit=100", nil)
	var log struct {
		Data []credvault.Delivery `json:"data"`
	}
	decodeJSON(t, r.body, &log)
	attempts := 0
	for _, d := range log.Data {
		attempts += len(d.Log)
		if d.Status != credvault.DeliveryDelivered || d.Attempts != len(d.Log) || d.Log[len(d.Log)-1].Status != 204 {
			t.Errorf("delivery %d: status %s, %d attempts, log %v", d.ID, d.Status, d.Attempts, d.Log)
		}
		for _, at := range d.Log[:len(d.Log)-1] {
			if at.Status != 503 {
				t.Errorf("delivery %d: failed attempt logged with status %d", d.ID, at.Status)
			}
		}
	}
	if attempts != sent {
		t.Errorf("delivery log holds %d attempts, the receiver saw %d", attempts, sent)
	}
	// Manual redelivery sends one again, under the same id, at once: also
	// while River has not yet recorded the delivery's job as completed
	// (a redelivery is a job of its own, TestRedeliveryWhileTheJobRuns).
	d := log.Data[0]
	if r := cl.as(owner, "POST", a.url+"/v1/webhooks/"+whID+"/deliveries/"+itoa(d.ID)+"/redeliver", nil); r.status != 202 {
		t.Fatalf("redeliver: %d %s", r.status, r.body)
	}
	rcv.waitFor(t, "the redelivery", 10*time.Second, func(got []received) bool {
		n := 0
		for _, g := range got {
			if g.header.Get("webhook-id") == d.MessageID {
				n++
			}
		}
		return n == 2
	})
}

// TestHealthCheckRunsOncePerIntervalAcrossInstances: three instances on
// one database, a check every second; each interval's check runs once.
func TestHealthCheckRunsOncePerIntervalAcrossInstances(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"})
	opts := startOptions{events: fastEvents()}
	a, b, c := cl.startWith(opts), cl.startWith(opts), cl.startWith(opts)
	res, owner := cl.bootstrap(a, "acme")
	up := newHookUpstream(t, 200)
	credID := cl.checkedCredential(a, owner, up)
	if _, err := a.s.store.SetMonitor(context.Background(), res.OrgID, credID, 1, nil, sysEvent(res.OrgID, "credential.monitor", "credential")); err != nil {
		t.Fatal(err)
	}
	waitChecks(t, a, credID, 8)
	var slots []time.Time
	if err := a.s.db.Select(&slots, `SELECT slot FROM credential_health_checks WHERE credential_id = $1 ORDER BY slot`, credID); err != nil {
		t.Fatal(err)
	}
	dup := 0
	for i := 1; i < len(slots); i++ {
		if slots[i].Equal(slots[i-1]) {
			dup++
		}
		if gap := slots[i].Sub(slots[i-1]); gap < time.Second && !slots[i].Equal(slots[i-1]) {
			t.Errorf("two checks %v apart, within one interval", gap)
		}
	}
	hits := up.hits.Load()
	t.Logf("three instances: %d checks, %d upstream calls, %d duplicate slots", len(slots), hits, dup)
	if dup != 0 || hits > int64(len(slots))+1 {
		t.Fatalf("checks ran more than once per interval: %d duplicates, %d calls for %d checks", dup, hits, len(slots))
	}
	_ = b
	_ = c
}

// TestWebhookURLPolicy: private addresses are refused when the egress
// policy is on (nothing stored), and a receiver's redirect is an answer,
// never followed.
func TestWebhookURLPolicy(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, nil) // the production egress policy
	a := cl.startWith(startOptions{events: fastEvents()})
	_, owner := cl.bootstrap(a, "acme")
	for _, u := range []string{"http://127.0.0.1:9/hook", "http://localhost/hook", "http://[::1]/x", "http://169.254.169.254/latest",
		"http://10.0.0.7/hook", "http://192.168.1.1/", "http://[fd00::1]/", "http://127.1/hook", "http://2130706433/", "http://0x7f.0.0.1/"} {
		r := cl.as(owner, "POST", a.url+"/v1/webhooks", map[string]any{"url": u, "event_types": []string{"api_key.revoked"}})
		if r.status != 400 || r.errCode(t) != "egress_denied" || !strings.Contains(r.errMessage(t), `"url"`) {
			t.Errorf("%s: %d %s, want 400 egress_denied naming url", u, r.status, r.body)
		}
	}
	for _, bad := range []map[string]any{
		{"url": "ftp://example.com/x", "event_types": []string{"*"}},
		{"url": "https://user:pw@example.com/x", "event_types": []string{"*"}},
		{"url": "https://example.com/x", "event_types": []string{}},
		{"url": "https://example.com/x", "event_types": []string{"api_key.nope"}},
		{"event_types": []string{"*"}},
	} {
		if r := cl.as(owner, "POST", a.url+"/v1/webhooks", bad); r.status != 400 {
			t.Errorf("%v: %d %s, want 400", bad, r.status, r.body)
		}
	}
	var n int
	if err := a.s.db.Get(&n, `SELECT count(*) FROM webhooks`); err != nil || n != 0 {
		t.Fatalf("refused webhooks stored: %d (%v)", n, err)
	}

	// The dial-time check: a webhook whose URL slipped past the check at
	// save time (stored here without it, as a name that resolves to a
	// private address would) is refused when the sender connects; nothing
	// reaches the receiver.
	rcvPriv := newReceiver(t)
	unchecked := *a.s.webhooks
	unchecked.CheckURL = nil
	wh, _, err := unchecked.CreateWebhook(principalOf(t, a, owner), credvault.CreateWebhookInput{URL: rcvPriv.srv.URL + "/hook", EventTypes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	cl.revokeKeys(a, owner, 1)
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := cl.as(owner, "GET", a.url+"/v1/webhooks/"+wh.ID+"/deliveries", nil)
		var log struct {
			Data []credvault.Delivery `json:"data"`
		}
		decodeJSON(t, r.body, &log)
		if len(log.Data) == 1 && log.Data[0].Attempts > 0 {
			if !strings.Contains(log.Data[0].LastError, "private address") || log.Data[0].LastStatus != 0 {
				t.Fatalf("attempt to a loopback receiver: status %d, error %q", log.Data[0].LastStatus, log.Data[0].LastError)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no attempt logged: %s", r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rcvPriv.mu.Lock()
	if rcvPriv.attempts != 0 {
		t.Errorf("the loopback receiver got %d requests under the production policy", rcvPriv.attempts)
	}
	rcvPriv.mu.Unlock()

	// Redirects: a receiver answering 307 is a failed attempt; the
	// Location is never requested.
	cl2 := newCluster(t, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"})
	b := cl2.startWith(startOptions{events: fastEvents()})
	_, owner2 := cl2.bootstrap(b, "acme")
	rcv := newReceiver(t)
	rcv.redirect = true
	whID, _ := cl2.webhookFor(b, owner2, rcv)
	cl2.revokeKeys(b, owner2, 1)
	deadline = time.Now().Add(10 * time.Second)
	for {
		rcv.mu.Lock()
		n := rcv.attempts
		rcv.mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d attempts", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rcv.mu.Lock()
	for _, g := range rcv.got {
		if g.path != "/hook" {
			t.Errorf("a request for %s reached the receiver: a redirect was followed", g.path)
		}
	}
	rcv.mu.Unlock()
	r := cl2.as(owner2, "GET", b.url+"/v1/webhooks/"+whID+"/deliveries", nil)
	var log struct {
		Data []credvault.Delivery `json:"data"`
	}
	decodeJSON(t, r.body, &log)
	if len(log.Data) != 1 || log.Data[0].Status != credvault.DeliveryPending || log.Data[0].LastStatus != 307 {
		t.Fatalf("delivery after redirects: %+v", log.Data)
	}
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
