package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"credvault/internal/apikey"
	"credvault/internal/credvault"
)

// bench holds the running pieces of one `credvault bench` run.
type bench struct {
	opts   benchOptions
	out    io.Writer
	log    *slog.Logger
	client *http.Client     // sequential calls
	gen    *fasthttp.Client // the load generator

	a, b, cold, nocache *service // instances on one database
	stops               []func()
	baseline, upstream  string
	owner               string // the bench org's owner key (scope admin)
	orgID, userID       string
	pool                []string // valid keys the verify scenarios send
	profiles            int
	ngx                 *nginxPeers // nil without nginx
}

func (bn *bench) stop() {
	for i := len(bn.stops) - 1; i >= 0; i-- {
		bn.stops[i]()
	}
}

// instance starts one service on env's database and Vault.
func (bn *bench) instance(ctx context.Context, cfg Config, opts startOptions) (*service, error) {
	s, err := startService(ctx, cfg, bn.log, opts)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- s.serve(sctx) }()
	bn.stops = append(bn.stops, func() { cancel(); <-done })
	return s, nil
}

func (bn *bench) setup(ctx context.Context, env benchEnv) error {
	fmt.Fprintln(bn.out, "bench: starting four service instances, a baseline route and a local upstream")
	var err error
	// Instance a claims due health checks every second (River's shortest
	// period) for the events-overhead scenario.
	if bn.a, err = bn.instance(ctx, env.cfg, startOptions{createTransitKey: true, events: eventOptions{healthScan: time.Second}}); err != nil {
		return err
	}
	if bn.b, err = bn.instance(ctx, env.cfg, startOptions{}); err != nil {
		return err
	}
	if bn.cold, err = bn.instance(ctx, env.cfg, startOptions{disableKeyCache: true}); err != nil {
		return err
	}
	noCache := env.cfg
	noCache.SecretCacheTTL = 0
	if bn.nocache, err = bn.instance(ctx, noCache, startOptions{}); err != nil {
		return err
	}
	var stop func()
	if bn.baseline, stop, err = baselineServer(); err != nil {
		return err
	}
	bn.stops = append(bn.stops, stop)
	if bn.upstream, stop, err = upstreamServer(); err != nil {
		return err
	}
	bn.stops = append(bn.stops, stop)

	res, err := credvault.Bootstrap(ctx, bn.a.store, bn.a.minter, "bench", "bench@localhost")
	if err != nil {
		return err
	}
	bn.owner, bn.orgID, bn.userID = res.APIKey.Reveal(), res.OrgID, res.UserID
	fmt.Fprintf(bn.out, "bench: seeding %d API keys (%d of them sent in requests)\n", bn.opts.coldKeys, bn.opts.poolKeys)
	if bn.pool, err = seedKeys(ctx, bn.a.db, bn.orgID, bn.userID, bn.opts.coldKeys, bn.opts.poolKeys, bn.out); err != nil {
		return err
	}
	// Seeding bypassed NOTIFY: reload every instance's known-key set.
	for _, s := range []*service{bn.a, bn.b, bn.cold, bn.nocache} {
		s.verifier.Reset(ctx)
	}
	return bn.startNginx(ctx)
}

func (bn *bench) run(ctx context.Context) ([]scenarioResult, error) {
	var out []scenarioResult
	steps := []func(context.Context) ([]scenarioResult, error){
		bn.verifyScenarios, bn.revokePropagation, bn.proxyScenarios, bn.eventsOverhead, bn.nginxScenarios, bn.rewrap,
	}
	for _, step := range steps {
		rs, err := step(ctx)
		if err != nil {
			return out, err
		}
		for _, r := range rs {
			fmt.Fprintln(bn.out, "  "+r.line())
		}
		out = append(out, rs...)
	}
	return out, nil
}

// load runs one bounded load and prints what it is doing first.
func (bn *bench) load(ctx context.Context, what string, next func(i int) reqSpec, ok func(int) bool) loadResult {
	return bn.loadFor(ctx, what, bn.opts.duration, next, ok)
}

