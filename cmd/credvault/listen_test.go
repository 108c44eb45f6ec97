package main

import (
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
		inst := newCluster(t, map[string]string{"CREDVAULT_ADDR": addr}).start()
		if want := "http://" + addr; inst.url != want {
			t.Fatalf("URL %s, want %s", inst.url, want)
		}
		healthy(t, inst.url)
	})

	t.Run("listener handed over by dev", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		inst := newCluster(t, nil).startWith(startOptions{ln: ln})
		if want := "http://" + ln.Addr().String(); inst.url != want {
			t.Fatalf("URL %s, want the handed-over listener %s", inst.url, want)
		}
		healthy(t, inst.url)
	})
}
