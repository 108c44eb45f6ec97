package injector

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"credvault/internal/bench"
	"credvault/internal/credvault"
)

// init lets this test binary be the upstream process of
// BenchmarkUpstreamClients (bench.StartUpstream re-executes it).
func init() {
	if len(os.Args) > 1 && os.Args[1] == bench.UpstreamCommand {
		if err := bench.ServeUpstream(context.Background(), "", "", os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// BenchmarkUpstreamClients is the measurement behind the choice of the
// proxy's upstream client (BENCHMARKS.md, "The proxy's client"): the same
// keep-alive GET with a bearer credential to an upstream in another
// process (so that only the client's work is in this one), 64 calls in
// flight, by
//   - net-http: the injector's tuned http.Transport alone;
//   - injector-Do: Client.Do, what the proxy calls (placement, policy,
//     scrubbing of headers and body, timeouts, the size cap);
//   - fasthttp-HostClient: fasthttp's HostClient, with no credvault rule
//     applied at all (the floor a port to it could approach).
//
// It reports this process's CPU per call (cpu-µs/op, from /proc) besides
// ns/op and allocations; compare them as ratios.
func BenchmarkUpstreamClients(b *testing.B) {
	up := processUpstream(b)
	defer up.Stop()
	url := "http://" + up.HTTP + "/v1/balance"
	run := runWithCPU
	client := NewClient(ClientOptions{AllowPrivate: true})
	defer client.CloseIdleConnections()
	b.Run("net-http", func(b *testing.B) {
		run(b, func() error {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer "+testValue)
			resp, err := client.transport.RoundTrip(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return status(resp.StatusCode)
		})
	})
	cred := credential("bearer", "", "", up.HTTP)
	value := credvault.NewSecret(testValue)
	b.Run("injector-Do", func(b *testing.B) {
		run(b, func() error { return getThrough(client, url, cred, value) })
	})
	hc := &fasthttp.HostClient{Addr: up.HTTP, MaxConns: 256, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	b.Run("fasthttp-HostClient", func(b *testing.B) {
		run(b, func() error {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(url)
			req.Header.Set("Authorization", "Bearer "+testValue)
			if err := hc.Do(req, resp); err != nil {
				return err
			}
			return status(resp.StatusCode())
		})
	})
}

// processUpstream starts the bench's upstream in another process (this test
// binary re-executed), or skips b.
func processUpstream(b testing.TB) *bench.Upstream {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	up, err := bench.StartUpstream(context.Background(), exe, nil)
	if err != nil {
		b.Skip(err)
	}
	return up
}

// runWithCPU runs call b.N times, 64 in flight on two cores, and reports
// this process's CPU per call (cpu-µs/op, from /proc) and allocations.
func runWithCPU(b *testing.B, call func() error) {
	b.ReportAllocs()
	b.SetParallelism(32)
	cpu0, _ := bench.ProcessCPU(os.Getpid(), false)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := call(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	cpu1, _ := bench.ProcessCPU(os.Getpid(), false)
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// getThrough is one GET of url through client.Do with the credential,
// its body read to the end: the call both client benchmarks time.
func getThrough(client *Client, url string, cred *credvault.Credential, value credvault.Secret) error {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := client.Do(req, cred, value)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return status(resp.StatusCode)
}

func status(code int) error {
	if code != http.StatusOK {
		return fmt.Errorf("status %d", code)
	}
	return nil
}
