package injector

import (
	"errors"
	"net/netip"
	"testing"
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
		err := checkDialAddr("tcp", tc.addr, nil)
		if (err == nil) != tc.ok {
			t.Errorf("checkDialAddr(%s) got %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
}
