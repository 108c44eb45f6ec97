package credvault

import (
	"net/url"
	"path"
	"slices"
	"strings"
)

// Widened lists the fields whose change from before to after lets a
// credential's value go somewhere, or in a form, it could not before:
//   - placement, param_name, value_prefix, username: any change (the
//     value lands in another header, in the URL, or behind other text; a
//     basic credential's username is text in front of the value inside
//     the one encoded "username:value" the upstream receives, which is
//     what value_prefix is to the other placements);
//   - base_url: setting one where there was none (an http:// base_url is
//     what lets the value travel in cleartext, which a credential without
//     one never does), dropping it (any path on the allowed hosts), another
//     scheme, host or port, or a path outside the old one; only a path
//     below the old one, on the same scheme and host, narrows;
//   - allowed_hosts: an entry that no old entry covers (the same entry,
//     or a host an old one-level wildcard matches on the same port).
//
// Removing hosts narrows. Both hosts lists must be normalised
// (ParseHostPatterns). The rule: SPEC "Who may see a value".
//
// The result is never nil, so that an audit event lists [] rather than null.
func Widened(before, after *Credential) []string {
	out := []string{}
	if after.Placement != before.Placement {
		out = append(out, "placement")
	}
	if after.ParamName != before.ParamName {
		out = append(out, "param_name")
	}
	if after.ValuePrefix != before.ValuePrefix {
		out = append(out, "value_prefix")
	}
	if after.Username != before.Username {
		out = append(out, "username")
	}
	if baseURLWidens(before.BaseURL, after.BaseURL) {
		out = append(out, "base_url")
	}
	old, err := ParseHostPatterns("allowed_hosts", before.AllowedHosts)
	if err != nil {
		// A stored list that no longer parses covers nothing.
		old = nil
	}
	next, err := ParseHostPatterns("allowed_hosts", after.AllowedHosts)
	if err != nil || slices.ContainsFunc(next, func(n HostPattern) bool { return !hostCovered(old, n) }) {
		out = append(out, "allowed_hosts")
	}
	return out
}

func baseURLWidens(before, after string) bool {
	switch {
	case before == after:
		return false
	case before == "" || after == "":
		return true
	}
	b, err1 := url.Parse(before)
	a, err2 := url.Parse(after)
	if err1 != nil || err2 != nil {
		return true
	}
	if !asciiEqualFold(a.Scheme, b.Scheme) || !asciiEqualFold(a.Host, b.Host) {
		return true
	}
	// Dot segments are resolved as the proxy resolves them, so that
	// "/tenants/42/../.." is not mistaken for a path below "/tenants/42".
	prefix := strings.TrimSuffix(path.Clean("/"+b.Path), "/")
	p := path.Clean("/" + a.Path)
	return prefix != "" && p != prefix && !strings.HasPrefix(p, prefix+"/")
}

// hostCovered reports whether an old pattern already allows everything n
// allows: the same pattern, or n an exact host under an old one-level
// wildcard with the same port.
func hostCovered(old []HostPattern, n HostPattern) bool {
	for _, o := range old {
		if o == n {
			return true
		}
		if o.Port != n.Port || !o.Wildcard || n.Wildcard || strings.IndexByte(n.Host, ':') >= 0 {
			continue
		}
		label, ok := strings.CutSuffix(n.Host, "."+o.Host)
		if ok && isPlainLabel(label) {
			return true
		}
	}
	return false
}

// hostsDiff lists the entries after gained and before lost, for the audit.
func hostsDiff(before, after []string) (added, removed []string) {
	added, removed = []string{}, []string{}
	for _, h := range after {
		if !slices.Contains(before, h) {
			added = append(added, h)
		}
	}
	for _, h := range before {
		if !slices.Contains(after, h) {
			removed = append(removed, h)
		}
	}
	return added, removed
}
