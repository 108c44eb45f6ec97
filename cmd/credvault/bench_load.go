package main

import (
	"context"
	"net/http"

	"github.com/valyala/fasthttp"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is what one bounded load run measured.
type loadResult struct {
	requests int
	failures int
	elapsed  time.Duration
	latency  []time.Duration // one sample per request, up to maxSamples
}

const maxSamples = 2_000_000

func (r loadResult) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests) / r.elapsed.Seconds()
}

// percentile returns the p-th percentile (0..100) of the samples, in ms.
func percentile(samples []time.Duration, p float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return float64(s[i].Microseconds()) / 1000
}

// loadSpec is one load run: concurrency workers send requests made by
// next until the duration is up or maxRequests have been sent, whichever
// comes first (every run is bounded in count and time).
type loadSpec struct {
	concurrency int
	duration    time.Duration
	maxRequests int
	next        func(i int) reqSpec
	ok          func(status int) bool
}

// reqSpec is one GET the load generator sends: a URL and header pairs.
type reqSpec struct {
	url     string
	headers []string
}

// runLoad drives spec and measures throughput and latency. The load
// generator is fasthttp's client: it parses responses without allocating,
// so the generator, which shares the machine, skews the comparison between
// a scenario and its baseline as little as it can.
func runLoad(ctx context.Context, client *fasthttp.Client, spec loadSpec) loadResult {
	ctx, cancel := context.WithTimeout(ctx, spec.duration)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var (
		counter  atomic.Int64
		failures atomic.Int64
		mu       sync.Mutex
		samples  = make([]time.Duration, 0, min(spec.maxRequests, maxSamples))
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range spec.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			local := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				i := int(counter.Add(1)) - 1
				if i >= spec.maxRequests {
					break
				}
				rs := spec.next(i)
				req.Reset()
				req.SetRequestURI(rs.url)
				for h := 0; h+1 < len(rs.headers); h += 2 {
					req.Header.Set(rs.headers[h], rs.headers[h+1])
				}
				t0 := time.Now()
				err := client.DoDeadline(req, resp, deadline)
				if err != nil {
					if ctx.Err() == nil && time.Now().Before(deadline) {
						failures.Add(1)
					}
					continue
				}
				local = append(local, time.Since(t0))
				if !spec.ok(resp.StatusCode()) {
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
	elapsed := time.Since(start)
	return loadResult{requests: len(samples), failures: int(failures.Load()), elapsed: elapsed, latency: samples}
}

// loadClient is the load generator, shared by every run so that runs
// reuse warm connections instead of measuring their setup.
func loadClient(concurrency int) *fasthttp.Client {
	return &fasthttp.Client{MaxConnsPerHost: concurrency * 2, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
}

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
