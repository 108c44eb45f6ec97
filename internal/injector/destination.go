package injector

import (
	"fmt"
	"net/http"
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

// HTTPClient returns a plain *http.Client on c's transport (the same
// dial-time address check, timeouts and no proxy from the environment)
// that never follows a redirect: a 3xx is the answer. It is for requests
// that carry no credential, such as webhook deliveries.
func (c *Client) HTTPClient() *http.Client {
	return &http.Client{
		Transport:     c.transport,
		Timeout:       c.opts.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
