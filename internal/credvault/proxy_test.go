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
		"/a/../b":       "https://api.example.com/tenants/42/b",
		"//evil.test/x": "https://api.example.com/tenants/42/evil.test/x",
		"/":             "https://api.example.com/tenants/42/",
		"/@evil.test/x": "https://api.example.com/tenants/42/@evil.test/x",
	} {
		u, err := targetURL(c, &url.URL{Path: rel}, "")
		if err != nil || u.String() != want {
			t.Errorf("%s: %v %v, want %s", rel, u, err, want)
		}
	}
	for _, rel := range []string{"/../x", "/../../tenants/43", "/a/../../x"} {
		if _, err := targetURL(c, &url.URL{Path: rel}, ""); ErrorReason(err) != "egress_denied" {
			t.Errorf("%s: err = %v, want egress_denied", rel, err)
		}
	}
	root := &Credential{BaseURL: "https://api.example.com"}
	if u, err := targetURL(root, &url.URL{Path: "/../../etc"}, ""); err != nil || u.Host != "api.example.com" || u.Path != "/etc" {
		t.Errorf("root base: %v %v", u, err)
	}
}
