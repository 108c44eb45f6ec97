package credvault

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzHostPatterns checks the allowed_hosts parser and matcher together: a
// pattern that parses prints to a text that parses back to itself, allows
// its own host, and HostAllowed only says yes for a host that names the
// pattern's host (or, for a wildcard, exactly one label under it) and port.
func FuzzHostPatterns(f *testing.F) {
	for _, s := range [][3]string{
		{"api.stripe.com", "https", "api.stripe.com"},
		{"*.sendgrid.com", "https", "API.sendgrid.com."},
		{"127.0.0.1:9000", "http", "127.0.0.1:9000"},
		{"[::1]:8443", "https", "[::1]:8443"},
		{"*.com", "https", "x.com"},
		{"*.github.io", "https", "a.github.io"},
		{"api.example.com", "https", "api.example.com:443"},
		{"api.example.com", "https", "api.example.com.evil.test"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, entry, scheme, host string) {
		ps, err := ParseHostPatterns("allowed_hosts", []string{entry})
		if err != nil {
			if ErrorCode(err) != EINVALID || !strings.Contains(ErrorMessage(err), "allowed_hosts") {
				t.Fatalf("%q: error %v", entry, err)
			}
			return
		}
		p := ps[0]
		again, err := ParseHostPatterns("allowed_hosts", []string{p.String()})
		if err != nil || again[0] != p {
			t.Fatalf("%q -> %q -> %v, %v", entry, p.String(), again, err)
		}
		if !p.Wildcard && !HostAllowed(ps, "https", p.String()) {
			t.Fatalf("%q does not allow its own host", entry)
		}
		if !HostAllowed(ps, scheme, host) {
			return
		}
		s := strings.ToLower(scheme)
		if s != "http" && s != "https" {
			t.Fatalf("scheme %q allowed", scheme)
		}
		u, err := url.Parse("x://" + host)
		if err != nil || u.Host != host {
			t.Fatalf("%q allows %q, which is not a plain host[:port]", entry, host)
		}
		name := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[s]
		}
		if p.Port != "" && port != p.Port || p.Port == "" && port != map[string]string{"http": "80", "https": "443"}[s] {
			t.Fatalf("%q allows %q on port %q", entry, host, port)
		}
		switch {
		case !p.Wildcard && name != p.Host:
			t.Fatalf("%q allows host %q", entry, host)
		case p.Wildcard:
			label, ok := strings.CutSuffix(name, "."+p.Host)
			if !ok || label == "" || strings.Contains(label, ".") {
				t.Fatalf("%q allows host %q", entry, host)
			}
		}
	})
}

