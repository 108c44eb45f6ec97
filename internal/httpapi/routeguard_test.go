package httpapi

import (
	"testing"

	"github.com/gofiber/fiber/v2"
)

func TestRouteTableLookup(t *testing.T) {
	app := fiber.New()
	h := func(c *fiber.Ctx) error { return nil }
	app.Get("/healthz", h)
	app.Get("/v1/users/:id", h)
	app.Patch("/v1/users/:id", h)
	app.Post("/v1/users/:id/roll", h)
	app.Add("PUT", "/v1/proxy/:id/*", h)
	app.Use(h) // middleware is not a route
	tbl := newRouteTable(app)
	cases := []struct {
		method, path   string
		known, allowed bool
		allow          string
	}{
		{"GET", "/healthz", true, true, ""},
		{"HEAD", "/healthz", true, true, ""},
		{"POST", "/healthz", true, false, "GET, HEAD"},
		{"GET", "/HealthZ/", true, true, ""},
		{"GET", "/v1/users/abc", true, true, ""},
		{"DELETE", "/v1/users/abc", true, false, "GET, HEAD, PATCH"},
		{"GET", "/v1/users", false, false, ""},
		{"GET", "/v1/users/", false, false, ""},
		{"GET", "/v1/users/abc/roll", true, false, "POST"},
		{"GET", "/v1/users/abc/roll/x", false, false, ""},
		{"PUT", "/v1/proxy/abc", true, true, ""},
		{"PUT", "/v1/proxy/abc/a/b/c", true, true, ""},
		{"GET", "/v1/proxy/abc/a", true, false, "PUT"},
		{"GET", "/", false, false, ""},
		{"GET", "/nothing", false, false, ""},
	}
	for _, tc := range cases {
		route, known, allow := tbl.lookup(tc.method, tc.path)
		allowed := route != nil
		if known != tc.known || allowed != tc.allowed || allow != tc.allow {
			t.Errorf("%s %s: known %v allowed %v allow %q, want %v %v %q", tc.method, tc.path, known, allowed, allow, tc.known, tc.allowed, tc.allow)
		}
	}
	for path, want := range map[string]string{"/v1/users/abc": "/v1/users/:id", "/V1/Users/abc/": "/v1/users/:id", "/v1/users/abc/roll": "/v1/users/:id/roll"} {
		method := "GET"
		if want == "/v1/users/:id/roll" {
			method = "POST"
		}
		if r, _, _ := tbl.lookup(method, path); r == nil || r.path != want {
			t.Errorf("%s %s: template %v, want %s", method, path, r, want)
		}
	}
	if r, _, _ := tbl.lookup("PUT", "/v1/proxy/abc/a/b"); r == nil || r.path != "/v1/proxy/:id/*" {
		t.Errorf("proxy path: template %v", r)
	}
	if n := testing.AllocsPerRun(100, func() { tbl.lookup("GET", "/v1/users/abc") }); n != 0 {
		t.Errorf("lookup of a known route allocates %v times", n)
	}
}
