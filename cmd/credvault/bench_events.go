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

// eventsOverhead measures verify-cached and proxy on instance a with the
// event stream off (no webhook, no scheduled check) and on (a webhook for
// every event type receiving a revocation every 100 ms, 50 credentials
// checked every second, refusals counted), alternating off and on twice,
// in this one run. The hot paths only count in memory, so the ratios
// on/off should be about 1.
func (bn *benchRun) eventsOverhead(ctx context.Context) ([]scenarioResult, error) {
	ctxOwner := credvault.WithPrincipal(ctx, &credvault.Principal{OrgID: bn.orgID, UserID: bn.userID, KeyID: "bench",
		Kind: credvault.KeyKindUser, Role: credvault.RoleOwner, Scopes: []string{credvault.ScopeAdmin}})
	var received atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hook := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = hook.Serve(ln) }()
	defer hook.Close()
	wh, _, err := bn.a.webhooks.CreateWebhook(ctxOwner, credvault.CreateWebhookInput{URL: "http://" + ln.Addr().String() + "/hook", EventTypes: []string{"*"}})
	if err != nil {
		return nil, err
	}
	hostPort := bn.upstream[len("http://"):]
	creds := make([]string, benchHealthChecks)
	for i := range creds {
		c, err := bn.a.creds.CreateCredential(ctxOwner, credvault.CreateCredentialInput{
			Name: fmt.Sprintf("checked %d", i), Placement: credvault.PlacementBearer, Value: credvault.NewSecret(benchUpstreamSecret),
			BaseURL: bn.upstream, AllowedHosts: []string{hostPort}, TestRequest: &credvault.TestRequest{Method: "GET", Path: "/v1/balance", ExpectStatus: 200},
		})
		if err != nil {
			return nil, err
		}
		creds[i] = c.ID
	}
	proxyCred, err := bn.a.creds.CreateCredential(ctxOwner, credvault.CreateCredentialInput{
		Name: "bench events proxy", Placement: credvault.PlacementBearer, Value: credvault.NewSecret(benchUpstreamSecret),
		BaseURL: bn.upstream, AllowedHosts: []string{hostPort},
	})
	if err != nil {
		return nil, err
	}
	set := func(on bool) error {
		interval := 0
		if on {
			interval = 1
		}
		for _, id := range creds {
			ev := &credvault.AuditEvent{OrgID: bn.orgID, ActorType: "system", Action: "credential.monitor", ResourceType: "credential", ResourceID: id}
			if _, err := bn.a.store.SetMonitor(ctx, bn.orgID, id, interval, nil, ev); err != nil {
				return err
			}
		}
		_, err := bn.a.webhooks.UpdateWebhook(ctxOwner, wh.ID, credvault.WebhookUpdate{Enabled: &on})
		return err
	}
	// While on: a revocation every 100 ms, each an event delivered.
	var revoking atomic.Bool
	stopRevoking := make(chan struct{})
	defer close(stopRevoking)
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopRevoking:
				return
			case <-t.C:
				if !revoking.Load() {
					continue
				}
				if err := bn.revokeOne(ctx); err != nil {
					fmt.Fprintf(bn.out, "bench: events-overhead: a revocation failed: %v\n", err)
				}
			}
		}
	}()

	checks := &leg{reqs: withKeys(bn.a.URL()+"/v1/auth/check", bn.pool), want: 200, proc: self()}
	proxy := bn.via(bn.a, proxyCred.ID)

	var off, on [2]bench.Result // verify, proxy
	checksBefore := bn.countChecks(ctx)
	for round := 1; round <= 2; round++ {
		for _, stream := range []bool{false, true} {
			if err := set(stream); err != nil {
				return nil, err
			}
			revoking.Store(stream)
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
	revoking.Store(false)
	if err := set(false); err != nil {
		return nil, err
	}
	rv := result("verify-cached-events", on[0], off[0].RPS())
	rp := result("proxy-events", on[1], off[1].RPS())
	for _, r := range []*scenarioResult{&rv, &rp} {
		r.Extra["baseline"] = "the same with the event stream off"
		r.Extra["health_checks_run"] = bn.countChecks(ctx) - checksBefore
		r.Extra["webhook_requests"] = received.Load()
	}
	return []scenarioResult{rv, rp}, nil
}

func (bn *benchRun) countChecks(ctx context.Context) int {
	var n int
	_ = bn.a.db.GetContext(ctx, &n, `SELECT count(*) FROM credential_health_checks`)
	return n
}

// revokeOne creates a key and revokes it through instance b's API: one
// api_key.revoked event.
func (bn *benchRun) revokeOne(ctx context.Context) error {
	call := func(method, url, body string) (map[string]any, error) {
		req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		req.Header.Set("X-API-Key", bn.owner)
		req.Header.Set("Content-Type", "application/json")
		resp, err := bn.client.Do(req)
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
	m, err := call("POST", bn.b.URL()+"/v1/api-keys", `{"name":"revoked by the bench","scopes":["keys:read"]}`)
	if err != nil {
		return err
	}
	id, _ := m["id"].(string)
	_, err = call("POST", bn.b.URL()+"/v1/api-keys/"+id+"/revoke", "")
	return err
}
