package injector

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkDirectTransport sets the direct transport beside net/http's
// Transport on the same call as BenchmarkUpstreamClients (keep-alive GET
// with a bearer header, 64 in flight, upstream in another process), each
// alone, without Client.Do around it; cpu-µs/op is this process's CPU per
// call, from /proc.
func BenchmarkDirectTransport(b *testing.B) {
	up := processUpstream(b)
	defer up.Stop()
	url := "http://" + up.HTTP + "/v1/balance"
	client := NewClient(ClientOptions{AllowPrivate: true})
	defer client.CloseIdleConnections()
	for _, tc := range []struct {
		name string
		rt   func(*http.Request) (*http.Response, error)
	}{{"net-http", client.transport.RoundTrip}, {"direct", client.direct.RoundTrip}} {
		b.Run(tc.name, func(b *testing.B) {
			runWithCPU(b, func() error {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("Authorization", "Bearer "+testValue)
				resp, err := tc.rt(req)
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return status(resp.StatusCode)
			})
		})
	}
}
