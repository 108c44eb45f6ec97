package credvault

import (
	"net/url"
	"testing"
)

func TestTargetURLStaysUnderBaseURL(t *testing.T) {
	c := &Credential{BaseURL: "https://api.example.com/tenants/42"}
	for rel, want := range map[string]string{
		"/items":        "https://api.example.com/tenants/42/items",
		"/items/":       "https://api.example.com/tenants/42/items/",
		"//evil.test/x": "https://api.example.com/tenants/42/evil.test/x",
		"/":             "https://api.example.com/tenants/42/",
		"/@evil.test/x": "https://api.example.com/tenants/42/@evil.test/x",
	} {
		u, err := targetURL(c, &url.URL{Path: rel}, "")
		if err != nil || u.String() != want {
			t.Errorf("%s: %v %v, want %s", rel, u, err, want)
		}
	}
	// Dot segments are refused outright (issue 10), whether or not they
	// would leave base_url's path.
	root := &Credential{BaseURL: "https://api.example.com"}
	for _, rel := range []string{"/../x", "/../../tenants/43", "/a/../../x", "/a/../b"} {
		for _, cred := range []*Credential{c, root} {
			if _, err := targetURL(cred, &url.URL{Path: rel}, ""); ErrorReason(err) != "invalid_path" {
				t.Errorf("%s: err = %v, want invalid_path", rel, err)
			}
		}
	}
}

func TestCheckProxyPath(t *testing.T) {
	for _, p := range []string{"/", "/v1/items", "/a%20b", "/100%25.txt", "/a;b=1/c", "/...", "/..a", "/a..", "/.well-known/x", "/%2e", "/x/.", "",
		"/caf%C3%A9", "/\u00e9t\u00e9/%E6%97%A5%E6%9C%AC", "/%F0%9F%94%91"} {
		if err := CheckProxyPath(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range []string{
		"/..", "/../x", "/x/..", "/..;/zz", "/..;jsessionid=1/zz", "/..%3b/zz", "/%2e%2e/x", "/%2E%2e%2fx",
		"/..%2fzz", "/..%5czz", "/..%5Czz", "/a\\b", "/..%252fzz", "/%2541", "/a%zz", "/a%2", "/..%20/x", "/.. /x",
		"/x%00", "/x%0d%0a", "/x%7f",
		// Issue 21 item 7: invalid UTF-8 after decoding, and look-alikes
		// that NFKC-normalise to a delimiter, are refused as ".." is.
		"/%ef%bc%8e%ef%bc%8e/x", "/x/%EF%BC%8E%EF%BC%8E", "/%ef%bc%8e", "/.%ef%bc%8e/x", "/%e2%80%a5/x", "/%e2%80%a6",
		"/%c0%ae%c0%ae/x", "/%c0%ae", "/%e0%80%ae", "/%c1%9c", "/x%ff", "/x%80", "/%ed%a0%80",
		"/%ef%bc%8f", "/%ef%bc%bc", "/..%ef%bc%8fx", "/%ef%b9%92%ef%b9%92/x", "/%ef%bc%9b", "/%ef%bc%85",
		"/\uff0e\uff0e/x",
	} {
		err := CheckProxyPath(p)
		if ErrorCode(err) != EINVALID || ErrorReason(err) != "invalid_path" {
			t.Errorf("%q: got %v, want invalid_path", p, err)
		}
	}
}

// TestPathScopeRefusesLookalikes is issue 21 item 7 through targetURL: a
// path-scoped base_url never lets a fullwidth or overlong dot through to
// the upstream, whether the escapes come in the path as sent or in an
// absolute X-Credvault-Target.
func TestPathScopeRefusesLookalikes(t *testing.T) {
	c := &Credential{BaseURL: "https://api.example.com/tenants/42"}
	for _, raw := range []string{"/%ef%bc%8e%ef%bc%8e/43", "/%c0%ae%c0%ae/43", "/%ef%bc%8e%ef%bc%8e%ef%bc%8f43"} {
		rel, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if u, err := targetURL(c, rel, ""); ErrorReason(err) != "invalid_path" {
			t.Errorf("%s: got %v %v, want invalid_path", raw, u, err)
		}
		if u, err := targetURL(&Credential{}, nil, "https://api.example.com/tenants/42"+raw); ErrorReason(err) != "invalid_path" {
			t.Errorf("target %s: got %v %v, want invalid_path", raw, u, err)
		}
	}
}
