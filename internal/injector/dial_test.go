package injector

import (
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"credvault/internal/credvault"
)

// hostsFileMapsLocalhost reports whether /etc/hosts answers "localhost", so
// that resolving it never sends a DNS query off the machine.
func hostsFileMapsLocalhost() bool {
	b, err := os.ReadFile("/etc/hosts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		for _, name := range f[min(1, len(f)):] {
			if name == "localhost" {
				return true
			}
		}
	}
	return false
}

// TestDialTimeRefusal runs with the address check on (AllowPrivate false)
// against loopback upstreams: every loopback form passes allowed_hosts, so
// only the dial-time check stands between the credential and the upstream,
// which must see no connection at all.
func TestDialTimeRefusal(t *testing.T) {
	up4 := newUpstream(t, nil)
	_, port, _ := net.SplitHostPort(up4.host())

	type target struct {
		name string
		host string
		up   *upstream
	}
	targets := []target{
		{"IPv4 loopback", "127.0.0.1:" + port, up4},
		{"IPv4-mapped loopback", "[::ffff:127.0.0.1]:" + port, up4},
	}
	if hostsFileMapsLocalhost() {
		targets = append(targets, target{"localhost", "localhost:" + port, up4})
	} else {
		t.Log("localhost case skipped: /etc/hosts does not map localhost, and a DNS query could leave the machine")
	}
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		up6 := startUpstream(t, nil, ln, false)
		targets = append(targets, target{"IPv6 loopback", up6.host(), up6})
	} else {
		t.Logf("IPv6 loopback case skipped: %v", err)
	}

	client := NewClient(ClientOptions{})
	defer client.CloseIdleConnections()
	for _, tc := range targets {
		for _, placement := range []string{"header", "query", "bearer"} {
			t.Run(tc.name+"/"+placement, func(t *testing.T) {
				name := "X-Api-Key"
				if placement == "query" {
					name = "api_key"
				} else if placement == "bearer" {
					name = ""
				}
				cred := credential(placement, name, "", tc.host)
				resp, err := client.Do(newRequest(t, http.MethodGet, "http://"+tc.host+"/v1/x?a=1", nil), cred, credvault.NewSecret(testValue))
				if err == nil {
					resp.Body.Close()
					t.Fatal("got a response, want egress_denied")
				}
				ce := wantError(t, err, credvault.EFORBIDDEN, "egress_denied", testValue)
				if !errors.Is(err, ErrPrivateAddress) {
					t.Fatalf("got %v, want errors.Is ErrPrivateAddress", err)
				}
				if !strings.Contains(ce.Message, tc.host) {
					t.Fatalf("message %q does not name the host", ce.Message)
				}
			})
		}
		if n, c := len(tc.up.requests()), tc.up.conns.Load(); n != 0 || c != 0 {
			t.Fatalf("%s: upstream got %d requests on %d connections, want none", tc.name, n, c)
		}
	}

	// The same upstream is reachable once private addresses are allowed,
	// which shows the refusals above came from the address check.
	open := testClient(t, ClientOptions{})
	resp, err := open.Do(newRequest(t, http.MethodGet, up4.url()+"/ok", nil), credential("bearer", "", "", up4.host()), credvault.NewSecret(testValue))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp.Body)
	if got := len(up4.requests()); got != 1 {
		t.Fatalf("got %d requests with AllowPrivate, want 1", got)
	}
}
