package credvault

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

// targetURLBefore is targetURL as it was before it wrote into a given URL
// and skipped building paths it already had (issue 24): the reference
// TestTargetURLIntoMatchesBefore compares with.
func targetURLBefore(c *Credential, rel *url.URL) (*url.URL, error) {
	if err := CheckProxyPath(rel.EscapedPath()); err != nil {
		return nil, err
	}
	base, err := c.baseURL()
	if err != nil {
		return nil, Wrap(EINTERNAL, err, "stored base_url does not parse")
	}
	u := *base
	prefix := strings.TrimSuffix(base.Path, "/")
	u.Path = prefix + "/" + strings.TrimPrefix(rel.Path, "/")
	if rel.RawPath != "" {
		u.RawPath = strings.TrimSuffix(base.EscapedPath(), "/") + "/" + strings.TrimPrefix(rel.RawPath, "/")
	}
	cleaned := path.Clean(u.Path)
	if strings.HasSuffix(u.Path, "/") && cleaned != "/" {
		cleaned += "/"
	}
	if cleaned != u.Path {
		u.Path, u.RawPath = cleaned, ""
	}
	if prefix != "" && u.Path != prefix && !strings.HasPrefix(u.Path, prefix+"/") {
		return nil, &Error{Code: EFORBIDDEN, Reason: "egress_denied", Message: "the path leaves the credential's base_url path"}
	}
	for i := 0; i < len(rel.RawQuery); i++ {
		if c := rel.RawQuery[i]; c <= ' ' || c == 0x7f {
			return nil, Errorf(EINVALID, "the query string holds a space or control character; percent-encode it")
		}
	}
	u.RawQuery = strings.ReplaceAll(rel.RawQuery, "#", "%23")
	return &u, nil
}

// TestTargetURLIntoMatchesBefore checks targetURLInto, writing over the
// relative URL itself as forward does, against targetURLBefore: the same
// URL or the same refusal for every base_url and path, and the relative
// URL left as it was on a refusal.
func TestTargetURLIntoMatchesBefore(t *testing.T) {
	bases := []string{"http://127.0.0.1:8080", "http://127.0.0.1:8080/", "https://api.example.com/tenants/42",
		"https://api.example.com/tenants/42/", "https://api.example.com/a%20b/", "https://api.example.com/v1/x/"}
	paths := []string{"", "/", "//", "/v1/balance", "/v1/items/", "v1/items", "/a//b/", "/a/./b", "/a/b/.", "/./",
		"/a%2Fb", "/a%20b/", "/%7e", "/..", "/a/../b", "/tenants/42x", "/x;y/", "/caf%C3%A9/"}
	queries := []string{"", "a=1&b=2", "q=#frag", "bad query", "x=%41"}
	for _, b := range bases {
		c := &Credential{BaseURL: b}
		for _, raw := range paths {
			p, err := url.PathUnescape(raw)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range queries {
				rel := url.URL{Path: p, RawQuery: q}
				if raw != rel.EscapedPath() {
					rel.RawPath = raw
				}
				want, wantErr := targetURLBefore(c, &rel)
				got := rel
				err := targetURLInto(&got, c, &got, "")
				switch {
				case (err == nil) != (wantErr == nil) || ErrorReason(err) != ErrorReason(wantErr) || ErrorCode(err) != ErrorCode(wantErr):
					t.Errorf("%s + %q ? %q: error %v, want %v", b, raw, q, err, wantErr)
				case err != nil && got != rel:
					t.Errorf("%s + %q ? %q: refused, but the URL changed to %+v", b, raw, q, got)
				case err == nil && got != *want:
					t.Errorf("%s + %q ? %q: %+v, want %+v", b, raw, q, got, *want)
				}
			}
		}
	}
}
