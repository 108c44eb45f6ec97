package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"credvault/internal/bench"
	"credvault/internal/credvault"
)

// benchHealthChecks is how many credentials get a health check every
// second while the event stream is on.
const benchHealthChecks = 50

// eventLoad is the event stream's work on one instance, switched on and
// off: a webhook for every event type to a loopback receiver that answers
// 204, benchHealthChecks credentials checked every second, and a
// revocation every 100 ms (revoke), each an event delivered. Off: the
// webhook disabled, no schedule, no revocation.
type eventLoad struct {
	s        *service
	ctxOwner context.Context
	orgID    string
	webhook  string
	creds    []string
	revoking atomic.Bool
	received atomic.Int64 // webhook requests
	hook     *http.Server
	stop     chan struct{}
}

// startEventLoad sets the load up on s for the org's owner, off; upstream
// is the checked credentials' base URL (it must answer GET /v1/balance
// 200). logf reports a failed revocation.
func startEventLoad(ctx context.Context, s *service, orgID, userID, upstream string, revoke func(context.Context) error,
	logf func(format string, args ...any)) (*eventLoad, error) {
	l := &eventLoad{s: s, orgID: orgID, stop: make(chan struct{}),
		ctxOwner: credvault.WithPrincipal(ctx, &credvault.Principal{OrgID: orgID, UserID: userID, KeyID: "bench",
			Kind: credvault.KeyKindUser, Role: credvault.RoleOwner, Scopes: []string{credvault.ScopeAdmin}})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l.hook = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = l.hook.Serve(ln) }()
	wh, _, err := s.webhooks.CreateWebhook(l.ctxOwner, credvault.CreateWebhookInput{URL: "http://" + ln.Addr().String() + "/hook", EventTypes: []string{"*"}})
	if err != nil {
		l.close()
		return nil, err
	}
	l.webhook = wh.ID
	hostPort := strings.TrimPrefix(upstream, "http://")
	for i := range benchHealthChecks {
		c, err := s.creds.CreateCredential(l.ctxOwner, credvault.CreateCredentialInput{
			Name: fmt.Sprintf("checked %d", i), Placement: credvault.PlacementBearer, Value: credvault.NewSecret(benchUpstreamSecret),
			BaseURL: upstream, AllowedHosts: []string{hostPort}, TestRequest: &credvault.TestRequest{Method: "GET", Path: "/v1/balance", ExpectStatus: 200},
		})
		if err != nil {
			l.close()
			return nil, err
		}
		l.creds = append(l.creds, c.ID)
	}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				if !l.revoking.Load() {
					continue
				}
				if err := revoke(ctx); err != nil {
					logf("bench: events-overhead: a revocation failed: %v", err)
				}
			}
		}
	}()
	return l, l.set(ctx, false)
}

// set switches the load on or off.
func (l *eventLoad) set(ctx context.Context, on bool) error {
	l.revoking.Store(on)
	interval := 0
	if on {
		interval = 1
	}
	for _, id := range l.creds {
		ev := &credvault.AuditEvent{OrgID: l.orgID, ActorType: "system", Action: "credential.monitor", ResourceType: "credential", ResourceID: id}
		if _, err := l.s.store.SetMonitor(ctx, l.orgID, id, interval, nil, ev); err != nil {
			return err
		}
	}
	_, err := l.s.webhooks.UpdateWebhook(l.ctxOwner, l.webhook, credvault.WebhookUpdate{Enabled: &on})
	return err
}

// close stops the revocations and the receiver.
func (l *eventLoad) close() {
	close(l.stop)
	_ = l.hook.Close()
}

// eventsOverhead measures verify-cached and proxy on instance a with the
// event stream off and on (eventLoad), alternating off and on twice, in
// this one run. The hot paths only count in memory, so the ratios on/off
// should be about 1. BenchmarkEventStreamOverhead is the finer method
// (many short interleaved rounds, median of ratios).
func (bn *benchRun) eventsOverhead(ctx context.Context) ([]scenarioResult, error) {
	load, err := startEventLoad(ctx, bn.a, bn.orgID, bn.userID, bn.upstream, bn.revokeOne,
		func(format string, args ...any) { fmt.Fprintf(bn.out, format+"\n", args...) })
	if err != nil {
		return nil, err
	}
	defer load.close()
	proxyCred, err := bn.a.creds.CreateCredential(load.ctxOwner, credvault.CreateCredentialInput{
		Name: "bench events proxy", Placement: credvault.PlacementBearer, Value: credvault.NewSecret(benchUpstreamSecret),
		BaseURL: bn.upstream, AllowedHosts: []string{strings.TrimPrefix(bn.upstream, "http://")},
	})
	if err != nil {
		return nil, err
	}

	checks := &leg{reqs: withKeys(bn.a.URL()+"/v1/auth/check", bn.pool), want: 200, proc: self()}
	proxy := bn.via(bn.a, proxyCred.ID)

	var off, on [2]bench.Result // verify, proxy
	checksBefore := bn.countChecks(ctx)
	for round := 1; round <= 2; round++ {
		for _, stream := range []bool{false, true} {
			if err := load.set(ctx, stream); err != nil {
				return nil, err
			}
			label := map[bool]string{false: "off", true: "on"}[stream]
			half := bn.opts.duration / 2
			v, err := bn.loadFor(ctx, fmt.Sprintf("verify-cached, event stream %s, round %d/2", label, round), half, checks)
			if err != nil {
				return nil, err
			}
			p, err := bn.loadFor(ctx, fmt.Sprintf("proxy, event stream %s, round %d/2", label, round), half, proxy)
			if err != nil {
				return nil, err
			}
			dst := &off
			if stream {
				dst = &on
			}
			dst[0], dst[1] = bench.Merge(dst[0], v), bench.Merge(dst[1], p)
		}
	}
	if err := load.set(ctx, false); err != nil {
		return nil, err
	}
	rv := result("verify-cached-events", on[0], off[0].RPS())
	rp := result("proxy-events", on[1], off[1].RPS())
	for _, r := range []*scenarioResult{&rv, &rp} {
		r.Extra["baseline"] = "the same with the event stream off"
		r.Extra["health_checks_run"] = bn.countChecks(ctx) - checksBefore
		r.Extra["webhook_requests"] = load.received.Load()
	}
	return []scenarioResult{rv, rp}, nil
}

func (bn *benchRun) countChecks(ctx context.Context) int {
	var n int
	_ = bn.a.db.GetContext(ctx, &n, `SELECT count(*) FROM credential_health_checks`)
	return n
}

// revokeOne creates a key and revokes it through instance b's API (a's
// when b does not run, as with --only events): one api_key.revoked event.
func (bn *benchRun) revokeOne(ctx context.Context) error {
	via := bn.b
	if via == nil {
		via = bn.a
	}
	return revokeVia(ctx, bn.client, via.URL(), bn.owner)
}

// revokeVia creates a key and revokes it through the API at base, as
// owner: one api_key.revoked event.
func revokeVia(ctx context.Context, client *http.Client, base, owner string) error {
	call := func(method, url, body string) (map[string]any, error) {
		req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		req.Header.Set("X-API-Key", owner)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode >= 300 {
			return nil, fmt.Errorf("%s %s: %d", method, url, resp.StatusCode)
		}
		return m, nil
	}
	m, err := call("POST", base+"/v1/api-keys", `{"name":"revoked by the bench","scopes":["keys:read"]}`)
	if err != nil {
		return err
	}
	id, _ := m["id"].(string)
	_, err = call("POST", base+"/v1/api-keys/"+id+"/revoke", "")
	return err
}
