package postgres

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"credvault/internal/credvault"
)

// NormalizeURL returns DATABASE_URL in the form lib/pq reads, so that both
// multi-host forms libpq documents work, IPv6 literals in brackets
// included (libpq "Connection URIs", section 34.1.1.2):
//
//	postgres://u@h1:5432,[::1]:5433/db?target_session_attrs=read-write
//	postgres://u@h1,[::1]/db?port=5432,5433&target_session_attrs=read-write
//
// lib/pq reads the authority with net/url, which takes neither a host
// list with an IPv6 literal nor ports after each host, so per-host ports
// move into the port parameter (a host without one gets 5432), and a list
// with an IPv6 literal moves into the host parameter, brackets removed:
//
//	postgres://u@h1,h2/db?port=5432,5433&target_session_attrs=read-write
//	postgres://u@/db?host=h1,::1&port=5432,5433&target_session_attrs=read-write
//
// It also adds connect_timeout=5 (seconds) when the URL has none, so that
// an unreachable host of a list costs 5 s at most before the next is
// tried. Key/value DSNs ("host=... port=...") are returned unchanged, a
// single-host URL unchanged but for connect_timeout. Errors: EINVALID for
// an IPv6 address without brackets (also a single host: ::1:5432 is
// ambiguous), an empty host, a port outside 1 to 65535, or hosts or
// ports given twice, naming the form that works.
func NormalizeURL(dsn string) (string, error) {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok || (scheme != "postgres" && scheme != "postgresql") {
		return dsn, nil
	}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	userinfo, hostlist := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hostlist = authority[:i+1], authority[i+1:]
	}
	path, rawQuery, _ := strings.Cut(tail, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", credvault.Errorf(credvault.EINVALID, "DATABASE_URL has a malformed query string")
	}
	if hostlist != "" {
		hosts, ports, err := splitHostList(hostlist)
		if err != nil {
			return "", err
		}
		if len(hosts) == 1 {
			return withConnectTimeout(scheme+"://"+userinfo+hostlist+path, q), nil
		}
		if q.Has("host") {
			return "", credvault.Errorf(credvault.EINVALID, "DATABASE_URL gives hosts both before the path and in ?host=; "+HostListForm)
		}
		if ports != nil {
			if q.Has("port") {
				return "", credvault.Errorf(credvault.EINVALID, "DATABASE_URL gives ports both per host and in ?port=; "+HostListForm)
			}
			q.Set("port", strings.Join(ports, ","))
		}
		if strings.Contains(hostlist, "[") {
			q.Set("host", strings.Join(hosts, ","))
			hostlist = ""
		} else {
			hostlist = strings.Join(hosts, ",")
		}
	}
	return withConnectTimeout(scheme+"://"+userinfo+hostlist+path, q), nil
}

// withConnectTimeout appends q to u, with connect_timeout=5 added when q
// has none.
func withConnectTimeout(u string, q url.Values) string {
	if !q.Has("connect_timeout") {
		q.Set("connect_timeout", "5")
	}
	return u + "?" + q.Encode()
}

// HostListForm names the DATABASE_URL forms for a primary and standbys
// that NormalizeURL takes, for refusals.
const HostListForm = "write postgres://user@host1:5432,[::1]:5432/db?target_session_attrs=read-write or postgres://user@host1,[::1]/db?port=5432,5432&target_session_attrs=read-write (an IPv6 address in brackets)"

// splitHostList splits a libpq host list (one host or several),
// `host[:port]` or `[ipv6][:port]` separated by commas, into hosts (IPv6
// without brackets) and ports; ports is nil when no host carries one,
// else a host without one gets 5432. Errors: EINVALID for an empty host, an IPv6 address
// without brackets, a bracketed host that is not an IPv6 address, or a
// port that is not a number from 1 to 65535.
func splitHostList(list string) (hosts, ports []string, err error) {
	anyPort := false
	for _, hp := range strings.Split(list, ",") {
		h, p := hp, ""
		switch {
		case strings.HasPrefix(hp, "["):
			end := strings.IndexByte(hp, ']')
			if end < 0 {
				return nil, nil, credvault.Errorf(credvault.EINVALID, "DATABASE_URL has an unclosed [ in its host; "+HostListForm)
			}
			h, p = hp[1:end], hp[end+1:]
			if a, perr := netip.ParseAddr(h); perr != nil || !a.Is6() || (p != "" && p[0] != ':') {
				return nil, nil, credvault.Errorf(credvault.EINVALID, "DATABASE_URL has a host in brackets that is not an IPv6 address followed by :port; "+HostListForm)
			}
			p = strings.TrimPrefix(p, ":")
		case strings.Count(hp, ":") > 1:
			return nil, nil, credvault.Errorf(credvault.EINVALID, "DATABASE_URL has an IPv6 address without brackets; "+HostListForm)
		case strings.Contains(hp, ":"):
			h, p, _ = strings.Cut(hp, ":")
		}
		if h == "" {
			return nil, nil, credvault.Errorf(credvault.EINVALID, "DATABASE_URL has an empty host in its host list; "+HostListForm)
		}
		if p != "" {
			if n, perr := strconv.Atoi(p); perr != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
				return nil, nil, credvault.Errorf(credvault.EINVALID, "DATABASE_URL has a port that is not a number from 1 to 65535; "+HostListForm)
			}
			anyPort = true
		}
		hosts, ports = append(hosts, h), append(ports, p)
	}
	if !anyPort {
		return hosts, nil, nil
	}
	for i, p := range ports {
		if p == "" {
			ports[i] = "5432"
		}
	}
	return hosts, ports, nil
}
