package main

import (
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// BenchmarkAuthCheckHandler measures the server side of GET /v1/auth/check
// for a cached key, without sockets, next to a bare Fiber route: the ratio
// is what credvault's own code costs per verification.
func BenchmarkAuthCheckHandler(b *testing.B) {
	cl := newCluster(b, map[string]string{"CREDVAULT_LOG_LEVEL": "warn"})
	a := cl.start()
	_, key := cl.bootstrap(a, "bench")
	bare := fiber.New(fiber.Config{DisableStartupMessage: true})
	bare.Get("/ok", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusOK) })

	run := func(b *testing.B, h fasthttp.RequestHandler, path string, withKey bool, nginxShaped ...bool) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var ctx fasthttp.RequestCtx
			for pb.Next() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.SetRequestURI(path)
				ctx.Request.Header.SetMethod("GET")
				if len(nginxShaped) > 0 {
					// What the auth_request recipe sends: HEAD, the scope
					// query, its own Host, the original URI and the
					// client's headers.
					ctx.Request.Header.SetMethod("HEAD")
					ctx.Request.Header.SetHost("credvault")
					ctx.Request.Header.Set("X-Original-URI", "/v1/balance?direct=1")
					ctx.Request.Header.Set("User-Agent", "fasthttp")
				}
				if withKey {
					ctx.Request.Header.Set("X-API-Key", key)
				}
				h(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("status %d", ctx.Response.StatusCode())
				}
			}
		})
	}
	b.Run("bare-route", func(b *testing.B) { run(b, bare.Handler(), "/ok", false) })
	b.Run("auth-check", func(b *testing.B) { run(b, a.s.http.Handler().Handler(), "/v1/auth/check", true) })
	b.Run("auth-check-nginx", func(b *testing.B) { run(b, a.s.http.Handler().Handler(), "/v1/auth/check?scope=", true, true) })
}
