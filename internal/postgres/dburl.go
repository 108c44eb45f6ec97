package postgres

import (
	"net/url"
	"strings"

	"credvault/internal/credvault"
)

// NormalizeURL returns DATABASE_URL in the form lib/pq reads, so that both
// multi-host forms libpq documents work:
//
//	postgres://u@h1:5432,h2:5433/db?target_session_attrs=read-write
//	postgres://u@h1,h2/db?port=5432,5433&target_session_attrs=read-write
//
// The first (a port per host) is rewritten into the second, which is the
// only one lib/pq parses. It also adds connect_timeout=5 (seconds) when the
// URL has none, so that an unreachable host of a list costs 5 s at most
// before the next is tried. Key/value DSNs ("host=... port=...") are
// returned unchanged. Errors: EINVALID, naming the form that works.
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
	if strings.Contains(hostlist, ",") {
		var hosts, ports []string
		anyPort := false
		for _, hp := range strings.Split(hostlist, ",") {
			h, p := hp, ""
			if i := strings.LastIndex(hp, ":"); i >= 0 && !strings.HasSuffix(hp, "]") {
				h, p = hp[:i], hp[i+1:]
				anyPort = true
			}
			if h == "" {
				return "", credvault.Errorf(credvault.EINVALID, "DATABASE_URL has an empty host in its host list; write postgres://user@host1,host2/db?port=5432,5432&target_session_attrs=read-write")
			}
			hosts, ports = append(hosts, h), append(ports, p)
		}
		if anyPort {
			if q.Has("port") {
				return "", credvault.Errorf(credvault.EINVALID, "DATABASE_URL gives ports both per host and in ?port=; write postgres://user@host1,host2/db?port=5432,5433&target_session_attrs=read-write")
			}
			for i, p := range ports {
				if p == "" {
					ports[i] = "5432"
				}
			}
			q.Set("port", strings.Join(ports, ","))
			hostlist = strings.Join(hosts, ",")
		}
	}
	if !q.Has("connect_timeout") {
		q.Set("connect_timeout", "5")
	}
	return scheme + "://" + userinfo + hostlist + path + "?" + q.Encode(), nil
}
