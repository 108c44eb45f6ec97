package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// testServer runs a Server on a loopback port and returns its base URL and
// the log it writes.
func testServer(t *testing.T, cfg Config) (string, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	cfg.Logger = slog.New(slog.NewJSONHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := NewServer(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String(), &logs
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

type errorJSON struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	RequestID string `json:"request_id"`
}

func do(t *testing.T, method, url string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func decodeError(t *testing.T, b []byte) errorJSON {
	t.Helper()
	var e errorJSON
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, b)
	}
	if e.Error.Code == "" || e.Error.Message == "" || e.RequestID == "" {
		t.Fatalf("error body lacks code, message or request_id: %s", b)
	}
	return e
}

func TestReadyzFollowsDependencies(t *testing.T) {
	var pgDown, vaultDown atomic.Bool
	check := func(down *atomic.Bool, msg string) func(context.Context) error {
		return func(context.Context) error {
			if down.Load() {
				return credvault.Errorf(credvault.EUNAVAILABLE, "%s", msg)
			}
			return nil
		}
	}
	base, _ := testServer(t, Config{Readiness: []ReadinessCheck{
		{Name: "postgres", Check: check(&pgDown, "postgres is not answering")},
		{Name: "vault", Check: check(&vaultDown, "vault is sealed")},
	}})

	steps := []struct {
		pg, vault  bool
		wantStatus int
		wantNamed  []string
	}{
		{false, false, 200, nil},
		{true, false, 503, []string{"postgres"}},
		{true, true, 503, []string{"postgres", "vault"}},
		{false, true, 503, []string{"vault"}},
		{false, false, 200, nil},
	}
	for i, st := range steps {
		pgDown.Store(st.pg)
		vaultDown.Store(st.vault)
		resp, b := do(t, "GET", base+"/readyz", nil, nil)
		if resp.StatusCode != st.wantStatus {
			t.Fatalf("step %d: status %d, want %d: %s", i, resp.StatusCode, st.wantStatus, b)
		}
		if st.wantStatus == 200 {
			continue
		}
		e := decodeError(t, b)
		for _, name := range st.wantNamed {
			if !strings.Contains(e.Error.Message, name) {
				t.Errorf("step %d: message %q does not name %s", i, e.Error.Message, name)
			}
		}
		if st.pg != st.vault && strings.Contains(e.Error.Message, map[bool]string{true: "vault", false: "postgres"}[st.pg]) {
			t.Errorf("step %d: message %q names a healthy dependency", i, e.Error.Message)
		}
	}
}

func TestHealthz(t *testing.T) {
	base, _ := testServer(t, Config{})
	for _, path := range []string{"/livez", "/healthz"} {
		resp, b := do(t, "GET", base+path, nil, nil)
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"ok"`) {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
}

// TestReadyzDegradedAndStrict: a degradable dependency that is down keeps
// /readyz at 200 with it listed in "degraded" (before, any dependency down
// was 503 and took every instance out of the load balancer); a check the
// instance cannot serve without is 503 with Retry-After; ?strict=1 is 503
// for any of them; a bad strict value is 400 naming the parameter.
func TestReadyzDegradedAndStrict(t *testing.T) {
	var redisDown, stale atomic.Bool
	check := func(down *atomic.Bool) func(context.Context) error {
		return func(context.Context) error {
			if down.Load() {
				return credvault.Errorf(credvault.EUNAVAILABLE, "down")
			}
			return nil
		}
	}
	base, _ := testServer(t, Config{Readiness: []ReadinessCheck{
		{Name: "key_state", Check: check(&stale)},
		{Name: "redis", Check: check(&redisDown), Degradable: true},
	}})
	type body struct {
		Status   string   `json:"status"`
		Degraded []string `json:"degraded"`
	}
	get := func(path string) (int, body, http.Header) {
		resp, b := do(t, "GET", base+path, nil, nil)
		var out body
		_ = json.Unmarshal(b, &out)
		return resp.StatusCode, out, resp.Header
	}
	if code, b, _ := get("/readyz"); code != 200 || b.Status != "ready" || len(b.Degraded) != 0 {
		t.Fatalf("all up: %d %+v", code, b)
	}
	redisDown.Store(true)
	if code, b, _ := get("/readyz"); code != 200 || b.Status != "degraded" || strings.Join(b.Degraded, ",") != "redis" {
		t.Fatalf("redis down: %d %+v, want 200 degraded [redis]", code, b)
	}
	if code, b, h := get("/readyz?strict=1"); code != 503 || h.Get("Retry-After") == "" || strings.Join(b.Degraded, ",") != "redis" {
		t.Fatalf("redis down, strict: %d %+v Retry-After %q, want 503 with Retry-After", code, b, h.Get("Retry-After"))
	}
	redisDown.Store(false)
	stale.Store(true)
	if code, b, h := get("/readyz"); code != 503 || b.Status != "unavailable" || h.Get("Retry-After") == "" {
		t.Fatalf("caches stale: %d %+v, want 503", code, b)
	}
	stale.Store(false)
	if code, _, _ := get("/readyz?strict=true"); code != 200 {
		t.Fatalf("all up, strict: %d", code)
	}
	resp, b := do(t, "GET", base+"/readyz?strict=yes", nil, nil)
	if resp.StatusCode != 400 || !strings.Contains(string(b), `\"strict\"`) {
		t.Fatalf("strict=yes: %d %s, want 400 naming strict", resp.StatusCode, b)
	}
}

func TestErrorShapeAndRequestID(t *testing.T) {
	base, _ := testServer(t, Config{testRoutes: func(r fiber.Router) {
		r.Get("/test/forbidden", func(c *fiber.Ctx) error {
			return &credvault.Error{Code: credvault.EFORBIDDEN, Reason: "egress_denied", Message: "host not allowed"}
		})
		r.Get("/test/conflict", func(c *fiber.Ctx) error {
			return credvault.Errorf(credvault.ECONFLICT, "in use")
		})
	}})
	cases := []struct {
		path, wantCode string
		wantStatus     int
	}{
		{"/test/forbidden", "egress_denied", 403},
		{"/test/conflict", "conflict", 409},
		{"/nope", "not_found", 404},
	}
	for _, tc := range cases {
		resp, b := do(t, "GET", base+tc.path, nil, map[string]string{"X-Request-Id": "trace-abc.1"})
		if resp.StatusCode != tc.wantStatus {
			t.Errorf("%s: status %d, want %d", tc.path, resp.StatusCode, tc.wantStatus)
		}
		e := decodeError(t, b)
		if e.Error.Code != tc.wantCode {
			t.Errorf("%s: code %q, want %q", tc.path, e.Error.Code, tc.wantCode)
		}
		if e.RequestID != "trace-abc.1" || resp.Header.Get("X-Request-Id") != "trace-abc.1" {
			t.Errorf("%s: request id %q / header %q, want the caller's", tc.path, e.RequestID, resp.Header.Get("X-Request-Id"))
		}
	}
	// An id with unsafe characters is replaced, not echoed.
	resp, b := do(t, "GET", base+"/nope", nil, map[string]string{"X-Request-Id": "bad id\"<x>"})
	e := decodeError(t, b)
	if strings.ContainsAny(e.RequestID, " \"<>") || resp.Header.Get("X-Request-Id") != e.RequestID {
		t.Errorf("unsafe request id echoed: %q", e.RequestID)
	}
}

func TestInternalErrorsHideTheirCause(t *testing.T) {
	const planted = "sk_live_PLANTEDsecretVALUE123"
	base, logs := testServer(t, Config{testRoutes: func(r fiber.Router) {
		r.Get("/test/boom", func(c *fiber.Ctx) error {
			return errors.New("driver said: " + credvault.NewSecret(planted).String())
		})
		r.Get("/test/panic", func(c *fiber.Ctx) error { panic("oops " + planted[:3]) })
	}})
	for _, p := range []string{"/test/boom", "/test/panic"} {
		resp, b := do(t, "GET", base+p, nil, nil)
		if resp.StatusCode != 500 {
			t.Fatalf("%s: status %d, want 500", p, resp.StatusCode)
		}
		e := decodeError(t, b)
		if e.Error.Code != "internal" || e.Error.Message != "internal error" {
			t.Errorf("%s: body %s, want a generic internal error", p, b)
		}
	}
	if strings.Contains(logs.String(), planted) {
		t.Fatalf("log holds the planted secret")
	}
}

func TestBodyLimit(t *testing.T) {
	var reached atomic.Int32
	base, _ := testServer(t, Config{BodyLimit: 1024, testRoutes: func(r fiber.Router) {
		r.Post("/test/echo", func(c *fiber.Ctx) error { reached.Add(1); return c.SendStatus(204) })
	}})
	resp, b := do(t, "POST", base+"/test/echo", strings.NewReader(strings.Repeat("x", 4096)), map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != 413 {
		t.Fatalf("status %d, want 413: %s", resp.StatusCode, b)
	}
	if e := decodeError(t, b); e.Error.Code != "body_too_large" {
		t.Errorf("code %q, want body_too_large", e.Error.Code)
	}
	if reached.Load() != 0 {
		t.Errorf("handler ran for an oversized body")
	}
}

type createThing struct {
	Name  string   `json:"name" validate:"required,max=20"`
	Kind  string   `json:"kind" validate:"required,oneof=a b"`
	Count int      `json:"count"`
	Tags  []string `json:"tags"`
}

func TestDecodeBodyRejectsBadInput(t *testing.T) {
	var stored atomic.Int32
	base, _ := testServer(t, Config{testRoutes: func(r fiber.Router) {
		r.Post("/test/things", func(c *fiber.Ctx) error {
			var in createThing
			if err := decodeBody(c, &in); err != nil {
				return err
			}
			stored.Add(1)
			return c.Status(201).JSON(in)
		})
	}})
	cases := []struct {
		name, body, ctype, wantMsg string
	}{
		{"empty", ``, "application/json", "empty"},
		{"not json", `{name:`, "application/json", "not valid JSON"},
		{"unknown field", `{"name":"a","kind":"a","colour":"red"}`, "application/json", `unknown field "colour"`},
		{"missing required", `{"kind":"a"}`, "application/json", `field "name" is required`},
		{"too long", `{"name":"` + strings.Repeat("n", 21) + `","kind":"a"}`, "application/json", `field "name" must be at most 20`},
		{"bad enum", `{"name":"a","kind":"z"}`, "application/json", `field "kind" must be one of: a b`},
		{"wrong type", `{"name":"a","kind":"a","count":"3"}`, "application/json", `field "count" must be an integer`},
		{"two objects", `{"name":"a","kind":"a"}{"name":"b","kind":"a"}`, "application/json", "single JSON object"},
		{"array", `[1]`, "application/json", "must be an object"},
		{"wrong content type", `{"name":"a","kind":"a"}`, "text/plain", "Content-Type"},
		{"invalid UTF-8 in a string", "{\"name\":\"a\xff\",\"kind\":\"a\"}", "application/json", "not valid UTF-8 (at byte 10)"},
		{"invalid UTF-8 in a key", "{\"name\":\"a\",\"kind\xc3\":\"a\"}", "application/json", "not valid UTF-8"},
		{"lone high surrogate", `{"name":"a\ud800","kind":"a"}`, "application/json", "surrogate"},
		{"lone low surrogate", `{"name":"a\uDC00x","kind":"a"}`, "application/json", "surrogate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := do(t, "POST", base+"/test/things", strings.NewReader(tc.body), map[string]string{"Content-Type": tc.ctype})
			if resp.StatusCode != 400 {
				t.Fatalf("status %d, want 400: %s", resp.StatusCode, b)
			}
			e := decodeError(t, b)
			if e.Error.Code != "invalid_request" || !strings.Contains(e.Error.Message, tc.wantMsg) {
				t.Errorf("got %s %q, want invalid_request containing %q", e.Error.Code, e.Error.Message, tc.wantMsg)
			}
		})
	}
	if n := stored.Load(); n != 0 {
		t.Fatalf("%d bad bodies reached the store", n)
	}
	resp, b := do(t, "POST", base+"/test/things", strings.NewReader(`{"name":"ok \ud83d\ude00\\ud800","kind":"b"}`), map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != 201 || stored.Load() != 1 {
		t.Fatalf("valid body: status %d (%s), stored %d", resp.StatusCode, b, stored.Load())
	}
}

func TestMetricsUseRouteTemplates(t *testing.T) {
	base, _ := testServer(t, Config{testRoutes: func(r fiber.Router) {
		r.Get("/test/items/:id", func(c *fiber.Ctx) error { return c.SendStatus(204) })
	}})
	do(t, "GET", base+"/test/items/item-4f1d2c", nil, nil)
	do(t, "GET", base+"/v1/unknown/raw-path-77a", nil, nil)
	_, b := do(t, "GET", base+"/metrics", nil, nil)
	m := string(b)
	for _, want := range []string{
		`credvault_http_requests_total{method="GET",route="/test/items/:id",status="204"} 1`,
		`credvault_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`credvault_http_request_duration_seconds_bucket{method="GET",route="/test/items/:id"`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, raw := range []string{"item-4f1d2c", "raw-path-77a"} {
		if strings.Contains(m, raw) {
			t.Errorf("metrics hold the raw path segment %q", raw)
		}
	}
}

func TestShutdownDrainsInFlightRequests(t *testing.T) {
	started := make(chan struct{})
	var logs bytes.Buffer
	s := NewServer(Config{
		Logger: slog.New(slog.NewJSONHandler(&syncWriter{w: &logs}, nil)),
		testRoutes: func(r fiber.Router) {
			r.Get("/test/slow", func(c *fiber.Ctx) error {
				close(started)
				time.Sleep(300 * time.Millisecond)
				return c.SendString("finished")
			})
		},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/test/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- result{status: resp.StatusCode, body: string(b)}
	}()
	<-started
	cancel() // SIGTERM arrives while the request is in flight
	r := <-got
	if r.err != nil || r.status != 200 || r.body != "finished" {
		t.Fatalf("in-flight request: %+v, want 200 finished", r)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Fatalf("server still accepts requests after shutdown")
	}
}

// TestServeStopsWhenCanceledBeforeServing: a context canceled before the
// server has begun accepting (a stop right after start, on a busy machine)
// still ends Serve. Fiber's shutdown finds no listener to close then, and
// the listener, served afterwards, kept Serve waiting for ever ("run did
// not stop within 60s after cancel").
func TestServeStopsWhenCanceledBeforeServing(t *testing.T) {
	for i := range 20 {
		s := NewServer(Config{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx, ln) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: Serve: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			ln.Close()
			t.Fatalf("run %d: Serve did not return within 10 s of a cancel that came before serving", i)
		}
	}
}
