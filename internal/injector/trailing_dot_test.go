package injector

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// TestKnownAddrs is issue 21 item 8 as a pure function: "localhost." is
// the same name as "localhost" (as "127.0.0.1." is the same address), and
// every localhost name is loopback without asking DNS.
func TestKnownAddrs(t *testing.T) {
	loop := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}
	for _, tc := range []struct {
		host  string
		want  []netip.Addr
		known bool
	}{
		{"localhost", loop, true},
		{"localhost.", loop, true},
		{"LocalHost.", loop, true},
		{"localhost..", loop, true},
		{"app.localhost", loop, true},
		{"app.localhost.", loop, true},
		{"127.0.0.1.", []netip.Addr{netip.MustParseAddr("127.0.0.1")}, true},
		{"10.0.0.1", []netip.Addr{netip.MustParseAddr("10.0.0.1")}, true},
		{"[::1]", []netip.Addr{netip.MustParseAddr("::1")}, true},
		{"notlocalhost", nil, false},
		{"localhost.example.com.", nil, false},
		{"example.com.", nil, false},
		{"", nil, false},
	} {
		got, known := KnownAddrs(tc.host)
		if known != tc.known || !slices.Equal(got, tc.want) {
			t.Errorf("KnownAddrs(%q) = %v, %v; want %v, %v", tc.host, got, known, tc.want, tc.known)
		}
	}
	// The allowed_hosts check already takes the dotted form as the same
	// name, so the dial is where the rule must hold too.
	pats, err := credvault.ParseHostPatterns("allowed_hosts", []string{"localhost:9000"})
	if err != nil {
		t.Fatal(err)
	}
	if !credvault.HostAllowed(pats, "http", "localhost.:9000") || !credvault.HostAllowed(pats, "http", "LOCALHOST:9000") {
		t.Error("localhost. is not the same host as localhost in allowed_hosts")
	}
}

// TestDialNeverLooksUpLocalhost: the injector's dialer refuses a localhost
// name with a trailing dot (or under .localhost) before any DNS query when
// private egress is off, and dials loopback directly when it is on. The
// resolver here counts lookups and answers none, so nothing leaves the
// machine.
func TestDialNeverLooksUpLocalhost(t *testing.T) {
	var lookups atomic.Int32
	d := &net.Dialer{Timeout: time.Second, Resolver: &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		lookups.Add(1)
		return nil, errors.New("no DNS in this test")
	}}}
	d.Control = dialCheck(nil)
	ctx := context.Background()
	for _, host := range []string{"localhost.", "LOCALHOST.", "app.localhost.", "app.localhost", "127.0.0.1."} {
		_, err := guardedDial(d, false, nil)(ctx, "tcp", net.JoinHostPort(host, "9"))
		if !errors.Is(err, ErrPrivateAddress) {
			t.Errorf("%s with private egress off: %v, want ErrPrivateAddress", host, err)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	open := &net.Dialer{Timeout: time.Second, Resolver: d.Resolver}
	for _, host := range []string{"localhost.", "app.localhost.", "127.0.0.1."} {
		conn, err := guardedDial(open, true, nil)(ctx, "tcp", net.JoinHostPort(host, port))
		if err != nil {
			t.Errorf("%s with private egress on: %v", host, err)
			continue
		}
		conn.Close()
	}
	// The loopback port allow-list holds for names known without DNS too:
	// "localhost." reaches an allowed port and no other.
	p, _ := strconv.ParseUint(port, 10, 16)
	allowed := []uint16{uint16(p)}
	d.Control = dialCheck(allowed) // as NewClient sets it
	for _, host := range []string{"localhost.", "127.0.0.1"} {
		conn, err := guardedDial(d, false, allowed)(ctx, "tcp", net.JoinHostPort(host, port))
		if err != nil {
			t.Errorf("%s on an allowed loopback port: %v", host, err)
		} else {
			conn.Close()
		}
		if _, err := guardedDial(d, false, []uint16{uint16(p) + 1})(ctx, "tcp", net.JoinHostPort(host, port)); !errors.Is(err, ErrPrivateAddress) {
			t.Errorf("%s on a loopback port not allowed: %v, want ErrPrivateAddress", host, err)
		}
	}
	if n := lookups.Load(); n != 0 {
		t.Errorf("%d DNS lookups for names known to be loopback", n)
	}
}
