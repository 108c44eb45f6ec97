package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
)

// TestServiceListensOnce: the service serves on the one listener it opens
// first (or the one dev hands it), never opening a second one on
// CREDVAULT_ADDR. With a fixed port, a second listen fails with "address
// already in use", so `credvault serve` and `make dev` on 127.0.0.1:8080
// could not start; with port 0 it answered on another port than the one
// dev had checked and the first listener leaked.
func TestServiceListensOnce(t *testing.T) {
	cl := newCluster(t, nil)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))

	start := func(t *testing.T, env map[string]string, ln net.Listener) *service {
		t.Helper()
		for k, v := range env {
			cl.env[k] = v
		}
		cfg, err := loadConfig(envOf(cl.env))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		s, err := startService(ctx, cfg, log, startOptions{ln: ln})
		if err != nil {
			cancel()
			t.Fatalf("startService on %s: %v", cfg.Addr, err)
		}
		done := make(chan error, 1)
		go func() { done <- s.serve(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
		return s
	}
	healthy := func(t *testing.T, url string) {
		t.Helper()
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s/healthz: %d", url, resp.StatusCode)
		}
	}

	t.Run("fixed CREDVAULT_ADDR", func(t *testing.T) {
		probe, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := probe.Addr().String()
		probe.Close()
		s := start(t, map[string]string{"CREDVAULT_ADDR": addr}, nil)
		if want := "http://" + addr; s.URL() != want {
			t.Fatalf("URL %s, want %s", s.URL(), want)
		}
		healthy(t, s.URL())
	})

	t.Run("listener handed over by dev", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := start(t, map[string]string{"CREDVAULT_ADDR": "127.0.0.1:0"}, ln)
		if want := "http://" + ln.Addr().String(); s.URL() != want {
			t.Fatalf("URL %s, want the handed-over listener %s", s.URL(), want)
		}
		healthy(t, s.URL())
	})
}