// loadFor is load for a given duration.
func (bn *bench) loadFor(ctx context.Context, what string, dur time.Duration, next func(i int) reqSpec, ok func(int) bool) loadResult {
	fmt.Fprintf(bn.out, "bench: %s: %d connections for %s\n", what, bn.opts.concurrency, dur)
	if bn.opts.cpuProfile != "" {
		name := fmt.Sprintf("%s-%02d.pprof", bn.opts.cpuProfile, bn.profiles)
		bn.profiles++
		if f, err := os.Create(name); err == nil { // #nosec G304 -- a profile file the operator asked for with a flag
			if pprof.StartCPUProfile(f) == nil {
				defer func() {
					pprof.StopCPUProfile()
					f.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
					fmt.Fprintf(bn.out, "  CPU profile of %s: %s\n", what, name)
				}()
			}
		}
	}
	return runLoad(ctx, bn.gen, loadSpec{
		concurrency: bn.opts.concurrency, duration: dur, maxRequests: 50_000_000, next: next, ok: ok,
	})
}

// paired measures a scenario and its baseline alternately, in rounds of
// half the duration each (baseline, scenario, baseline, scenario), so that
// drift in the machine's load hits both alike.
func (bn *bench) paired(ctx context.Context, what string, base, scen func(int) reqSpec, baseOK, scenOK func(int) bool) (loadResult, loadResult) {
	rs := bn.rounds(ctx, what, &leg{name: "baseline", next: base, ok: baseOK}, &leg{next: scen, ok: scenOK})
	return rs[0], rs[1]
}

// leg is one load of a round: a name ("" for the scenario itself), the
// requests and the statuses that count as success.
type leg struct {
	name string
	next func(int) reqSpec
	ok   func(int) bool
}

// rounds measures each leg in turn, in two rounds of half the duration
// each, and returns their merged results in the order given; a nil leg is
// skipped (its result is empty).
func (bn *bench) rounds(ctx context.Context, what string, legs ...*leg) []loadResult {
	half := bn.opts.duration / 2
	out := make([]loadResult, len(legs))
	for round := 1; round <= 2; round++ {
		for i, l := range legs {
			if l == nil {
				continue
			}
			label := what
			if l.name != "" {
				label += " " + l.name
			}
			out[i] = merge(out[i], bn.loadFor(ctx, fmt.Sprintf("%s, round %d/2", label, round), half, l.next, l.ok))
		}
	}
	return out
}

// merge adds the requests and time of two runs.
func merge(a, b loadResult) loadResult {
	return loadResult{requests: a.requests + b.requests, failures: a.failures + b.failures,
		elapsed: a.elapsed + b.elapsed, latency: append(a.latency, b.latency...)}
}

func newGet(url string, headers ...string) reqSpec { return reqSpec{url: url, headers: headers} }

// newGetOf is a GET of a peer's URL, or the zero spec without nginx.
func newGetOf(p *nginxPeers, url func(*nginxPeers) string) reqSpec {
	if p == nil {
		return reqSpec{}
	}
	return newGet(url(p))
}

// httpGet makes a net/http request of a reqSpec, for the few sequential
// calls (revoke-propagation) that are not load.
func httpGet(rs reqSpec) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, rs.url, nil)
	for i := 0; i+1 < len(rs.headers); i += 2 {
		req.Header.Set(rs.headers[i], rs.headers[i+1])
	}
	return req
}

func wantStatus(want int) func(int) bool { return func(s int) bool { return s == want } }

func result(name string, r loadResult, baseline float64) scenarioResult {
	res := scenarioResult{Name: name, RPS: r.rps(), P50: percentile(r.latency, 50), P99: percentile(r.latency, 99),
		BaselineRPS: baseline, Requests: r.requests, Failures: r.failures, Extra: map[string]any{}}
	if baseline > 0 {
		res.Ratio = res.RPS / baseline
	}
	return res
}

