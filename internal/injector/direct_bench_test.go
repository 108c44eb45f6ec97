package injector

import (
	"context"
	"io"
	"net/http"
	"os"
	"testing"

	"credvault/internal/bench"
)

// BenchmarkDirectTransport sets the direct transport beside net/http's
// Transport on the same call as BenchmarkUpstreamClients (keep-alive GET
// with a bearer header, 64 in flight, upstream in another process), each
// alone, without Client.Do around it; cpu-µs/op is this process's CPU per
// call, from /proc.
func BenchmarkDirectTransport(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	up, err := bench.StartUpstream(context.Background(), exe, nil)
	if err != nil {
		b.Skip(err)
	}
	defer up.Stop()
	url := "http://" + up.HTTP + "/v1/balance"
	client := NewClient(ClientOptions{AllowPrivate: true})
	defer client.CloseIdleConnections()
	for _, tc := range []struct {
		name string
		rt   func(*http.Request) (*http.Response, error)
	}{{"net-http", client.transport.RoundTrip}, {"direct", client.direct.RoundTrip}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(32)
			cpu0, _ := bench.ProcessCPU(os.Getpid(), false)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, url, nil)
					req.Header.Set("Authorization", "Bearer "+testValue)
					resp, err := tc.rt(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err := status(resp.StatusCode); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			cpu1, _ := bench.ProcessCPU(os.Getpid(), false)
			b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
