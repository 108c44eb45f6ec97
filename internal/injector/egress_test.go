package injector

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"

	"credvault/internal/credvault"
)

// TestCheckAddr is a pure-function table: nothing here resolves or dials.
func TestCheckAddr(t *testing.T) {
	refused := []string{
		"10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1",
		"169.254.169.254", "169.254.0.1",
		"fd00::1", "fc00::1", "fe80::1", "fe80::1%eth0", "fec0::1",
		"0.0.0.0", "0.1.2.3", "::",
		"127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1",
		"::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:0.0.0.0",
		"::127.0.0.1", "::10.0.0.1",
		"100.64.0.1", "100.127.255.255",
		"64:ff9b::a00:1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::808:808",
		"2002:a00:1::1", "2002:7f00:1::", "2002:a9fe:a9fe::1",
		"224.0.0.1", "239.255.255.250", "ff02::1", "ff05::2",
		"255.255.255.255", "240.0.0.1",
		"198.18.0.1", "198.19.255.255",
		"192.0.0.170", "192.0.2.1", "198.51.100.1", "203.0.113.1",
		"2001:db8::1", "2001::1", "2001:2::1", "100::1",
	}
	for _, s := range refused {
		ip := netip.MustParseAddr(s)
		err := CheckAddr(ip)
		if err == nil {
			t.Errorf("CheckAddr(%s) got nil, want a refusal", s)
			continue
		}
		if !errors.Is(err, ErrPrivateAddress) {
			t.Errorf("CheckAddr(%s) got %v, want it to wrap ErrPrivateAddress", s, err)
		}
	}
	allowed := []string{
		"8.8.8.8", "1.1.1.1", "93.184.216.34", "172.32.0.1", "100.128.0.1", "11.0.0.1",
		"2606:4700:4700::1111", "2a00:1450:4001:80b::200e",
		"::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
	}
	for _, s := range allowed {
		if err := CheckAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("CheckAddr(%s) got %v, want nil", s, err)
		}
	}
	if err := CheckAddr(netip.Addr{}); !errors.Is(err, ErrPrivateAddress) {
		t.Errorf("CheckAddr(zero) got %v, want a refusal", err)
	}
}

func TestCheckDialAddr(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:80", false},
		{"[::1]:443", false},
		{"[fe80::1%eth0]:443", false},
		{"8.8.8.8:443", true},
		{"[2606:4700:4700::1111]:443", true},
		{"garbage", false},
	}
	for _, tc := range tests {
		err := dialCheck(nil)("tcp", tc.addr, nil)
		if (err == nil) != tc.ok {
			t.Errorf("checkDialAddr(%s) got %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
}

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

// TestCheckDialAddrLoopbackPorts: CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS
// opens the listed ports on loopback only; every other private address,
// and loopback on another port, stays refused. A pure-function table.
func TestCheckDialAddrLoopbackPorts(t *testing.T) {
	ports := []uint16{9000, 9001}
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:9000", true}, {"127.0.0.1:9001", true}, {"127.8.9.10:9000", true},
		{"[::1]:9000", true}, {"[::ffff:127.0.0.1]:9001", true}, {"93.184.216.34:443", true},
		{"127.0.0.1:9002", false}, {"127.0.0.1:5432", false}, {"[::1]:80", false},
		{"10.0.0.1:9000", false}, {"192.168.1.1:9000", false}, {"169.254.169.254:9000", false},
		{"[fd00::1]:9000", false}, {"[fe80::1]:9000", false}, {"0.0.0.0:9000", false},
	} {
		err := CheckDialAddr(netip.MustParseAddrPort(c.addr), ports)
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v, want allowed=%v", c.addr, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrPrivateAddress) {
			t.Errorf("%s: %v does not wrap ErrPrivateAddress", c.addr, err)
		}
	}
	if err := CheckDialAddr(netip.MustParseAddrPort("127.0.0.1:9000"), nil); err == nil {
		t.Error("no ports listed: loopback passed")
	}
}