// verifyScenarios: verify-cached, verify-cold and verify-garbage.
func (bn *bench) verifyScenarios(ctx context.Context) ([]scenarioResult, error) {
	baseSpec := newGet(bn.baseline + "/ok")
	base := bn.load(ctx, "baseline (a Fiber route that only answers 200)", func(int) reqSpec { return baseSpec }, wantStatus(200))
	// Requests are built before a run, so that the generator does no work
	// per request beyond sending it.
	specsFor := func(url string, keys []string) []reqSpec {
		out := make([]reqSpec, len(keys))
		for i, k := range keys {
			out[i] = newGet(url, "X-API-Key", k)
		}
		return out
	}
	cycle := func(specs []reqSpec) func(int) reqSpec {
		return func(i int) reqSpec { return specs[i%len(specs)] }
	}
	check := func(s *service) func(i int) reqSpec { return cycle(specsFor(s.URL()+"/v1/auth/check", bn.pool)) }
	// Warm the cache of instance a with every pool key once.
	warm := runLoad(ctx, bn.gen, loadSpec{concurrency: bn.opts.concurrency, duration: time.Minute, maxRequests: len(bn.pool), next: check(bn.a), ok: wantStatus(200)})
	if warm.failures > 0 {
		return nil, fmt.Errorf("bench: %d of %d pool keys failed to verify while warming up", warm.failures, len(bn.pool))
	}
	vr := bn.rounds(ctx, "verify-cached",
		&leg{name: "baseline", next: func(int) reqSpec { return baseSpec }, ok: wantStatus(200)},
		bn.peerLeg("peer nginx return 200", newGetOf(bn.ngx, func(p *nginxPeers) string { return "http://" + p.ok + "/ok" })),
		&leg{next: check(bn.a), ok: wantStatus(200)})
	basePaired, cached := vr[0], vr[2]
	rCached := result("verify-cached", cached, basePaired.rps())
	rCached.Extra["baseline_p99_ms"] = percentile(basePaired.latency, 99)
	if bn.ngx != nil {
		withPeer(&rCached, "nginx-return-200", vr[1])
	}

	before := bn.cold.verifier.Stats().DBLookups.Load()
	cold := bn.load(ctx, fmt.Sprintf("verify-cold (no cache, %d keys in the table)", bn.opts.coldKeys), check(bn.cold), wantStatus(200))
	rCold := result("verify-cold", cold, base.rps())
	rCold.Extra["db_queries"] = bn.cold.verifier.Stats().DBLookups.Load() - before
	rCold.Extra["keys_in_table"] = bn.opts.coldKeys
	// At 64 connections the latency is mostly queueing for the 20 database
	// connections; one connection shows the lookup itself.
	fmt.Fprintf(bn.out, "bench: verify-cold: 1 connection for %s\n", bn.opts.duration/2)
	serial := runLoad(ctx, bn.gen, loadSpec{concurrency: 1, duration: bn.opts.duration / 2, maxRequests: 50_000_000, next: check(bn.cold), ok: wantStatus(200)})
	rCold.Extra["p50_ms_1conn"] = percentile(serial.latency, 50)
	rCold.Extra["p99_ms_1conn"] = percentile(serial.latency, 99)

	// Garbage: keys with one character changed (bad checksum), then
	// well-formed keys that do not exist.
	bad := make([]string, len(bn.pool))
	for i, k := range bn.pool {
		b := []byte(k)
		j := len("cv_live_") + i%30
		b[j] = map[bool]byte{true: 'B', false: 'A'}[b[j] == 'A']
		bad[i] = string(b)
	}
	unknown := make([]string, 10_000)
	for i := range unknown {
		k, err := apikey.Generate("cv", apikey.EnvLive)
		if err != nil {
			return nil, err
		}
		unknown[i] = k.Reveal()
	}
	garbage := func(keys []string) func(int) reqSpec { return cycle(specsFor(bn.a.URL()+"/v1/auth/check", keys)) }
	stats := bn.a.verifier.Stats()
	q0 := stats.DBLookups.Load()
	badRun := bn.load(ctx, "verify-garbage (bad checksums)", garbage(bad), wantStatus(401))
	q1 := stats.DBLookups.Load()
	unknownRun := bn.load(ctx, "verify-garbage (well-formed unknown keys)", garbage(unknown), wantStatus(401))
	q2 := stats.DBLookups.Load()
	both := merge(badRun, unknownRun)
	rGarbage := result("verify-garbage", both, cached.rps())
	rGarbage.Extra["db_queries_bad_checksum"] = q1 - q0
	rGarbage.Extra["db_queries_unknown"] = q2 - q1
	rGarbage.Extra["db_queries"] = q2 - q0
	rGarbage.Extra["baseline"] = "verify-cached"
	return []scenarioResult{rCached, rCold, rGarbage}, nil
}

