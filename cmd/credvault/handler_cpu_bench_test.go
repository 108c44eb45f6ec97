package main

import (
	"syscall"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// BenchmarkAuthCheckCPU is BenchmarkAuthCheckHandler one request at a
// time, reporting the process's CPU time per request (cpu-ns/op, user and
// system, from getrusage) beside the wall time: on a shared machine the
// wall time also counts the time the benchmark waits for a core.
func BenchmarkAuthCheckCPU(b *testing.B) {
	cl := newCluster(b, map[string]string{"CREDVAULT_LOG_LEVEL": "warn"})
	a := cl.start()
	_, key := cl.bootstrap(a, "bench")
	bare := fiber.New(fiber.Config{DisableStartupMessage: true})
	bare.Get("/ok", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusOK) })
	run := func(b *testing.B, h fasthttp.RequestHandler, path string, withKey bool) {
		var ctx fasthttp.RequestCtx
		b.ReportAllocs()
		start := processCPUNanos(b)
		for b.Loop() {
			ctx.Request.Reset()
			ctx.Response.Reset()
			ctx.Request.SetRequestURI(path)
			ctx.Request.Header.SetMethod("GET")
			if withKey {
				ctx.Request.Header.Set("X-API-Key", key)
			}
			h(&ctx)
			if ctx.Response.StatusCode() != 200 {
				b.Fatalf("status %d", ctx.Response.StatusCode())
			}
		}
		b.ReportMetric(float64(processCPUNanos(b)-start)/float64(b.N), "cpu-ns/op")
	}
	b.Run("bare-route", func(b *testing.B) { run(b, bare.Handler(), "/ok", false) })
	b.Run("auth-check", func(b *testing.B) { run(b, a.s.http.Handler().Handler(), "/v1/auth/check", true) })
}

// processCPUNanos is the CPU time (user and system) the process has used.
func processCPUNanos(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
