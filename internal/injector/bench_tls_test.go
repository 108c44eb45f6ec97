package injector

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"

	"credvault/internal/bench"
	"credvault/internal/credvault"
)

// init serves the bench's upstream with TLS when this test binary is
// re-executed as `bench-upstream --cert C --key K` (BenchmarkTLSUpstream).
// It must run before client_choice_test.go's init, which serves plain
// HTTP only: Go runs a package's init functions in the order of its file
// names, and this file's sorts first.
func init() {
	if len(os.Args) == 6 && os.Args[1] == bench.UpstreamCommand && os.Args[2] == "--cert" && os.Args[4] == "--key" {
		if err := bench.ServeUpstream(context.Background(), os.Args[3], os.Args[5], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// BenchmarkTLSUpstream: the same keep-alive GET with a bearer credential
// as BenchmarkDirectTransport, 64 in flight, to the bench's upstream in
// another process over TLS (a throwaway CA's certificate), by
//   - net-http-h1 / direct-h1: net/http's Transport alone and the direct
//     transport alone, to the listener offering only HTTP/1.1;
//   - net-http-h2: net/http's Transport to the listener offering HTTP/2;
//   - Do-h1 / Do-h2: Client.Do (what the proxy calls) to each.
//
// cpu-µs/op is this process's CPU per call (from /proc): compare ratios.
func BenchmarkTLSUpstream(b *testing.B) {
	ca, err := bench.NewTestCA(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	up, err := bench.StartUpstream(context.Background(), exe, &ca)
	if err != nil {
		b.Skip(err)
	}
	defer up.Stop()
	pem, err := os.ReadFile(ca.CAFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := NewClient(ClientOptions{AllowPrivate: true, RootCAs: pool})
	defer client.CloseIdleConnections()
	h1, h2 := "https://"+up.HTTPS1+"/v1/balance", "https://"+up.HTTPS2+"/v1/balance"
	// call sends GETs to url with rt; bearer adds the credential itself
	// (rt is a bare transport) rather than leaving it to Client.Do.
	call := func(rt func(*http.Request) (*http.Response, error), url string, bearer bool) func() error {
		return func() error {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			if bearer {
				req.Header.Set("Authorization", "Bearer "+testValue)
			}
			resp, err := rt(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return status(resp.StatusCode)
		}
	}
	value := credvault.NewSecret(testValue)
	do := func(host string) func(*http.Request) (*http.Response, error) {
		cred := httpsCred(host)
		return func(req *http.Request) (*http.Response, error) { return client.Do(req, cred, value) }
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"net-http-h1", call(client.transport.RoundTrip, h1, true)},
		{"direct-h1", call(client.direct.RoundTrip, h1, true)},
		{"net-http-h2", call(client.transport.RoundTrip, h2, true)},
		{"Do-h1", call(do(up.HTTPS1), h1, false)},
		{"Do-h2", call(do(up.HTTPS2), h2, false)},
	} {
		b.Run(tc.name, func(b *testing.B) { runWithCPU(b, tc.call) })
	}
}
