package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkEventStreamOverhead measures what the event stream costs the
// two hot paths, verify-cached (GET /v1/auth/check with a cached key) and
// proxy (GET /v1/proxy/…), on one instance in this one process. The
// traffic that causes events (a key created and revoked every 100 ms)
// runs throughout; the event stream (eventLoad: a webhook for every event
// type, and health checks) is switched off and on for alternate rounds,
// many times. Each sub-benchmark is one rate of health checks while on,
// in checks per second (checks=1 is 60 credentials on the shortest
// schedule, a minute, or 900 on 15 minutes): 0 (webhooks only), 5 and 50.
// Each iteration is one pair of rounds, off then on or on then off
// (swapped every iteration, so drift and order cancel), each round a
// fixed number of calls from 8 workers after a settling pause; the
// figures are the medians over the iterations of on/off (wall time of the
// on round over the off one: 1.05 is 5% slower with the stream on), and
// the background work's CPU (the process's, from getrusage) per second
// of each state.
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

	const workers, verifyCalls, proxyCalls = 8, 16000, 8000
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
	countChecks := func() int {
		var n int
		if err := a.s.db.Get(&n, `SELECT count(*) FROM credential_health_checks`); err != nil {
			b.Fatal(err)
		}
		return n
	}
	// hot is one round of one hot path: its wall time, and the process's
	// CPU in it less the background's (the state's idle rate times the
	// wall time), per call.
	type hot struct {
		wall time.Duration
		cpu  float64 // ns per call, the background taken out
	}
	timed := func(url string, calls int, idleRate float64) hot {
		c0 := processCPU()
		w := round(url, calls)
		cpu := float64(processCPU()-c0) - idleRate*float64(w)
		return hot{wall: w, cpu: cpu / float64(calls)}
	}
	for _, rate := range []int{0, 5, benchHealthChecks} {
		b.Run(fmt.Sprintf("checks=%d", rate), func(b *testing.B) {
			// idle is the process's CPU over the second half of the
			// settling pause, when only the background work runs: per
			// state, its share of a core.
			var idle, idleCPU [2]time.Duration
			measure := func(on bool) (verify, proxy hot) {
				if err := load.set(ctx, on, rate); err != nil {
					b.Fatal(err)
				}
				// Let the other state's work drain, or this one's begin:
				// checks come every second, deliveries within a poll.
				time.Sleep(time.Second)
				cpu0, t0 := processCPU(), time.Now()
				time.Sleep(time.Second)
				i := 0
				if on {
					i = 1
				}
				c, w := processCPU()-cpu0, time.Since(t0)
				idleCPU[i] += c
				idle[i] += w
				rate := float64(c) / float64(w)
				return timed(a.url+"/v1/auth/check", verifyCalls, rate), timed(a.url+"/v1/proxy/"+proxyID+"/v1/balance", proxyCalls, rate)
			}
			measure(false) // warm caches and connections
			checksBefore, hooksBefore, revokedBefore := countChecks(), load.received.Load(), load.revoked.Load()
			var vr, pr, vc, pc []float64
			var vOn, vOff, pOn, pOff time.Duration
			idle, idleCPU = [2]time.Duration{}, [2]time.Duration{}
			b.ResetTimer()
			for i := range b.N {
				var offV, offP, onV, onP hot
				if i%2 == 0 {
					offV, offP = measure(false)
					onV, onP = measure(true)
				} else {
					onV, onP = measure(true)
					offV, offP = measure(false)
				}
				vr = append(vr, float64(onV.wall)/float64(offV.wall))
				pr = append(pr, float64(onP.wall)/float64(offP.wall))
				vc = append(vc, onV.cpu/offV.cpu)
				pc = append(pc, onP.cpu/offP.cpu)
				vOn, vOff, pOn, pOff = vOn+onV.wall, vOff+offV.wall, pOn+onP.wall, pOff+offP.wall
			}
			b.StopTimer()
			if err := load.set(ctx, false, 0); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(median(vr), "verify-on/off")
			b.ReportMetric(median(pr), "proxy-on/off")
			b.ReportMetric(median(vc), "verify-cpu-on/off")
			b.ReportMetric(median(pc), "proxy-cpu-on/off")
			b.ReportMetric(float64(vOff.Nanoseconds())/float64(b.N*verifyCalls), "ns/verify-off")
			b.ReportMetric(float64(vOn.Nanoseconds())/float64(b.N*verifyCalls), "ns/verify-on")
			b.ReportMetric(float64(pOff.Nanoseconds())/float64(b.N*proxyCalls), "ns/proxy-off")
			b.ReportMetric(float64(pOn.Nanoseconds())/float64(b.N*proxyCalls), "ns/proxy-on")
			b.ReportMetric(float64(countChecks()-checksBefore), "checks")
			b.ReportMetric(float64(load.received.Load()-hooksBefore), "webhook-requests")
			b.ReportMetric(float64(load.revoked.Load()-revokedBefore), "revocations")
			b.ReportMetric(idleCPU[0].Seconds()/idle[0].Seconds(), "idle-cores-off")
			b.ReportMetric(idleCPU[1].Seconds()/idle[1].Seconds(), "idle-cores-on")
			b.Logf("checks=%d: wall on/off per pair: verify %v, proxy %v; CPU per call on/off (background taken out): verify %v, proxy %v",
				rate, rounded(vr), rounded(pr), rounded(vc), rounded(pc))
		})
	}
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rounded(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(int(x*1000+0.5)) / 1000
	}
	return out
}
