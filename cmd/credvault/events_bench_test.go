package main

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkEventStreamOverhead measures what the event stream costs the
// two hot paths, verify-cached (GET /v1/auth/check with a cached key) and
// proxy (GET /v1/proxy/…), on one instance in this one process: the
// event stream's load (eventLoad: a webhook for every event receiving a
// revocation every 100 ms, 50 credentials checked every second, the
// refusal counter) is switched off and on for alternate rounds, many
// times. Each iteration is one pair of rounds, off then on or on then off
// (swapped every iteration, so drift and order cancel), each round a
// fixed number of calls from 8 workers after a settling pause; the
// figures are the medians over the iterations of on/off (wall time of the
// on round over the off one: 1.05 is 5% slower with the stream on).
// Run: go test -run '^$' -bench BenchmarkEventStreamOverhead -benchtime=20x ./cmd/credvault/
func BenchmarkEventStreamOverhead(b *testing.B) {
	cl := newCluster(b, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true", "CREDVAULT_LOG_LEVEL": "warn"})
	// The scan every second, so that a check every second is what runs.
	a := cl.startWith(startOptions{events: eventOptions{healthScan: time.Second}})
	res, owner := cl.bootstrap(a, "bench")
	up := newUpstream(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"balance","available":[{"amount":1000,"currency":"usd"}]}`)
	})
	proxyID := cl.createCredential(a, owner, map[string]any{"name": "bench", "placement": "bearer", "value": "sk_bench_0123456789",
		"base_url": up.URL, "allowed_hosts": []string{up.HostP}})["id"].(string)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	ctx := context.Background()
	load, err := startEventLoad(ctx, a.s, res.OrgID, res.UserID, up.URL,
		func(ctx context.Context) error { return revokeVia(ctx, client, a.url, owner) }, b.Logf)
	if err != nil {
		b.Fatal(err)
	}
	defer load.close()

	const workers, verifyCalls, proxyCalls = 8, 2000, 1000
	round := func(url string, calls int) time.Duration {
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range calls / workers {
					req, _ := http.NewRequest("GET", url, nil)
					req.Header.Set("X-API-Key", owner)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("%s: status %d", url, resp.StatusCode)
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	measure := func(on bool) (verify, proxy time.Duration) {
		if err := load.set(ctx, on); err != nil {
			b.Fatal(err)
		}
		// Let the other state's work drain, or this one's begin: checks
		// come every second, deliveries within a poll.
		time.Sleep(1500 * time.Millisecond)
		return round(a.url+"/v1/auth/check", verifyCalls), round(a.url+"/v1/proxy/"+proxyID+"/v1/balance", proxyCalls)
	}
	measure(false) // warm caches and connections
	countChecks := func() int {
		var n int
		if err := a.s.db.Get(&n, `SELECT count(*) FROM credential_health_checks`); err != nil {
			b.Fatal(err)
		}
		return n
	}
	checksBefore := countChecks()
	var vr, pr []float64
	var vOn, vOff, pOn, pOff time.Duration
	b.ResetTimer()
	for i := range b.N {
		var offV, offP, onV, onP time.Duration
		if i%2 == 0 {
			offV, offP = measure(false)
			onV, onP = measure(true)
		} else {
			onV, onP = measure(true)
			offV, offP = measure(false)
		}
		vr = append(vr, float64(onV)/float64(offV))
		pr = append(pr, float64(onP)/float64(offP))
		vOn, vOff, pOn, pOff = vOn+onV, vOff+offV, pOn+onP, pOff+offP
	}
	b.StopTimer()
	if err := load.set(ctx, false); err != nil {
		b.Fatal(err)
	}
	checks := countChecks() - checksBefore
	b.ReportMetric(median(vr), "verify-on/off")
	b.ReportMetric(median(pr), "proxy-on/off")
	b.ReportMetric(float64(vOff.Nanoseconds())/float64(b.N*verifyCalls), "ns/verify-off")
	b.ReportMetric(float64(vOn.Nanoseconds())/float64(b.N*verifyCalls), "ns/verify-on")
	b.ReportMetric(float64(pOff.Nanoseconds())/float64(b.N*proxyCalls), "ns/proxy-off")
	b.ReportMetric(float64(pOn.Nanoseconds())/float64(b.N*proxyCalls), "ns/proxy-on")
	b.ReportMetric(float64(checks), "checks")
	b.ReportMetric(float64(load.received.Load()), "webhook-requests")
	b.Logf("verify on/off per pair %v; proxy %v", rounded(vr), rounded(pr))
}

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

func rounded(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(int(x*1000+0.5)) / 1000
	}
	return out
}
