// Package injector attaches a credential's value to an outbound HTTP request
// and sends it, making sure the value reaches only the hosts the credential
// is bound to: placement (header, query or bearer), the scheme and host check
// against allowed_hosts, the egress address policy applied at dial time, the
// redirect policy that drops the credential on a change of host, and the
// scrubbing of the value from what the upstream sends back.
//
// Every error it returns is a *credvault.Error whose message names the
// destination host at most, never the value and never a full URL (a URL can
// carry a query-placed value).
package injector

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"credvault/internal/credvault"
)

// Apply puts the credential's value into req, so that the proxy, the inject
// endpoint and the credential test all place it the same way: placement
// header sets "ParamName: ValuePrefix+value"; placement query adds
// "ParamName=value" to the query, after removing every caller-supplied
// parameter of that name (compared ASCII case-insensitively, since some
// upstreams read query names that way) and keeping all the others, in
// order; placement bearer sets "Authorization: Bearer value"; placement
// basic sets "Authorization: Basic base64(username:value)" (RFC 7617). For
// header, bearer and basic, every caller-supplied header (and trailer) of that name, in any
// case and with all its values, is removed first, so exactly one value
// arrives. req.Host is cleared, so that the Host header always names the
// host that was checked.
//
// Before anything is changed, req.URL is checked: its scheme must be https,
// or http when the credential's base_url is http://; its host (with port)
// must match the credential's allowed_hosts. Apply does not resolve or dial;
// Client adds the address check at dial time.
//
// Errors: EINVALID reason "credential_not_usable" when the credential has no
// allowed_hosts, an allowed_hosts entry or placement credvault cannot use, or
// when req or its URL is nil; EFORBIDDEN reason "egress_denied" when the
// scheme or the host is not allowed (the message names the host, never the
// value). req is left unchanged on error.
func Apply(req *http.Request, c *credvault.Credential, value credvault.Secret) error {
	pol, err := newPolicy(c)
	if err != nil {
		return err
	}
	if req == nil || req.URL == nil {
		return &credvault.Error{Code: credvault.EINVALID, Reason: "credential_not_usable", Message: "the outbound request has no URL"}
	}
	if err := pol.check(req.URL); err != nil {
		return err
	}
	pol.apply(req, value.Reveal())
	return nil
}

// policy is a credential's placement and host rules, parsed once per call so
// that redirects can be checked without parsing allowed_hosts again.
type policy struct {
	placement   string
	name        string // header or query parameter name
	prefix      string
	allowHTTP   bool
	hasBaseURL  bool
	patterns    []credvault.HostPattern
	headerIsSet bool   // placement header, bearer or basic
	username    string // placement basic
}

// newPolicy reads the credential. Errors: EINVALID credential_not_usable.
func newPolicy(c *credvault.Credential) (*policy, error) {
	if c == nil {
		return nil, notUsable("no credential was given", nil)
	}
	if len(c.AllowedHosts) == 0 {
		return nil, notUsable("the credential has no allowed_hosts, so it cannot be sent anywhere; add the API's host to allowed_hosts", nil)
	}
	patterns, err := credvault.ParseHostPatterns("allowed_hosts", c.AllowedHosts)
	if err != nil {
		return nil, notUsable("the credential's allowed_hosts cannot be used; fix them with PATCH /v1/credentials/{id}", err)
	}
	p := &policy{
		placement:  c.Placement,
		prefix:     c.ValuePrefix,
		patterns:   patterns,
		allowHTTP:  len(c.BaseURL) >= 7 && strings.EqualFold(c.BaseURL[:7], "http://"),
		hasBaseURL: c.BaseURL != "",
	}
	switch c.Placement {
	case credvault.PlacementHeader:
		if c.ParamName == "" {
			return nil, notUsable("the credential has placement header but no param_name", nil)
		}
		p.name, p.headerIsSet = http.CanonicalHeaderKey(c.ParamName), true
	case credvault.PlacementBearer:
		p.name, p.prefix, p.headerIsSet = "Authorization", "Bearer ", true
	case credvault.PlacementBasic:
		if credvault.CheckUsername(c.Placement, c.Username) != nil {
			return nil, notUsable("the credential has placement basic but no usable username", nil)
		}
		p.name, p.prefix, p.headerIsSet, p.username = "Authorization", "Basic ", true, c.Username
	case credvault.PlacementQuery:
		if c.ParamName == "" {
			return nil, notUsable("the credential has placement query but no param_name", nil)
		}
		p.name = c.ParamName
	default:
		return nil, notUsable("the credential's placement is not header, query, bearer or basic", nil)
	}
	return p, nil
}

func notUsable(msg string, cause error) *credvault.Error {
	return &credvault.Error{Code: credvault.EINVALID, Reason: "credential_not_usable", Message: msg, Err: cause}
}

