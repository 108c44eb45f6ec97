package credvault

import (
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// maxAllowedHosts is how many allowed_hosts entries one credential may
// carry. A credential bound to more hosts than this is almost certainly a
// mistake, and the injector scans the list on every outbound call.
const maxAllowedHosts = 50

// HostPattern is one allowed_hosts entry, normalised: lower-case host,
// optional port, optional one-level wildcard. The injector compares every
// outbound request against these, so they are kept in a form that
// HostAllowed can match without parsing or allocating.
//
// Host holds a DNS name ("api.stripe.com"), an IPv4 address ("127.0.0.1")
// or an IPv6 address without brackets ("::1"). For "*.sendgrid.com", Host
// is "sendgrid.com" and Wildcard is true. Port is "" (the scheme's default
// port) or a decimal port without leading zeros.
type HostPattern struct {
	Host     string
	Port     string
	Wildcard bool
}

// String returns the canonical allowed_hosts text of p, the form credvault
// stores and shows: "api.stripe.com", "127.0.0.1:9000", "*.sendgrid.com",
// "[::1]:8443". ParseHostPatterns of that text gives p back. It cannot
// fail.
func (p HostPattern) String() string {
	var b strings.Builder
	b.Grow(len(p.Host) + len(p.Port) + 5)
	if p.Wildcard {
		b.WriteString("*.")
	}
	if strings.IndexByte(p.Host, ':') >= 0 {
		b.WriteByte('[')
		b.WriteString(p.Host)
		b.WriteByte(']')
	} else {
		b.WriteString(p.Host)
	}
	if p.Port != "" {
		b.WriteByte(':')
		b.WriteString(p.Port)
	}
	return b.String()
}

// ParseHostPatterns checks and normalises the allowed_hosts entries of a
// credential, at create and update time, so that the injector only ever
// sees well-formed patterns. field is the JSON field name used in error
// messages (normally "allowed_hosts"). Duplicates (after normalising) are
// dropped silently and the order is kept. An empty list gives an empty
// result: whether a credential needs hosts is the caller's decision.
//
// It returns an EINVALID error naming field and the offending entry for:
// more than 50 entries; an empty entry; a scheme, path, query,
// fragment, userinfo, whitespace or control character; a bare "*"; a
// wildcard other than one leading "*." label; a wildcard over a public
// suffix ("*.com", "*.co.uk", "*.github.io") or over an IP address; an
// invalid host name or IP address; an unbracketed IPv6 address; an
// invalid port.
func ParseHostPatterns(field string, entries []string) ([]HostPattern, error) {
	if len(entries) > maxAllowedHosts {
		return nil, Errorf(EINVALID, "field %q has %d entries; at most %d are allowed", field, len(entries), maxAllowedHosts)
	}
	out := make([]HostPattern, 0, len(entries))
	for i, e := range entries {
		p, reason := parseHostPattern(e)
		if reason != "" {
			return nil, Errorf(EINVALID, "field %q: entry %d (%s) %s", field, i, quoteEntry(e), reason)
		}
		dup := false
		for _, q := range out {
			if q == p {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, p)
		}
	}
	return out, nil
}

// hostPatternHelp ends most refusals with what an entry may look like.
const hostPatternHelp = `; use a host name ("api.stripe.com"), optionally with a port ("127.0.0.1:9000" or "[::1]:8443"), or a one-level wildcard ("*.sendgrid.com")`

// parseHostPattern normalises one entry or says, in words, why it is refused.
func parseHostPattern(e string) (HostPattern, string) {
	if e == "" {
		return HostPattern{}, "is empty" + hostPatternHelp
	}
	if len(e) > 300 {
		return HostPattern{}, "is too long (a host name has at most 253 characters)"
	}
	if strings.Contains(e, "://") {
		return HostPattern{}, "has a scheme; give only the host, without \"https://\"" + hostPatternHelp
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			return HostPattern{}, "contains whitespace" + hostPatternHelp
		case c < 0x20 || c == 0x7f:
			return HostPattern{}, "contains a control character" + hostPatternHelp
		case c >= 0x80:
			return HostPattern{}, "contains a non-ASCII character; give an internationalised name in its \"xn--\" form"
		case c == '/' || c == '\\':
			return HostPattern{}, "has a path; give only the host" + hostPatternHelp
		case c == '?' || c == '#':
			return HostPattern{}, "has a query or fragment; give only the host" + hostPatternHelp
		case c == '@':
			return HostPattern{}, "has user information (\"user@\"); give only the host" + hostPatternHelp
		}
	}
	if e == "*" {
		return HostPattern{}, "is a bare \"*\", which would send the credential anywhere; list the hosts, or use a one-level wildcard such as \"*.sendgrid.com\""
	}

	var p HostPattern
	s := e
	if strings.HasPrefix(s, "*.") {
		p.Wildcard = true
		s = s[2:]
	}
	if strings.IndexByte(s, '*') >= 0 {
		return HostPattern{}, "has a wildcard in the wrong place; only one leading \"*.\" label is allowed, as in \"*.sendgrid.com\""
	}

	// Split host and port.
	var host, port string
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return HostPattern{}, "has an unclosed \"[\"; write IPv6 addresses as \"[::1]\" or \"[::1]:8443\""
		}
		host = s[1:end]
		rest := s[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return HostPattern{}, "has text after \"]\"; write IPv6 addresses as \"[::1]\" or \"[::1]:8443\""
			}
			port = rest[1:]
			if port == "" {
				return HostPattern{}, "ends with \":\" but has no port; give a port from 1 to 65535 or none"
			}
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return HostPattern{}, "is not a valid IPv6 address in brackets (zones are not allowed)"
		}
		if p.Wildcard {
			return HostPattern{}, "puts a wildcard on an IP address; wildcards only apply to host names"
		}
		p.Host = a.String()
	} else {
		switch strings.Count(s, ":") {
		case 0:
			host = s
		case 1:
			i := strings.IndexByte(s, ':')
			host, port = s[:i], s[i+1:]
			if port == "" {
				return HostPattern{}, "ends with \":\" but has no port; give a port from 1 to 65535 or none"
			}
		default:
			return HostPattern{}, "looks like an IPv6 address without brackets; write it as \"[::1]\" or \"[::1]:8443\""
		}
		if strings.HasSuffix(host, "]") {
			return HostPattern{}, "has a \"]\" without \"[\"; write IPv6 addresses as \"[::1]\""
		}
		host = strings.ToLower(strings.TrimSuffix(host, "."))
		if a, err := netip.ParseAddr(host); err == nil {
			if !a.Is4() {
				return HostPattern{}, "is not a valid IPv4 address"
			}
			if p.Wildcard {
				return HostPattern{}, "puts a wildcard on an IP address; wildcards only apply to host names"
			}
			p.Host = a.String()
		} else {
			if reason := checkHostName(host); reason != "" {
				return HostPattern{}, reason
			}
			p.Host = host
		}
	}

	if port != "" {
		n, reason := parsePort(port)
		if reason != "" {
			return HostPattern{}, reason
		}
		p.Port = strconv.Itoa(n)
	}

	if p.Wildcard {
		// The part after "*." must be something a single organisation
		// controls: a wildcard over a public suffix would cover every
		// customer of that registry or hosting platform.
		if suffix, _ := publicsuffix.PublicSuffix(p.Host); suffix == p.Host {
			return HostPattern{}, "is a wildcard over the public suffix \"" + p.Host + "\", which would match hosts owned by anyone; name a domain you trust, such as \"*.sendgrid.com\""
		}
	}
	return p, ""
}

