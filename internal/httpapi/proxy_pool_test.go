package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// TestProxyHeaderPool checks the lifetime of the pooled header map of a
// proxied call's request (proxyHeaders): forward sees the caller's
// forwardable headers, and none of an earlier call's; once proxyVia is
// done — with the response returned or with an error — the request handed
// to forward (which the response's Request also names) no longer reaches
// the map, and the map is empty.
func TestProxyHeaderPool(t *testing.T) {
	var (
		mu     sync.Mutex
		seen   []http.Header // a copy of each call's header, as forward saw it
		leaked []string      // what was still reachable after proxyVia
	)
	fail := errors.New("upstream down")
	forward := func(_ context.Context, _ string, req *http.Request, _ string, _ credvault.UseMeta) (*http.Response, error) {
		mu.Lock()
		seen = append(seen, req.Header.Clone())
		mu.Unlock()
		if req.Header.Get("X-Fail") != "" {
			return nil, fail
		}
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/plain"}},
			Body: io.NopCloser(strings.NewReader("ok")), Request: req}, nil
	}
	var lastReq *http.Request
	var lastMap http.Header
	capture := func(ctx context.Context, id string, req *http.Request, target string, meta credvault.UseMeta) (*http.Response, error) {
		lastReq, lastMap = req, req.Header
		return forward(ctx, id, req, target, meta)
	}
	s := &Server{}
	base, _ := testServer(t, Config{testRoutes: func(r fiber.Router) {
		r.All("/pooltest/:id/*", func(c *fiber.Ctx) error {
			err := s.proxyVia(c, capture)
			// Still in the handler's goroutine, after the release.
			mu.Lock()
			defer mu.Unlock()
			if lastReq.Header != nil {
				leaked = append(leaked, "the request's Header is still set")
			}
			if len(lastMap) != 0 {
				leaked = append(leaked, "the released map still holds headers")
			}
			return err
		})
	}})
	calls := []map[string]string{
		{"X-One": "1", "Accept": "application/json"},
		{"X-Two": "2"},
		{"X-Three": "3", "X-Fail": "yes"},
		{"X-Four": "4"},
	}
	for i, hdr := range calls {
		resp, body := do(t, "GET", base+"/pooltest/abc/v1/things", nil, hdr)
		want := 200
		if hdr["X-Fail"] != "" {
			want = 500
		}
		if resp.StatusCode != want {
			t.Fatalf("call %d: status %d, want %d: %s", i, resp.StatusCode, want, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) > 0 {
		t.Errorf("after proxyVia: %v", leaked)
	}
	if len(seen) != len(calls) {
		t.Fatalf("forward ran %d times, want %d", len(seen), len(calls))
	}
	for i, hdr := range calls {
		for k, v := range hdr {
			if got := seen[i].Get(k); got != v {
				t.Errorf("call %d: header %s = %q, want %q", i, k, got, v)
			}
		}
		for j, other := range calls {
			if j == i {
				continue
			}
			for k := range other {
				if _, mine := hdr[k]; !mine && seen[i].Get(k) != "" {
					t.Errorf("call %d: holds header %s of call %d", i, k, j)
				}
			}
		}
	}
}