// check applies the scheme and allowed_hosts rules to u. Errors: EFORBIDDEN
// egress_denied.
func (p *policy) check(u *url.URL) error {
	host := u.Host
	if host == "" {
		return &credvault.Error{Code: credvault.EFORBIDDEN, Reason: "egress_denied", Message: "the outbound request names no host; give an absolute https URL"}
	}
	switch {
	case strings.EqualFold(u.Scheme, "https"):
	case strings.EqualFold(u.Scheme, "http") && p.allowHTTP:
	case strings.EqualFold(u.Scheme, "http") && !p.hasBaseURL:
		return egressDenied("plain http to %s is refused: this credential has no base_url, so it is only sent over https", host)
	case strings.EqualFold(u.Scheme, "http"):
		return egressDenied("plain http to %s is refused: the credential's base_url uses https, so it is only sent over https", host)
	default:
		return egressDenied("only https (or http when the credential's base_url is http) may carry a credential; the request to %s uses another scheme", host)
	}
	if !credvault.HostAllowed(p.patterns, u.Scheme, host) {
		return egressDenied("destination %s is not in the credential's allowed_hosts", host)
	}
	return nil
}

// egressDenied builds the refusal for a host. The host is quoted and cut
// short, because it comes from the caller.
func egressDenied(format, host string) *credvault.Error {
	return &credvault.Error{Code: credvault.EFORBIDDEN, Reason: "egress_denied", Message: fmt.Sprintf(format, quoteHost(host))}
}

func quoteHost(h string) string {
	const max = 100
	if len(h) > max {
		h = h[:max] + "…"
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' {
			return '?'
		}
		return r
	}, h) + `"`
}

// apply places v into req, after the checks passed.
func (p *policy) apply(req *http.Request, v string) {
	p.place(req, v, p.headerValues(v))
}

// headerValues is the header value placement header, bearer or basic
// sends for v (as a one-element slice with no spare capacity, so that it
// can be shared by many requests: adding to it copies), or nil for
// placement query.
func (p *policy) headerValues(v string) []string {
	if !p.headerIsSet {
		return nil
	}
	if p.placement == credvault.PlacementBasic {
		v = basicCredentials(p.username, v)
	}
	return []string{p.prefix + v}
}

// place puts v into req: hv (from headerValues) as the header, or v as the
// query parameter.
func (p *policy) place(req *http.Request, v string, hv []string) {
	req.Host = ""
	if p.headerIsSet {
		if req.Header == nil {
			req.Header = make(http.Header)
		}
		deleteHeader(req.Header, p.name)
		deleteHeader(req.Trailer, p.name)
		req.Header[p.name] = hv
		return
	}
	req.URL.RawQuery = withoutParam(req.URL.RawQuery, p.name)
	if req.URL.RawQuery != "" {
		req.URL.RawQuery += "&"
	}
	req.URL.RawQuery += url.QueryEscape(p.name) + "=" + url.QueryEscape(v)
	req.URL.ForceQuery = false
}

// basicCredentials is the token of "Authorization: Basic" (RFC 7617 §2):
// base64 of the user-id, a colon and the password, as UTF-8 (the charset
// RFC 7617 §2.1 lets a server ask for, and what every API that takes a
// key as the password expects).
func basicCredentials(username, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(username + ":" + password))
}

// strip removes what apply would have placed (and whatever a caller or an
// upstream's Location put under the same name), for a redirect to another
// host.
func (p *policy) strip(req *http.Request) {
	deleteHeader(req.Header, p.name)
	deleteHeader(req.Header, "Authorization")
	if p.placement == credvault.PlacementQuery {
		req.URL.RawQuery = withoutParam(req.URL.RawQuery, p.name)
	}
}

// deleteHeader removes every key of h equal to name in any case: a header
// map built by hand may hold keys that are not in canonical form, and those
// are sent as they are.
func deleteHeader(h http.Header, name string) {
	for k := range h {
		if strings.EqualFold(k, name) {
			delete(h, k)
		}
	}
}

// withoutParam returns raw without the parameters whose decoded name equals
// name (ASCII case-insensitively); the others are kept byte for byte and in
// order.
func withoutParam(raw, name string) string {
	if raw == "" {
		return ""
	}
	var b strings.Builder
	rest, removed := raw, false
	for rest != "" {
		seg := rest
		if i := strings.IndexByte(rest, '&'); i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		key := seg
		if i := strings.IndexByte(seg, '='); i >= 0 {
			key = seg[:i]
		}
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		if strings.EqualFold(key, name) {
			removed = true
			continue
		}
		if seg == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(seg)
	}
	if !removed && !strings.Contains(raw, "&&") && raw[0] != '&' && raw[len(raw)-1] != '&' {
		return raw
	}
	return b.String()
}