// checkHostName checks a lower-cased DNS name without trailing dot: labels
// of 1 to 63 characters from [a-z0-9-], not starting or ending with '-',
// at most 253 characters in all, and a last label that is not all digits
// (such a name is a mistyped or abbreviated IPv4 address, which resolvers
// interpret in surprising ways).
func checkHostName(h string) string {
	if h == "" {
		return "has no host name" + hostPatternHelp
	}
	if len(h) > 253 {
		return "has a host name longer than 253 characters"
	}
	start := 0
	for i := 0; i <= len(h); i++ {
		if i < len(h) && h[i] != '.' {
			c := h[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "is not a valid host name: only letters, digits, '-' and '.' are allowed" + hostPatternHelp
			}
			continue
		}
		label := h[start:i]
		switch {
		case label == "":
			return "is not a valid host name: it has an empty label (\"..\" or a leading \".\")"
		case len(label) > 63:
			return "is not a valid host name: a label is longer than 63 characters"
		case label[0] == '-' || label[len(label)-1] == '-':
			return "is not a valid host name: a label starts or ends with '-'"
		}
		start = i + 1
	}
	last := h[strings.LastIndexByte(h, '.')+1:]
	allDigits := true
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			allDigits = false
			break
		}
	}
	if allDigits {
		return "is neither a valid IPv4 address (four numbers 0-255 separated by dots) nor a host name"
	}
	return ""
}

