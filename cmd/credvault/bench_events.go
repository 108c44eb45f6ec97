package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"credvault/internal/bench"
	"credvault/internal/credvault"
)

// benchHealthChecks is how many credentials the event load can check
// every second (eventLoad.set's most); benchChecksPerSecond is how many
// `credvault bench` checks: one check a second stands for 60 credentials
// on the shortest schedule a person can set (credvault.MinHealthInterval,
// a minute), or 900 on a 15-minute one.
const (
	benchHealthChecks    = 50
	benchChecksPerSecond = 5
)

// eventLoad is the event stream's work on one instance, switched on and
// off, beside the traffic that causes events, which runs in both states:
// a revocation every 100 ms (revoke: an API key created and revoked
// through the API, so one api_key.revoked event each). On: a webhook for
// every event type to a loopback receiver that answers 204 (each event
// written to the outbox in its change's transaction and delivered), and
// up to benchHealthChecks credentials checked every second (their
// Test connection a proxied call, its outcome a transaction). Off: the
// webhook disabled and no schedule, so the same revocations write no
// outbox row and nothing is checked. The difference between the two is
// what "with webhooks and health checks on" costs.
type eventLoad struct {
	s        *service
	ctxOwner context.Context
	orgID    string
	webhook  string
	creds    []string
	received atomic.Int64 // webhook requests
	revoked  atomic.Int64 // revocations made (events caused)
	hook     *http.Server
	stop     chan struct{}
}

// startEventLoad sets the load up on s for the org's owner, off, and
// starts the revocations; upstream is the checked credentials' base URL
// (it must answer GET /v1/balance 200). logf reports a failed revocation.
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
	if err := l.set(ctx, false, 0); err != nil {
		l.close()
		return nil, err
	}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				if err := revoke(ctx); err != nil {
					logf("bench: events-overhead: a revocation failed: %v", err)
					continue
				}
				l.revoked.Add(1)
			}
		}
	}()
	return l, nil
}

// set switches the webhook and the health checks on or off; on, checks
// credentials (at most benchHealthChecks) are checked every second.
func (l *eventLoad) set(ctx context.Context, on bool, checks int) error {
	for i, id := range l.creds {
		interval := 0
		if on && i < checks {
			interval = 1
		}
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
// event stream off and on (eventLoad, benchChecksPerSecond checks a second
// while on), in this one run: eventPairs pairs of rounds, off then on or
// on then off (the order swaps every pair, so drift cancels), each round a
// short load of each hot path. The ratio reported is the median over the
// pairs of on/off (requests per second), the figure that one slow round on
// a shared machine moves least; the per-pair ratios and the merged figures
// are in the result too, and so is the median on/off of the serving
// process's CPU per request with the background's CPU taken out (its rate
// measured with no load just before each round), with the background's
// CPU in each state in cores. The hot paths only count in memory, so the
// ratios should be about 1. BenchmarkEventStreamOverhead is the finer
// method (more pairs, several check rates).
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

	const eventPairs = 4
	var off, on [2]bench.Result // verify, proxy: merged over the pairs
	var ratios [2][]float64     // per pair, on/off
	var cpuRatios [2][]float64  // per pair, on/off of CPU per request with the background taken out
	var idle, idleCPU [2]time.Duration
	checksBefore, hooksBefore, revokedBefore := bn.countChecks(ctx), load.received.Load(), load.revoked.Load()
	leg := bn.opts.duration / eventPairs
	for pair := 1; pair <= eventPairs; pair++ {
		order := []bool{false, true}
		if pair%2 == 0 {
			order = []bool{true, false}
		}
		var got [2][2]bench.Result // [stream off/on][verify/proxy]
		var rates [2]float64       // the background's CPU rate, per state
		for _, stream := range order {
			if err := load.set(ctx, stream, benchChecksPerSecond); err != nil {
				return nil, err
			}
			// Let the other state's work drain, or this one's begin
			// (the health scan claims every second), then take the
			// background's CPU rate in this state, with no load.
			time.Sleep(time.Second / 2)
			c0, _ := bench.ProcessCPU(os.Getpid(), false)
			t0 := time.Now()
			time.Sleep(time.Second / 2)
			c1, _ := bench.ProcessCPU(os.Getpid(), false)
			si := 0
			if stream {
				si = 1
			}
			idleCPU[si] += c1 - c0
			idle[si] += time.Since(t0)
			rate := float64(c1-c0) / float64(time.Since(t0))
			label := map[bool]string{false: "off", true: "on"}[stream]
			v, err := bn.loadFor(ctx, fmt.Sprintf("verify-cached, event stream %s, pair %d/%d", label, pair, eventPairs), leg, checks)
			if err != nil {
				return nil, err
			}
			p, err := bn.loadFor(ctx, fmt.Sprintf("proxy, event stream %s, pair %d/%d", label, pair, eventPairs), leg, proxy)
			if err != nil {
				return nil, err
			}
			got[si] = [2]bench.Result{v, p}
			rates[si] = rate
		}
		for k := range 2 {
			off[k], on[k] = bench.Merge(off[k], got[0][k]), bench.Merge(on[k], got[1][k])
			if r := got[0][k].RPS(); r > 0 {
				ratios[k] = append(ratios[k], got[1][k].RPS()/r)
			}
			if c := hotCPU(got[0][k], rates[0]); c > 0 {
				cpuRatios[k] = append(cpuRatios[k], hotCPU(got[1][k], rates[1])/c)
			}
		}
	}
	if err := load.set(ctx, false, 0); err != nil {
		return nil, err
	}
	rv := result("verify-cached-events", on[0], off[0].RPS())
	rp := result("proxy-events", on[1], off[1].RPS())
	for k, r := range []*scenarioResult{&rv, &rp} {
		r.Extra["baseline"] = "the same with the event stream off"
		r.Extra["merged_ratio"] = round2(r.Ratio)
		r.Ratio = median(ratios[k])
		r.Extra["pair_ratios"] = roundAll(ratios[k])
		r.Extra["cpu_per_req_on_off"] = round2(median(cpuRatios[k]))
		r.Extra["pair_cpu_ratios"] = roundAll(cpuRatios[k])
		r.Extra["background_cores_off"] = round2(idleCPU[0].Seconds() / idle[0].Seconds())
		r.Extra["background_cores_on"] = round2(idleCPU[1].Seconds() / idle[1].Seconds())
		r.Extra["health_checks_run"] = bn.countChecks(ctx) - checksBefore
		r.Extra["health_checks_per_second_on"] = benchChecksPerSecond
		r.Extra["webhook_requests"] = load.received.Load() - hooksBefore
		r.Extra["revocations"] = load.revoked.Load() - revokedBefore
	}
	return []scenarioResult{rv, rp}, nil
}

// hotCPU is r's serving-process CPU per request with the background's
// (rate, the process's CPU per second of wall time with no load) taken
// out, in ns; 0 when not measured.
func hotCPU(r bench.Result, rate float64) float64 {
	if r.Requests == 0 || r.CPU == 0 {
		return 0
	}
	return (float64(r.CPU) - rate*float64(r.Elapsed)) / float64(r.Requests)
}

// median is the middle of v (the mean of the two middle values for an
// even count), 0 for none.
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// roundAll rounds each of v to two places.
func roundAll(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = round2(x)
	}
	return out
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
