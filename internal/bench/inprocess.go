package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// maxSamples bounds the latency samples one run keeps (16 MB).
const maxSamples = 2_000_000

// InProcess is fasthttp's client driving the load from inside the calling
// process. It is the generator of `credvault bench-generator` (the process
// Exec starts) and, with --generator in-process, the method of the earlier
// figures, in which it shared credvault's process.
type InProcess struct {
	client *fasthttp.Client
}

// NewInProcess makes a generator for up to connections connections per
// host, reused across runs so that runs measure warm connections.
func NewInProcess(connections int) *InProcess {
	return &InProcess{client: &fasthttp.Client{MaxConnsPerHost: connections * 2, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}}
}

// Name is "in-process".
func (g *InProcess) Name() string { return "in-process" }

// Run sends spec's requests from spec.Connections goroutines, each with
// one request and response object reused; a transport error or another
// status than WantStatus is a failure. It keeps one latency sample per
// request, up to maxSamples.
func (g *InProcess) Run(ctx context.Context, spec Spec) (Result, error) {
	if err := spec.check(); err != nil {
		return Result{}, err
	}
	if spec.MaxRequests <= 0 {
		spec.MaxRequests = 50_000_000
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Duration)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var (
		counter  atomic.Int64
		failures atomic.Int64
		mu       sync.Mutex
		samples  = make([]time.Duration, 0, min(spec.MaxRequests, maxSamples, 1<<20))
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range spec.Connections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			local := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				i := int(counter.Add(1)) - 1
				if i >= spec.MaxRequests {
					break
				}
				rs := spec.Requests[i%len(spec.Requests)]
				req.Reset()
				req.SetRequestURI(rs.URL)
				for h := 0; h+1 < len(rs.Headers); h += 2 {
					req.Header.Set(rs.Headers[h], rs.Headers[h+1])
				}
				t0 := time.Now()
				if err := g.client.DoDeadline(req, resp, deadline); err != nil {
					if ctx.Err() == nil && time.Now().Before(deadline) {
						failures.Add(1)
					}
					continue
				}
				local = append(local, time.Since(t0))
				if resp.StatusCode() != spec.WantStatus {
					failures.Add(1)
				}
			}
			mu.Lock()
			if room := maxSamples - len(samples); room > 0 {
				samples = append(samples, local[:min(room, len(local))]...)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := Result{Requests: len(samples), Failures: int(failures.Load()), Elapsed: time.Since(start), Latency: samples}
	r.P50, r.P99 = Percentile(samples, 50), Percentile(samples, 99)
	return r, nil
}
