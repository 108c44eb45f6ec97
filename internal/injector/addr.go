package injector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// ErrPrivateAddress is the cause of every refusal by CheckAddr. Client.Do
// keeps it in the chain of its egress_denied errors, so that callers (and
// tests) can tell a refusal by the address policy from a host that is not in
// allowed_hosts with errors.Is.
var ErrPrivateAddress = errors.New("destination address is not public")

// addrRange is one block of addresses the egress policy refuses, with the
// word used in the refusal.
type addrRange struct {
	prefix netip.Prefix
	kind   string
}

func mustRanges(list ...string) []addrRange {
	out := make([]addrRange, 0, len(list)/2)
	for i := 0; i+1 < len(list); i += 2 {
		out = append(out, addrRange{prefix: netip.MustParsePrefix(list[i]), kind: list[i+1]})
	}
	return out
}

// refused4 lists the IPv4 blocks that are not public unicast: a credential
// must never be sent there, because they reach the credvault host itself, its
// network, or the cloud metadata service (169.254.169.254).
var refused4 = mustRanges(
	"0.0.0.0/8", "unspecified or this-network",
	"10.0.0.0/8", "private",
	"100.64.0.0/10", "carrier-grade NAT",
	"127.0.0.0/8", "loopback",
	"169.254.0.0/16", "link-local (cloud metadata)",
	"172.16.0.0/12", "private",
	"192.0.0.0/24", "IETF protocol assignment",
	"192.0.2.0/24", "documentation",
	"192.88.99.0/24", "6to4 relay",
	"192.168.0.0/16", "private",
	"198.18.0.0/15", "benchmarking",
	"198.51.100.0/24", "documentation",
	"203.0.113.0/24", "documentation",
	"224.0.0.0/4", "multicast",
	"240.0.0.0/4", "reserved or broadcast",
)

// refused6 lists the blocks inside the IPv6 global unicast range 2000::/3
// that are still not public destinations. Everything outside 2000::/3 is
// refused before this list is consulted, except the forms that embed an IPv4
// address, which are judged by that address.
var refused6 = mustRanges(
	"2001::/23", "IETF protocol assignment (Teredo, benchmarking, ORCHID)",
	"2001:db8::/32", "documentation",
	"3fff::/20", "documentation",
)

var (
	nat64Prefix     = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local      = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFourPrefix = netip.MustParsePrefix("2002::/16")
	v4CompatPrefix  = netip.MustParsePrefix("::/96")
	globalUnicast6  = netip.MustParsePrefix("2000::/3")
)

// CheckAddr is the egress address policy, applied by Client's dialer to
// every address a host name resolves to, after DNS resolution and before any
// packet is sent, so that neither a host name nor DNS rebinding can make
// credvault send a credential to itself, its private network or a metadata
// service. It is a pure function: it never resolves or dials.
//
// It returns nil for a public unicast address and an error wrapping
// ErrPrivateAddress (naming the address and the kind of block, never anything
// secret) for: an invalid address; IPv4 unspecified and this-network
// (0.0.0.0/8), private (10/8, 172.16/12, 192.168/16), carrier-grade NAT
// (100.64/10), loopback (127/8), link-local (169.254/16, which holds the
// 169.254.169.254 metadata address), IETF protocol assignments (192.0.0/24),
// documentation, the 6to4 relay anycast block, benchmarking (198.18/15),
// multicast, and reserved 240/4 with the broadcast address; IPv6 anything
// outside global unicast 2000::/3 (which covers ::, ::1, fe80::/10,
// fc00::/7, fec0::/10 and ff00::/8), 2001::/23 (Teredo and other protocol
// assignments) and the documentation blocks. IPv4-mapped (::ffff:a.b.c.d),
// IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16)
// addresses are judged by the IPv4 address they embed; the local-use NAT64
// block 64:ff9b:1::/48 is refused.
func CheckAddr(ip netip.Addr) error {
	if !ip.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrPrivateAddress)
	}
	orig := ip
	ip = ip.WithZone("")
	if ip.Is4In6() {
		return check4(orig, ip.Unmap())
	}
	if ip.Is4() {
		return check4(orig, ip)
	}
	switch {
	case ip.IsUnspecified():
		return refusal(orig, "unspecified")
	case ip.IsLoopback():
		return refusal(orig, "loopback")
	case nat64Prefix.Contains(ip):
		return check4(orig, embedded4(ip, 12))
	case nat64Local.Contains(ip):
		return refusal(orig, "local-use NAT64")
	case sixToFourPrefix.Contains(ip):
		return check4(orig, embedded4(ip, 2))
	case v4CompatPrefix.Contains(ip):
		return check4(orig, embedded4(ip, 12))
	case ip.IsLinkLocalUnicast():
		return refusal(orig, "link-local")
	case ip.IsPrivate():
		return refusal(orig, "unique-local")
	case ip.IsMulticast():
		return refusal(orig, "multicast")
	case !globalUnicast6.Contains(ip):
		return refusal(orig, "not global unicast")
	}
	for _, r := range refused6 {
		if r.prefix.Contains(ip) {
			return refusal(orig, r.kind)
		}
	}
	return nil
}

