package main

import (
	"context"
	"os"
	"syscall"
	"testing"

	"github.com/valyala/fasthttp"

	"credvault/internal/bench"
)

// BenchmarkProxyHandlerCPU is a proxied call as the server handles it
// (authentication, the credential from the value cache, the outbound
// request, Client.Do to an upstream in another process, scrubbing, the
// usage record), through the handler with no client in this process, 32
// calls in flight, reporting this process's CPU time per call: cpu-ns/op (user and
// system) and user-ns/op (user only: credvault's own work, without the
// system calls). Compare them as ratios between two builds in one run.
func BenchmarkProxyHandlerCPU(b *testing.B) {
	cl := newCluster(b, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true", "CREDVAULT_LOG_LEVEL": "warn"})
	a := cl.start()
	_, owner := cl.bootstrap(a, "bench")
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	up, err := bench.StartUpstream(context.Background(), exe, nil)
	if err != nil {
		b.Skip(err)
	}
	defer up.Stop()
	id := cl.createCredential(a, owner, map[string]any{"name": "bench", "placement": "bearer", "value": "sk_bench_0123456789",
		"base_url": "http://" + up.HTTP, "allowed_hosts": []string{up.HTTP}})["id"].(string)
	h := a.s.http.Handler().Handler()
	path := "/v1/proxy/" + id + "/v1/balance"
	call := func(ctx *fasthttp.RequestCtx) {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.ResetUserValues() // as the server does between requests (Fiber keeps the request's context there)
		ctx.Request.SetRequestURI(path)
		ctx.Request.Header.SetMethod("GET")
		ctx.Request.Header.Set("X-API-Key", owner)
		ctx.Request.Header.Set("User-Agent", "wrk")
		ctx.Request.Header.Set("Accept", "application/json")
		h(ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Errorf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	var warm fasthttp.RequestCtx
	for range 100 { // connections, caches and pools warm
		call(&warm)
	}
	b.ReportAllocs()
	b.SetParallelism(16) // 32 calls in flight on two cores: the cores stay busy
	user0, all0 := processCPUUser(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		for pb.Next() {
			call(&ctx)
		}
	})
	b.StopTimer()
	user1, all1 := processCPUUser(b)
	b.ReportMetric(float64(all1-all0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(user1-user0)/float64(b.N), "user-ns/op")
}

// processCPUUser is the CPU time the process has used: user, and user plus
// system.
func processCPUUser(b *testing.B) (user, all int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano(), ru.Utime.Nano() + ru.Stime.Nano()
}
