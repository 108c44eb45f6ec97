package injector

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"credvault/internal/credvault"
)

// CheckDestination is the egress policy applied to a URL before it is
// stored (a webhook's delivery URL): unless allowPrivate, a host that is
// an IP literal must pass CheckAddr, and "localhost" (or a name under
// .localhost, RFC 6761) is refused. Other names are judged when they are
// dialled, after DNS, by the Client's dialer. Errors: EFORBIDDEN with
// reason egress_denied, naming the address and why.
func CheckDestination(u *url.URL, allowPrivate bool) error {
	if allowPrivate {
		return nil
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return &credvault.Error{Code: credvault.EFORBIDDEN, Reason: "egress_denied",
			Message: fmt.Sprintf("%s is a loopback name; private addresses are refused (CREDVAULT_EGRESS_ALLOW_PRIVATE)", host)}
	}
	ip, err := netip.ParseAddr(host)
	if err == nil {
		if err := CheckAddr(ip); err != nil {
			return &credvault.Error{Code: credvault.EFORBIDDEN, Reason: "egress_denied", Message: err.Error(), Err: err}
		}
		return nil
	}
	if endsInNumber(host) {
		// 127.1, 2130706433, 0177.0.0.1, 0x7f.1: shorthand IPv4 forms that
		// inet_aton resolvers and WHATWG URL parsers turn into an address
		// (WHATWG URL, "ends in a number"), while a pure-Go resolver sends
		// them to DNS. Only dotted decimal is judged the same everywhere.
		return &credvault.Error{Code: credvault.EFORBIDDEN, Reason: "egress_denied",
			Message: fmt.Sprintf("%s is not a dotted-decimal IPv4 address (a.b.c.d, each 0-255); shorthand, octal and hex forms are refused", host)}
	}
	return nil
}

// endsInNumber reports whether host's last label is a number in decimal,
// or hex with 0x (the WHATWG URL standard's "ends in a number" test): such
// a host is an IPv4 address or invalid, never a DNS name.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	digits := "0123456789"
	if l := strings.ToLower(last); strings.HasPrefix(l, "0x") {
		last, digits = l[2:], "0123456789abcdef"
	}
	return strings.Trim(last, digits) == ""
}