// check4 judges an IPv4 address; orig is the address as dialled, for the
// message.
func check4(orig, ip netip.Addr) error {
	for _, r := range refused4 {
		if r.prefix.Contains(ip) {
			if orig != ip {
				return fmt.Errorf("%w: %s embeds %s, which is %s", ErrPrivateAddress, orig, ip, r.kind)
			}
			return refusal(orig, r.kind)
		}
	}
	return nil
}

// embedded4 reads the IPv4 address stored at byte offset off of an IPv6
// address.
func embedded4(ip netip.Addr, off int) netip.Addr {
	b := ip.As16()
	return netip.AddrFrom4([4]byte{b[off], b[off+1], b[off+2], b[off+3]})
}

func refusal(ip netip.Addr, kind string) error {
	return fmt.Errorf("%w: %s is %s", ErrPrivateAddress, ip, kind)
}

// loopbackAddrs are where a localhost name goes (RFC 6761 section 6.3).
var loopbackAddrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}

// KnownAddrs returns the addresses of a host that need no DNS: an IP
// literal (in brackets or not), and "localhost" or any name under
// ".localhost", which RFC 6761 section 6.3 reserves for loopback. The
// name is compared ASCII case-insensitively, and trailing dots are
// ignored: "localhost." is the fully qualified form of the same name
// (RFC 1034 section 3.1), as "127.0.0.1." is of the address. known is
// false for every other host, which the resolver must look up. It is a
// pure function.
func KnownAddrs(host string) (addrs []netip.Addr, known bool) {
	h := host
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	for len(h) > 0 && h[len(h)-1] == '.' {
		h = h[:len(h)-1]
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return []netip.Addr{a}, true
	}
	if len(h) >= len("localhost") {
		tail := h[len(h)-len("localhost"):]
		if asciiLower(tail) == "localhost" && (len(h) == len(tail) || h[len(h)-len(tail)-1] == '.') {
			return loopbackAddrs, true
		}
	}
	return nil, false
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// guardedDial wraps d's DialContext: a host whose addresses are known
// without DNS (KnownAddrs) is never looked up. Its addresses are judged by
// CheckDialAddr (unless allowPrivate: loopback passes only on one of
// loopbackPorts) and dialled directly, in order, so that "localhost." or
// "app.localhost" neither sends a DNS query off the machine nor reaches
// loopback when private egress is off. Other hosts go to d, whose Control
// hook checks every resolved address.
func guardedDial(d *net.Dialer, allowPrivate bool, loopbackPorts []uint16) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(address)
		if err != nil {
			return d.DialContext(ctx, network, address)
		}
		addrs, known := KnownAddrs(host)
		if !known {
			return d.DialContext(ctx, network, address)
		}
		p, perr := strconv.ParseUint(port, 10, 16)
		if perr != nil {
			return d.DialContext(ctx, network, address)
		}
		var first error
		for _, a := range addrs {
			if !allowPrivate {
				if err := CheckDialAddr(netip.AddrPortFrom(a, uint16(p)), loopbackPorts); err != nil {
					return nil, &net.OpError{Op: "dial", Net: network, Err: err}
				}
			}
			conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
			if err == nil {
				return conn, nil
			}
			if first == nil {
				first = err
			}
		}
		return nil, first
	}
}