// parsePort accepts a decimal port from 1 to 65535.
func parsePort(s string) (int, string) {
	const msg = "has an invalid port; a port is a number from 1 to 65535"
	if len(s) > 5 {
		return 0, msg
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, msg
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 65535 {
		return 0, msg
	}
	return n, ""
}

// quoteEntry quotes an entry for an error message, shortened so that a
// pasted blob does not flood the response.
func quoteEntry(e string) string {
	const max = 80
	if len(e) > max {
		return strconv.Quote(e[:max]) + "…"
	}
	return strconv.Quote(e)
}

// HostAllowed reports whether an outbound request to host, written as in
// URL.Host ("api.stripe.com", "api.stripe.com:443", "127.0.0.1:9000",
// "[::1]:8080"), with the given scheme ("http" or "https"), matches any of
// patterns. The injector calls it on every request before attaching a
// credential, so it neither allocates nor returns an error: anything it
// cannot read is simply not allowed.
//
// A pattern without port matches the scheme's default port (443 for https,
// 80 for http), whether the request names it or not; a pattern with a port
// matches exactly that port. "*.sendgrid.com" matches "api.sendgrid.com"
// but neither "sendgrid.com" nor "a.b.sendgrid.com". Host names compare
// ASCII case-insensitively and one trailing dot is ignored. Schemes other
// than http and https are never allowed.
func HostAllowed(patterns []HostPattern, scheme, host string) bool {
	var defPort string
	switch {
	case asciiEqualFold(scheme, "https"):
		defPort = "443"
	case asciiEqualFold(scheme, "http"):
		defPort = "80"
	default:
		return false
	}
	name, port, ok := splitRequestHost(host)
	if !ok {
		return false
	}
	if port == "" {
		port = defPort
	}
	bracketed := len(host) > 0 && host[0] == '['
	if !bracketed && len(name) > 1 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	if name == "" {
		return false
	}
	for i := range patterns {
		p := &patterns[i]
		pp := p.Port
		if pp == "" {
			pp = defPort
		}
		if pp != port {
			continue
		}
		isV6 := strings.IndexByte(p.Host, ':') >= 0
		if isV6 != bracketed {
			continue
		}
		if isV6 {
			if sameIPv6(name, p.Host) {
				return true
			}
			continue
		}
		if !p.Wildcard {
			if asciiEqualFold(name, p.Host) {
				return true
			}
			continue
		}
		// One label, then ".", then the pattern's host.
		n := len(name) - len(p.Host) - 1
		if n < 1 || name[n] != '.' || !asciiEqualFold(name[n+1:], p.Host) {
			continue
		}
		if isPlainLabel(name[:n]) {
			return true
		}
	}
	return false
}

// splitRequestHost splits URL.Host into name and port without allocating.
// IPv6 names come back without brackets. ok is false for text that is not
// a host[:port] at all.
func splitRequestHost(host string) (name, port string, ok bool) {
	if host == "" {
		return "", "", false
	}
	rest := ""
	if host[0] == '[' {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", "", false
		}
		name, rest = host[1:end], host[end+1:]
		if rest != "" && rest[0] != ':' {
			return "", "", false
		}
	} else {
		i := strings.IndexByte(host, ':')
		if i < 0 {
			return host, "", true
		}
		if strings.IndexByte(host[i+1:], ':') >= 0 {
			return "", "", false // an unbracketed IPv6 address
		}
		name, rest = host[:i], host[i:]
	}
	if rest != "" {
		port = rest[1:]
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return "", "", false
			}
		}
	}
	return name, port, true
}

// sameIPv6 compares two IPv6 literals by value, so that "0:0::1" matches a
// pattern stored as "::1". Parsing an address without zone does not
// allocate.
func sameIPv6(a, b string) bool {
	x, err := netip.ParseAddr(a)
	if err != nil || !x.Is6() || x.Zone() != "" {
		return false
	}
	y, err := netip.ParseAddr(b)
	return err == nil && x == y
}

// isPlainLabel reports whether s is one DNS label (letters, digits, '-'),
// which is what a wildcard pattern's "*" may stand for.
func isPlainLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// asciiEqualFold compares ASCII case-insensitively. Unlike strings.EqualFold
// it does not fold non-ASCII letters onto ASCII ones (the Kelvin sign onto
// 'k'), which must never make a host name match.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
