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
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := CheckAddr(ip); err != nil {
			return &credvault.Error{Code: credvault.EFORBIDDEN, Reason: "egress_denied", Message: err.Error(), Err: err}
		}
	}
	return nil
}