// revokePropagation revokes keys through instance a and measures how long
// instance b keeps accepting each.
func (bn *bench) revokePropagation(ctx context.Context) ([]scenarioResult, error) {
	fmt.Fprintf(bn.out, "bench: revoke-propagation: %d revocations on instance A, polled on instance B\n", bn.opts.revocations)
	api := func(method, url string, body string) (int, map[string]any, error) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequestWithContext(ctx, method, url, rd)
		req.Header.Set("X-API-Key", bn.owner)
		req.Header.Set("Content-Type", "application/json")
		resp, err := bn.client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m, nil
	}
	var samples []time.Duration
	for i := range bn.opts.revocations {
		st, m, err := api("POST", bn.a.URL()+"/v1/api-keys", fmt.Sprintf(`{"name":"revoke-%d","scopes":["keys:read"]}`, i))
		if err != nil || st != 201 {
			return nil, fmt.Errorf("bench: create key: %d %v", st, err)
		}
		key, id := m["key"].(string), m["id"].(string)
		for {
			resp, err := bn.client.Do(httpGet(newGet(bn.b.URL()+"/v1/auth/check", "X-API-Key", key)))
			if err != nil {
				return nil, err
			}
			resp.Body.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
			if resp.StatusCode == 200 {
				break
			}
		}
		start := time.Now()
		if st, _, err := api("POST", bn.a.URL()+"/v1/api-keys/"+id+"/revoke", ""); err != nil || st != 200 {
			return nil, fmt.Errorf("bench: revoke: %d %v", st, err)
		}
		for time.Since(start) < 5*time.Second {
			resp, err := bn.client.Do(httpGet(newGet(bn.b.URL()+"/v1/auth/check", "X-API-Key", key)))
			if err != nil {
				return nil, err
			}
			resp.Body.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
			if resp.StatusCode == 401 {
				break
			}
		}
		samples = append(samples, time.Since(start))
	}
	r := scenarioResult{Name: "revoke-propagation", P50: percentile(samples, 50), P99: percentile(samples, 99),
		Requests: len(samples), Extra: map[string]any{"revocations": len(samples), "max_ms": percentile(samples, 100)}}
	return []scenarioResult{r}, nil
}

