package injector

import (
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// BenchmarkProxyPathDo is Client.Do as the proxy calls it: the credential
// and value from the value cache (so that its Memo keeps the prepared
// placement and scrubber, as in production), the request built as
// httpapi's outboundRequest builds it (a relative URL resolved against
// base_url, a few end-to-end headers of the caller's), a keep-alive GET to
// the bench's upstream in another process, 64 in flight. It reports this
// process's CPU per call (cpu-µs/op, from /proc) and allocations; compare
// them as ratios between two builds in one run.
func BenchmarkProxyPathDo(b *testing.B) {
	up := processUpstream(b)
	defer up.Stop()
	client := NewClient(ClientOptions{AllowPrivate: true})
	defer client.CloseIdleConnections()
	vc := credvault.NewValueCache(time.Hour)
	c := credential("bearer", "", "", up.HTTP)
	c.ID = "bench"
	vc.Put(c, credvault.NewSecret(testValue), vc.Generation())
	target, err := url.Parse("http://" + up.HTTP + "/v1/balance")
	if err != nil {
		b.Fatal(err)
	}
	runWithCPU(b, func() error {
		cred, value, ok := vc.Get("bench")
		if !ok {
			b.Fatal("value cache miss")
		}
		req, _ := http.NewRequest(http.MethodGet, "/", http.NoBody)
		u := *target
		req.URL, req.Host = &u, ""
		req.Header["User-Agent"] = []string{"wrk"}
		req.Header["Accept"] = []string{"application/json"}
		return drained(client.Do(req, cred, value))
	})
}

// drained reads resp's body to its end and closes it, and reports err or
// a status other than 200.
func drained(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return status(resp.StatusCode)
}