// FuzzCredentialFields checks the validators of what goes into an
// outbound request: whatever they accept cannot split a header line or a
// query, and is within the documented limits.
func FuzzCredentialFields(f *testing.F) {
	for _, s := range [][4]string{
		{"header", "X-Api-Key", "Token ", "sk_live_0123456789"},
		{"query", "api_key", "", "a b/c+d=e&f"},
		{"bearer", "", "", "ünïcode-key-42"},
		{"header", "Content-Length", "x\r\n", "short"},
		{"header", "X-API-Key", "", "v\x00lue1234"},
		{"cookie", "a b", "\x7f", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	reserved := []string{"X-Api-Key", "Authorization"}
	f.Fuzz(func(t *testing.T, placement, name, prefix, value string) {
		if err := CheckParamName(placement, name, reserved); err == nil {
			switch placement {
			case "header":
				if name == "" || len(name) > 64 || strings.Trim(name, "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
					t.Fatalf("header name %q accepted", name)
				}
				lower := strings.ToLower(name)
				if _, ok := reservedHeaders[lower]; ok || strings.HasPrefix(lower, "x-credvault-") || lower == "x-api-key" || lower == "authorization" {
					t.Fatalf("reserved header %q accepted", name)
				}
			case "query":
				if name == "" || len(name) > 64 || strings.Trim(name, "_.-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
					t.Fatalf("query name %q accepted", name)
				}
			case "bearer":
				if name != "" {
					t.Fatalf("bearer with param_name %q accepted", name)
				}
			default:
				t.Fatalf("placement %q accepted", placement)
			}
		} else if ErrorCode(err) != EINVALID {
			t.Fatalf("CheckParamName: %v", err)
		}
		if err := CheckValuePrefix(placement, prefix); err == nil && prefix != "" {
			if placement != "header" || len(prefix) > 64 {
				t.Fatalf("prefix %q accepted for %q", prefix, placement)
			}
			for i := 0; i < len(prefix); i++ {
				if prefix[i] < 0x20 || prefix[i] > 0x7e {
					t.Fatalf("prefix %q accepted", prefix)
				}
			}
		}
		err := CheckSecretValue(value)
		if err == nil {
			if len(value) < MinSecretValueLen || len(value) > 8192 || !utf8.ValidString(value) {
				t.Fatalf("value of %d bytes accepted", len(value))
			}
			for i := 0; i < len(value); i++ {
				if value[i] < 0x20 || value[i] == 0x7f {
					t.Fatalf("value with control byte %#x accepted", value[i])
				}
			}
			return
		}
		if ErrorCode(err) != EINVALID || !strings.Contains(ErrorMessage(err), `"value"`) {
			t.Fatalf("CheckSecretValue: %v", err)
		}
		if len(value) >= 12 && strings.Contains(ErrorMessage(err), value) {
			t.Fatalf("the value is in the error: %v", err)
		}
	})
}

// FuzzTargetURL builds proxy targets from any base_url and caller path the
// way the proxy does, and checks that the result always goes to base_url's
// scheme and host, stays under its path, and carries no dot segment,
// backslash or double encoding an upstream could read differently.
func FuzzTargetURL(f *testing.F) {
	for _, s := range [][3]string{
		{"https://api.example.com/tenants/42", "/items/1", "a=1"},
		{"https://api.example.com/api", "/..;/zz", ""},
		{"http://127.0.0.1:9000/api/", "/..%5czz", ""},
		{"https://api.example.com", "//evil.test/x", "x=%2F"},
		{"https://api.example.com/a%20b", "/%2e%2e%2fx", ""},
		{"https://api.example.com/v1", "/@evil.test", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, baseURL, rawPath, query string) {
		if checkBaseURL(baseURL, nil) != nil {
			return
		}
		base, _ := url.Parse(baseURL)
		// As the HTTP layer builds it from the raw request path.
		p, err := url.PathUnescape(rawPath)
		if err != nil {
			return
		}
		rel := &url.URL{Path: p, RawQuery: query}
		if rawPath != rel.EscapedPath() {
			rel.RawPath = rawPath
		}
		u, err := targetURL(&Credential{BaseURL: baseURL}, rel, "")
		if err != nil {
			if c := ErrorCode(err); c != EINVALID && c != EFORBIDDEN {
				t.Fatalf("%q + %q: %v", baseURL, rawPath, err)
			}
			return
		}
		sent, err := url.Parse(u.String())
		if err != nil || sent.Host != base.Host || sent.Scheme != base.Scheme || sent.User != nil {
			t.Fatalf("%q + %q goes to %q", baseURL, rawPath, u.String())
		}
		prefix := strings.TrimSuffix(base.Path, "/")
		if sent.Path != prefix && !strings.HasPrefix(sent.Path, prefix+"/") {
			t.Fatalf("%q + %q leaves the base path: %q", baseURL, rawPath, sent.Path)
		}
		if err := CheckProxyPath(u.EscapedPath()); err != nil {
			t.Fatalf("%q + %q sends %q: %v", baseURL, rawPath, u.EscapedPath(), err)
		}
		if sent.RawQuery != strings.ReplaceAll(query, "#", "%23") {
			t.Fatalf("query %q became %q", query, sent.RawQuery)
		}
	})
}
