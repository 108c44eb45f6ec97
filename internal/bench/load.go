package bench

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Request is one GET a generator sends: an absolute http:// URL and header
// name/value pairs.
type Request struct {
	URL     string   `json:"url"`
	Headers []string `json:"headers,omitempty"`
}

// Spec is one bounded load run: Connections keep-alive connections send
// Requests in turn (cycled; all to one host) until Duration is up or
// MaxRequests have been sent, whichever comes first. A response counts as a
// success when its status is WantStatus.
type Spec struct {
	Connections int           `json:"connections"`
	Duration    time.Duration `json:"duration"`
	MaxRequests int           `json:"max_requests"`
	Requests    []Request     `json:"requests"`
	WantStatus  int           `json:"want_status"`
}

// check refuses a spec no generator can run.
func (s Spec) check() error {
	switch {
	case s.Connections < 1:
		return fmt.Errorf("bench: %d connections; want at least 1", s.Connections)
	case s.Duration <= 0:
		return fmt.Errorf("bench: duration %s; want more than 0", s.Duration)
	case len(s.Requests) == 0:
		return fmt.Errorf("bench: a load run needs at least one request")
	case s.WantStatus < 100 || s.WantStatus > 599:
		return fmt.Errorf("bench: want_status %d is not an HTTP status", s.WantStatus)
	}
	return nil
}

// Result is what one load run measured. Latencies are in milliseconds;
// Latency holds the samples when the generator keeps them (in-process and
// re-executed generators; wrk reports only its percentiles).
type Result struct {
	Requests int             `json:"requests"`
	Failures int             `json:"failures"`
	Elapsed  time.Duration   `json:"elapsed"`
	P50      float64         `json:"p50_ms"`
	P99      float64         `json:"p99_ms"`
	Latency  []time.Duration `json:"-"`
	// CPU is the serving process's CPU time (user + system) during the
	// run, and RSS its resident memory at the end, when the caller
	// measured them (see Watch); zero otherwise.
	CPU time.Duration `json:"-"`
	RSS int64         `json:"-"`
}

// RPS is requests per second.
func (r Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// CPUPerRequest is the serving process's CPU per request in µs, 0 when not
// measured.
func (r Result) CPUPerRequest() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.CPU.Microseconds()) / float64(r.Requests)
}

// Merge adds two runs of the same load (two rounds of a scenario): counts,
// time and CPU add up, the samples are joined and the percentiles taken
// again; without samples (wrk) each percentile is the request-weighted mean
// of the two runs' (an approximation, said so in BENCHMARKS.md). RSS is the
// larger.
func Merge(a, b Result) Result {
	out := Result{Requests: a.Requests + b.Requests, Failures: a.Failures + b.Failures, Elapsed: a.Elapsed + b.Elapsed,
		CPU: a.CPU + b.CPU, RSS: max(a.RSS, b.RSS)}
	if len(a.Latency)+len(b.Latency) > 0 {
		out.Latency = append(slices.Clip(a.Latency), b.Latency...)
		out.P50, out.P99 = Percentile(out.Latency, 50), Percentile(out.Latency, 99)
		return out
	}
	if n := out.Requests; n > 0 {
		wa, wb := float64(a.Requests)/float64(n), float64(b.Requests)/float64(n)
		out.P50, out.P99 = a.P50*wa+b.P50*wb, a.P99*wa+b.P99*wb
	}
	return out
}

// Percentile returns the p-th percentile (0..100) of samples in ms, 0 for
// none (nearest rank below).
func Percentile(samples []time.Duration, p float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return float64(s[i].Microseconds()) / 1000
}

// Generator sends the load of a Spec and measures it.
type Generator interface {
	// Name says which generator it is, for the report ("wrk",
	// "exec", "in-process").
	Name() string
	// Run runs spec to its end. Errors: a spec it cannot run, or the
	// generator failing to start or report (not failed requests, which
	// are counted).
	Run(ctx context.Context, spec Spec) (Result, error)
}