// proxyScenarios: calls through /v1/proxy with the secret cache on and off,
// against direct calls to the same upstream.
func (bn *bench) proxyScenarios(ctx context.Context) ([]scenarioResult, error) {
	ctxOwner := credvault.WithPrincipal(ctx, &credvault.Principal{OrgID: bn.orgID, UserID: bn.userID, Kind: credvault.KeyKindUser, Role: credvault.RoleOwner, Scopes: []string{credvault.ScopeAdmin}})
	hostPort := bn.upstream[len("http://"):]
	c, err := bn.a.creds.CreateCredential(ctxOwner, credvault.CreateCredentialInput{
		Name: "bench upstream", Placement: credvault.PlacementBearer, Value: credvault.NewSecret(benchUpstreamSecret),
		BaseURL: bn.upstream, AllowedHosts: []string{hostPort},
	})
	if err != nil {
		return nil, err
	}
	directSpec := newGet(bn.upstream + "/v1/balance?direct=1")
	via := func(s *service) func(int) reqSpec {
		spec := newGet(s.URL()+"/v1/proxy/"+c.ID+"/v1/balance", "X-API-Key", bn.owner)
		return func(int) reqSpec { return spec }
	}
	directFn := func(int) reqSpec { return directSpec }
	pr := bn.rounds(ctx, "proxy (secret cache on)",
		&leg{name: "baseline: direct calls", next: directFn, ok: wantStatus(200)},
		bn.peerLeg("peer: nginx proxy with a static header", newGetOf(bn.ngx, func(p *nginxPeers) string { return "http://" + p.static + "/v1/balance" })),
		&leg{next: via(bn.a), ok: wantStatus(200)})
	direct, cached := pr[0], pr[2]
	direct2, uncached := bn.paired(ctx, "proxy (secret cache off: a Vault decrypt per call) against direct calls", directFn, via(bn.nocache), wantStatus(200), wantStatus(200))
	r1 := result("proxy", cached, direct.rps())
	r1.Extra["secret_cache"] = true
	r1.Extra["baseline_p99_ms"] = percentile(direct.latency, 99)
	if bn.ngx != nil {
		withPeer(&r1, "nginx-static-header-proxy", pr[1])
	}
	r2 := result("proxy-nocache", uncached, direct2.rps())
	r2.Extra["secret_cache"] = false
	return []scenarioResult{r1, r2}, nil
}

// rewrap measures rows rewrapped per second, against the transit rewrap
// rate alone (no database) as the baseline.
func (bn *bench) rewrap(ctx context.Context) ([]scenarioResult, error) {
	n := bn.opts.rewrapRows
	fmt.Fprintf(bn.out, "bench: rewrap: seeding %d credentials through Vault\n", n)
	if err := seedCredentials(ctx, bn.a.db, bn.a.vault, bn.orgID, bn.userID, n, bn.out); err != nil {
		return nil, err
	}
	if err := bn.a.vault.RotateKey(ctx); err != nil {
		return nil, err
	}
	rows, err := bn.a.store.CiphertextsBelow(ctx, "", 2, "", min(n, 20_000))
	if err != nil {
		return nil, err
	}
	items := make([]credvault.TransitItem, len(rows))
	for i, r := range rows {
		items[i] = credvault.TransitItem{Ciphertext: r.Ciphertext, Context: credvault.CredentialContext(r.OrgID, r.ID)}
	}
	fmt.Fprintf(bn.out, "bench: rewrap baseline: %d ciphertexts through Vault's rewrap alone\n", len(items))
	t0 := time.Now()
	if _, err := bn.a.vault.RewrapBatch(ctx, items); err != nil {
		return nil, err
	}
	baseline := float64(len(items)) / time.Since(t0).Seconds()
	fmt.Fprintf(bn.out, "bench: rewrap: %d credentials\n", n)
	job := &credvault.RewrapService{Store: bn.a.store, Audit: bn.a.store, Vault: bn.a.vault, Log: bn.log}
	last := time.Now()
	pr, err := job.Rewrap(ctx, credvault.RewrapOptions{Progress: func(p credvault.RewrapProgress) {
		if time.Since(last) > time.Second {
			fmt.Fprintln(bn.out, "  "+progressLine(p))
			last = time.Now()
		}
	}})
	if err != nil {
		return nil, err
	}
	rate := float64(pr.Rewrapped) / pr.Elapsed.Seconds()
	r := scenarioResult{Name: "rewrap", RPS: rate, BaselineRPS: baseline, Ratio: rate / baseline, Requests: pr.Rewrapped,
		Failures: pr.Failed, Extra: map[string]any{"rows": n, "batches": pr.Batches, "unit": "rows/s"}}
	return []scenarioResult{r}, nil
}
