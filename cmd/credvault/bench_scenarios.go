package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"credvault/internal/apikey"
	"credvault/internal/bench"
	"credvault/internal/credvault"
)

// benchRun holds the running pieces of one `credvault bench` run.
type benchRun struct {
	opts   benchOptions
	out    io.Writer
	log    *slog.Logger
	client *http.Client     // sequential calls
	gen    bench.Generator  // the load generator (its own process unless --generator in-process)
	warm   *bench.InProcess // unmeasured warm-up loads

	a, b, cold, nocache *service // instances on one database
	stops               []func()
	baseline, upstream  string
	up                  *bench.Upstream // the upstream process
	ca                  bench.TestCA    // the TLS upstream's test CA
	owner               string          // the bench org's owner key (scope admin)
	orgID, userID       string
	pool                []string // valid keys the verify scenarios send
	profiles            int
	ngx                 *nginxPeers // nil without nginx
}

func (bn *benchRun) stop() {
	for i := len(bn.stops) - 1; i >= 0; i-- {
		bn.stops[i]()
	}
}

// instance starts one service on env's database and Vault.
func (bn *benchRun) instance(ctx context.Context, cfg Config, opts startOptions) (*service, error) {
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

// startUpstream runs the upstream in its own process (plain HTTP and TLS
// with a certificate of a throwaway CA) and makes every instance trust
// that CA, as CREDVAULT_UPSTREAM_CA_FILE would.
func (bn *benchRun) startUpstream(ctx context.Context, cfg *Config) error {
	dir, err := os.MkdirTemp("", "credvault-bench-ca-")
	if err != nil {
		return err
	}
	bn.stops = append(bn.stops, func() { os.RemoveAll(dir) })
	if bn.ca, err = bench.NewTestCA(dir); err != nil {
		return err
	}
	if cfg.UpstreamCAs, err = loadUpstreamCAs(bn.ca.CAFile); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if bn.up, err = bench.StartUpstream(ctx, exe, &bn.ca); err != nil {
		return err
	}
	bn.stops = append(bn.stops, bn.up.Stop)
	bn.upstream = "http://" + bn.up.HTTP
	return nil
}

func (bn *benchRun) setup(ctx context.Context, env benchEnv) error {
	fmt.Fprintf(bn.out, "bench: load generator: %s; upstream and generator in their own processes\n", bn.gen.Name())
	if err := bn.startUpstream(ctx, &env.cfg); err != nil {
		return err
	}
	fmt.Fprintln(bn.out, "bench: starting the service instances and a baseline route")
	var err error
	// Instance a claims due health checks every second (River's shortest
	// period) for the events-overhead scenario.
	if bn.a, err = bn.instance(ctx, env.cfg, startOptions{createTransitKey: true, events: eventOptions{healthScan: time.Second}}); err != nil {
		return err
	}
	// The other instances only where a selected group uses them:
	// b for revoke, cold for verify, nocache for proxy.
	if bn.runs("revoke") {
		if bn.b, err = bn.instance(ctx, env.cfg, startOptions{}); err != nil {
			return err
		}
	}
	if bn.runs("verify") {
		if bn.cold, err = bn.instance(ctx, env.cfg, startOptions{disableKeyCache: true}); err != nil {
			return err
		}
	}
	if bn.runs("proxy") {
		noCache := env.cfg
		noCache.SecretCacheTTL = 0
		if bn.nocache, err = bn.instance(ctx, noCache, startOptions{}); err != nil {
			return err
		}
	}
	var stop func()
	if bn.baseline, stop, err = baselineServer(); err != nil {
		return err
	}
	bn.stops = append(bn.stops, stop)

	res, err := credvault.Bootstrap(ctx, bn.a.store, bn.a.minter, "bench", "bench@localhost")
	if err != nil {
		return err
	}
	bn.owner, bn.orgID, bn.userID = res.APIKey.Reveal(), res.OrgID, res.UserID
	// Only the verify, events and nginx groups send the seeded keys.
	if bn.runs("verify") || bn.runs("events") || bn.runs("nginx") {
		fmt.Fprintf(bn.out, "bench: seeding %d API keys (%d of them sent in requests)\n", bn.opts.coldKeys, bn.opts.poolKeys)
		if bn.pool, err = seedKeys(ctx, bn.a.db, bn.orgID, bn.userID, bn.opts.coldKeys, bn.opts.poolKeys, bn.out); err != nil {
			return err
		}
		// Seeding bypassed NOTIFY: reload every instance's known-key set.
		for _, s := range []*service{bn.a, bn.b, bn.cold, bn.nocache} {
			if s != nil {
				s.verifier.Reset(ctx)
			}
		}
	}
	return bn.startNginx(ctx)
}

// runs reports whether the group of scenarios is selected (--only).
func (bn *benchRun) runs(group string) bool { return bn.opts.only == nil || bn.opts.only[group] }

func (bn *benchRun) run(ctx context.Context) ([]scenarioResult, error) {
	var out []scenarioResult
	steps := []func(context.Context) ([]scenarioResult, error){ // in the order of benchGroups
		bn.verifyScenarios, bn.revokePropagation, bn.proxyScenarios, bn.tlsScenarios, bn.eventsOverhead, bn.nginxScenarios, bn.rewrap,
	}
	for i, step := range steps {
		if !bn.runs(benchGroups[i]) {
			continue
		}
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

// httpGet makes a net/http request of a bench.Request, for the few
// sequential calls (revoke-propagation) that are not load.
func httpGet(rs bench.Request) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, rs.URL, nil)
	for i := 0; i+1 < len(rs.Headers); i += 2 {
		req.Header.Set(rs.Headers[i], rs.Headers[i+1])
	}
	return req
}

// withKeys is one request to url per key, in the header X-API-Key; they
// are built before a run, so that the generator does no work per request
// beyond sending it.
func withKeys(url string, keys []string) []bench.Request {
	out := make([]bench.Request, len(keys))
	for i, k := range keys {
		out[i] = newGet(url, "X-API-Key", k)
	}
	return out
}

// verifyScenarios: verify-cached, verify-cold and verify-garbage.
func (bn *benchRun) verifyScenarios(ctx context.Context) ([]scenarioResult, error) {
	baseLeg := &leg{name: "baseline", reqs: []bench.Request{newGet(bn.baseline + "/ok")}, want: 200, proc: self()}
	base, err := bn.load(ctx, "baseline (a Fiber route that only answers 200)", baseLeg)
	if err != nil {
		return nil, err
	}
	check := func(s *service, keys []string, want int) *leg {
		return &leg{reqs: withKeys(s.URL()+"/v1/auth/check", keys), want: want, proc: self()}
	}
	// Warm the cache of instance a with every pool key once (not measured).
	warm, err := bn.warm.Run(ctx, bench.Spec{Connections: bn.opts.concurrency, Duration: time.Minute, MaxRequests: len(bn.pool),
		Requests: withKeys(bn.a.URL()+"/v1/auth/check", bn.pool), WantStatus: 200})
	if err != nil {
		return nil, err
	}
	if warm.Failures > 0 {
		return nil, fmt.Errorf("bench: %d of %d pool keys failed to verify while warming up", warm.Failures, len(bn.pool))
	}
	vr, err := bn.rounds(ctx, "verify-cached", baseLeg,
		bn.peerLeg("peer nginx return 200", func(p *nginxPeers) string { return "http://" + p.ok + "/ok" }),
		check(bn.a, bn.pool, 200))
	if err != nil {
		return nil, err
	}
	basePaired, cached := vr[0], vr[2]
	rCached := result("verify-cached", cached, basePaired.RPS())
	withBaseline(&rCached, basePaired)
	if bn.ngx != nil {
		withPeer(&rCached, "nginx-return-200", vr[1])
	}

	before := bn.cold.verifier.Stats().DBLookups.Load()
	cold, err := bn.load(ctx, fmt.Sprintf("verify-cold (no cache, %d keys in the table)", bn.opts.coldKeys), check(bn.cold, bn.pool, 200))
	if err != nil {
		return nil, err
	}
	rCold := result("verify-cold", cold, base.RPS())
	rCold.Extra["db_queries"] = bn.cold.verifier.Stats().DBLookups.Load() - before
	rCold.Extra["keys_in_table"] = bn.opts.coldKeys
	// At 64 connections the latency is mostly queueing for the 20 database
	// connections; one connection shows the lookup itself.
	fmt.Fprintf(bn.out, "bench: verify-cold: 1 connection for %s\n", bn.opts.duration/2)
	serial, err := bn.loadWith(ctx, 1, bn.opts.duration/2, check(bn.cold, bn.pool, 200))
	if err != nil {
		return nil, err
	}
	rCold.Extra["p50_ms_1conn"] = serial.P50
	rCold.Extra["p99_ms_1conn"] = serial.P99

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
	stats := bn.a.verifier.Stats()
	q0 := stats.DBLookups.Load()
	badRun, err := bn.load(ctx, "verify-garbage (bad checksums)", check(bn.a, bad, 401))
	if err != nil {
		return nil, err
	}
	q1 := stats.DBLookups.Load()
	unknownRun, err := bn.load(ctx, "verify-garbage (well-formed unknown keys)", check(bn.a, unknown, 401))
	if err != nil {
		return nil, err
	}
	q2 := stats.DBLookups.Load()
	rGarbage := result("verify-garbage", bench.Merge(badRun, unknownRun), cached.RPS())
	rGarbage.Extra["db_queries_bad_checksum"] = q1 - q0
	rGarbage.Extra["db_queries_unknown"] = q2 - q1
	rGarbage.Extra["db_queries"] = q2 - q0
	rGarbage.Extra["baseline"] = "verify-cached"
	return []scenarioResult{rCached, rCold, rGarbage}, nil
}

// revokePropagation revokes keys through instance a and measures how long
// instance b keeps accepting each.
func (bn *benchRun) revokePropagation(ctx context.Context) ([]scenarioResult, error) {
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

// proxyCredential stores a bearer credential for base_url on instance A.
func (bn *benchRun) proxyCredential(ctx context.Context, name, baseURL string) (string, error) {
	ctxOwner := credvault.WithPrincipal(ctx, &credvault.Principal{OrgID: bn.orgID, UserID: bn.userID, Kind: credvault.KeyKindUser, Role: credvault.RoleOwner, Scopes: []string{credvault.ScopeAdmin}})
	_, hostPort, _ := strings.Cut(baseURL, "://")
	c, err := bn.a.creds.CreateCredential(ctxOwner, credvault.CreateCredentialInput{
		Name: name, Placement: credvault.PlacementBearer, Value: credvault.NewSecret(benchUpstreamSecret),
		BaseURL: baseURL, AllowedHosts: []string{hostPort},
	})
	if err != nil {
		return "", err
	}
	return c.ID, nil
}

// via is the leg of proxied calls through s with credential id.
func (bn *benchRun) via(s *service, id string) *leg {
	return &leg{reqs: []bench.Request{newGet(s.URL()+"/v1/proxy/"+id+"/v1/balance", "X-API-Key", bn.owner)}, want: 200, proc: self()}
}

// proxyScenarios: calls through /v1/proxy with the secret cache on and off,
// against direct calls to the same upstream (charged to the upstream's
// process) and nginx adding a static header.
func (bn *benchRun) proxyScenarios(ctx context.Context) ([]scenarioResult, error) {
	id, err := bn.proxyCredential(ctx, "bench upstream", bn.upstream)
	if err != nil {
		return nil, err
	}
	direct := &leg{name: "baseline: direct calls", reqs: []bench.Request{newGet(bn.upstream + "/v1/balance?direct=1")}, want: 200,
		proc: bench.Process{PID: bn.up.PID}}
	pr, err := bn.rounds(ctx, "proxy (secret cache on)", direct,
		bn.peerLeg("peer: nginx proxy with a static header", func(p *nginxPeers) string { return "http://" + p.static + "/v1/balance" }),
		bn.via(bn.a, id))
	if err != nil {
		return nil, err
	}
	r1 := result("proxy", pr[2], pr[0].RPS())
	r1.Extra["secret_cache"] = true
	withBaseline(&r1, pr[0])
	if bn.ngx != nil {
		withPeer(&r1, "nginx-static-header-proxy", pr[1])
	}
	nr, err := bn.rounds(ctx, "proxy (secret cache off: a Vault decrypt per call) against direct calls", direct, bn.via(bn.nocache, id))
	if err != nil {
		return nil, err
	}
	r2 := result("proxy-nocache", nr[1], nr[0].RPS())
	r2.Extra["secret_cache"] = false
	return []scenarioResult{r1, r2}, nil
}

// tlsScenarios: proxied calls to the upstream over TLS (certificate of the
// bench's test CA, trusted through the configuration), once to a listener
// that offers only HTTP/1.1 and once to one that offers HTTP/2, against
// nginx proxy_pass https:// with session reuse and upstream keepalive to
// the same upstream. Connections are reused throughout: this measures the
// cost of TLS records, not of handshakes.
func (bn *benchRun) tlsScenarios(ctx context.Context) ([]scenarioResult, error) {
	h1, err := bn.proxyCredential(ctx, "bench upstream tls h1", "https://"+bn.up.HTTPS1)
	if err != nil {
		return nil, err
	}
	h2, err := bn.proxyCredential(ctx, "bench upstream tls h2", "https://"+bn.up.HTTPS2)
	if err != nil {
		return nil, err
	}
	peer := bn.peerLeg("peer: nginx proxy_pass https:// (keepalive, session reuse)", func(p *nginxPeers) string { return "http://" + p.tls + "/v1/balance" })
	legH1, legH2 := bn.via(bn.a, h1), bn.via(bn.a, h2)
	legH1.name, legH2.name = "HTTP/1.1", "HTTP/2"
	tr, err := bn.rounds(ctx, "proxy to a TLS upstream", peer, legH1, legH2)
	if err != nil {
		return nil, err
	}
	var out []scenarioResult
	for i, name := range []string{"proxy-tls-h1", "proxy-tls-h2"} {
		r := result(name, tr[i+1], tr[0].RPS())
		if bn.ngx != nil {
			r.Extra["baseline"] = "nginx-proxy-pass-https"
			withPeer(&r, "nginx-proxy-pass-https", tr[0])
		}
		out = append(out, r)
	}
	return out, nil
}

// rewrap measures rows rewrapped per second, against the transit rewrap
// rate alone (no database) as the baseline.
func (bn *benchRun) rewrap(ctx context.Context) ([]scenarioResult, error) {
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
		items[i] = credvault.TransitItem{Ciphertext: r.Ciphertext, Context: r.Context()}
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
