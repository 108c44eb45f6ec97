package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime/pprof"
	"time"

	"credvault/internal/bench"
)

// percentile is bench.Percentile: the p-th percentile of samples in ms.
func percentile(samples []time.Duration, p float64) float64 { return bench.Percentile(samples, p) }

// newGet is a GET of url with header name/value pairs.
func newGet(url string, headers ...string) bench.Request {
	return bench.Request{URL: url, Headers: headers}
}

// leg is one load of a round: a name ("" for the scenario itself), the
// requests (cycled), the status that counts as success, and the process
// that serves them, whose CPU the leg is charged with.
type leg struct {
	name string
	reqs []bench.Request
	want int
	proc bench.Process
}

// self is the bench's own process, where the credvault instances and the
// baseline Fiber route run (and, with --generator in-process, the load).
func self() bench.Process { return bench.Process{PID: os.Getpid()} }

// loadFor runs one bounded load of l for dur with bn's generator, reading
// the serving process's CPU around it, and prints what it is doing first.
func (bn *benchRun) loadFor(ctx context.Context, what string, dur time.Duration, l *leg) (bench.Result, error) {
	fmt.Fprintf(bn.out, "bench: %s: %d connections for %s (%s)\n", what, bn.opts.concurrency, dur, bn.gen.Name())
	return bn.loadWith(ctx, bn.opts.concurrency, dur, l)
}

// loadWith is loadFor at a given number of connections, without the
// progress line.
func (bn *benchRun) loadWith(ctx context.Context, conns int, dur time.Duration, l *leg) (bench.Result, error) {
	if bn.opts.cpuProfile != "" && l.proc.PID == os.Getpid() {
		name := fmt.Sprintf("%s-%02d.pprof", bn.opts.cpuProfile, bn.profiles)
		bn.profiles++
		if f, err := os.Create(name); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer func() {
					pprof.StopCPUProfile()
					f.Close()
					fmt.Fprintf(bn.out, "  CPU profile: %s\n", name)
				}()
			}
		}
	}
	spec := bench.Spec{Connections: conns, Duration: dur, MaxRequests: 50_000_000, Requests: l.reqs, WantStatus: l.want}
	return bench.Watch(l.proc, func() (bench.Result, error) { return bn.gen.Run(ctx, spec) })
}

// load is loadFor for the configured duration.
func (bn *benchRun) load(ctx context.Context, what string, l *leg) (bench.Result, error) {
	return bn.loadFor(ctx, what, bn.opts.duration, l)
}

// rounds measures each leg in turn, in two rounds of half the duration
// each (baseline, peer, scenario, baseline, peer, scenario), so that drift
// in the machine's load hits all alike, and returns their merged results in
// the order given; a nil leg is skipped (its result is empty).
func (bn *benchRun) rounds(ctx context.Context, what string, legs ...*leg) ([]bench.Result, error) {
	half := bn.opts.duration / 2
	out := make([]bench.Result, len(legs))
	for round := 1; round <= 2; round++ {
		for i, l := range legs {
			if l == nil {
				continue
			}
			label := what
			if l.name != "" {
				label += " " + l.name
			}
			r, err := bn.loadFor(ctx, fmt.Sprintf("%s, round %d/2", label, round), half, l)
			if err != nil {
				return nil, err
			}
			out[i] = bench.Merge(out[i], r)
		}
	}
	return out, nil
}

// result is the report line of a load run against a baseline throughput:
// throughput, latency, and the serving process's CPU per request and
// resident memory.
func result(name string, r bench.Result, baseline float64) scenarioResult {
	res := scenarioResult{Name: name, RPS: r.RPS(), P50: r.P50, P99: r.P99,
		BaselineRPS: baseline, Requests: r.Requests, Failures: r.Failures, Extra: map[string]any{}}
	if baseline > 0 {
		res.Ratio = res.RPS / baseline
	}
	if r.CPU > 0 {
		res.Extra["cpu_us_per_req"] = round1(r.CPUPerRequest())
	}
	if r.RSS > 0 {
		res.Extra["rss_mb"] = round1(float64(r.RSS) / 1e6)
	}
	return res
}

// withBaseline adds the baseline's p99 and CPU per request to r.
func withBaseline(r *scenarioResult, base bench.Result) {
	r.Extra["baseline_p99_ms"] = round2(base.P99)
	if base.Failures > 0 {
		r.Extra["baseline_failures"] = base.Failures
	}
	if base.CPU > 0 {
		r.Extra["baseline_cpu_us_per_req"] = round1(base.CPUPerRequest())
	}
}

// withPeer adds a peer's figures to r: its name, throughput, p99, CPU per
// request and memory, and r's throughput as a share of its.
func withPeer(r *scenarioResult, name string, peer bench.Result) {
	r.Extra["peer"] = name
	r.Extra["peer_rps"] = int(peer.RPS())
	r.Extra["peer_p99_ms"] = round2(peer.P99)
	if peer.Failures > 0 {
		r.Extra["peer_failures"] = peer.Failures
	}
	if peer.CPU > 0 {
		r.Extra["peer_cpu_us_per_req"] = round1(peer.CPUPerRequest())
	}
	if peer.RSS > 0 {
		r.Extra["peer_rss_mb"] = round1(float64(peer.RSS) / 1e6)
	}
	if peer.RPS() > 0 {
		r.Extra["peer_ratio"] = fmt.Sprintf("%.2f", r.RPS/peer.RPS())
	}
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// benchClient is the HTTP client for sequential calls: keep-alive connections,
// one per worker.
func benchClient(concurrency int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{MaxIdleConns: concurrency * 2, MaxIdleConnsPerHost: concurrency * 2, IdleConnTimeout: time.Minute},
		Timeout:   30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
