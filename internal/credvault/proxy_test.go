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
	for _, p := range []string{"/", "/v1/items", "/a%20b", "/100%25.txt", "/a;b=1/c", "/...", "/..a", "/a..", "/.well-known/x", "/%2e", "/x/.", ""} {
		if err := CheckProxyPath(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range []string{
		"/..", "/../x", "/x/..", "/..;/zz", "/..;jsessionid=1/zz", "/..%3b/zz", "/%2e%2e/x", "/%2E%2e%2fx",
		"/..%2fzz", "/..%5czz", "/..%5Czz", "/a\\b", "/..%252fzz", "/%2541", "/a%zz", "/a%2", "/..%20/x", "/.. /x",
		"/x%00", "/x%0d%0a", "/x%7f",
	} {
		err := CheckProxyPath(p)
		if ErrorCode(err) != EINVALID || ErrorReason(err) != "invalid_path" {
			t.Errorf("%q: got %v, want invalid_path", p, err)
		}
	}
}
