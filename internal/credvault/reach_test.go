package credvault

import (
	"slices"
	"testing"
)

func TestWidened(t *testing.T) {
	base := Credential{Placement: PlacementHeader, ParamName: "X-Key", ValuePrefix: "Token ",
		BaseURL: "https://api.example.com/tenants/42", AllowedHosts: []string{"api.example.com", "*.example.org", "127.0.0.1:9000"}}
	cases := []struct {
		name string
		edit func(c *Credential)
		want []string
	}{
		{"nothing", func(c *Credential) {}, []string{}},
		{"placement", func(c *Credential) { c.Placement = PlacementQuery }, []string{"placement"}},
		{"param_name", func(c *Credential) { c.ParamName = "X-Other" }, []string{"param_name"}},
		{"value_prefix", func(c *Credential) { c.ValuePrefix = "" }, []string{"value_prefix"}},
		{"username", func(c *Credential) { c.Username = "AC-other" }, []string{"username"}},
		{"to basic with a username", func(c *Credential) {
			c.Placement, c.ParamName, c.ValuePrefix, c.Username = PlacementBasic, "", "", "AC1"
		},
			[]string{"placement", "param_name", "value_prefix", "username"}},
		{"base_url other host", func(c *Credential) { c.BaseURL = "https://evil.example.net/tenants/42" }, []string{"base_url"}},
		{"base_url other scheme", func(c *Credential) { c.BaseURL = "http://api.example.com/tenants/42" }, []string{"base_url"}},
		{"base_url other port", func(c *Credential) { c.BaseURL = "https://api.example.com:8443/tenants/42" }, []string{"base_url"}},
		{"base_url dropped", func(c *Credential) { c.BaseURL = "" }, []string{"base_url"}},
		{"base_url path up", func(c *Credential) { c.BaseURL = "https://api.example.com/tenants" }, []string{"base_url"}},
		{"base_url path sideways", func(c *Credential) { c.BaseURL = "https://api.example.com/tenants/43" }, []string{"base_url"}},
		{"base_url dot segments", func(c *Credential) { c.BaseURL = "https://api.example.com/tenants/42/../../x" }, []string{"base_url"}},
		{"base_url path down", func(c *Credential) { c.BaseURL = "https://api.example.com/tenants/42/v2" }, nil},
		{"base_url host case", func(c *Credential) { c.BaseURL = "https://API.example.com/tenants/42" }, nil},
		{"host added", func(c *Credential) { c.AllowedHosts = append(c.AllowedHosts, "evil.example.net") }, []string{"allowed_hosts"}},
		{"host replaced", func(c *Credential) { c.AllowedHosts = []string{"api.example.com", "evil.example.net"} }, []string{"allowed_hosts"}},
		{"port added", func(c *Credential) { c.AllowedHosts = []string{"api.example.com:8443"} }, []string{"allowed_hosts"}},
		{"wildcard widened", func(c *Credential) { c.AllowedHosts = []string{"api.example.com", "*.example.com"} }, []string{"allowed_hosts"}},
		{"host removed", func(c *Credential) { c.AllowedHosts = []string{"api.example.com"} }, nil},
		{"all removed", func(c *Credential) { c.AllowedHosts = []string{} }, nil},
		{"wildcard narrowed to a host", func(c *Credential) { c.AllowedHosts = []string{"api.example.com", "mail.example.org"} }, nil},
		{"two levels under a wildcard", func(c *Credential) { c.AllowedHosts = []string{"a.b.example.org"} }, []string{"allowed_hosts"}},
		{"everything", func(c *Credential) {
			c.Placement, c.BaseURL, c.AllowedHosts = PlacementBearer, "https://evil.example.net", []string{"evil.example.net"}
		}, []string{"placement", "base_url", "allowed_hosts"}},
	}
	for _, tc := range cases {
		if tc.want == nil {
			tc.want = []string{}
		}
		t.Run(tc.name, func(t *testing.T) {
			after := base
			after.AllowedHosts = slices.Clone(base.AllowedHosts)
			tc.edit(&after)
			if got := Widened(&base, &after); !slices.Equal(got, tc.want) || got == nil {
				t.Errorf("got %#v, want %v", got, tc.want)
			}
		})
	}
}

// TestWidenedFromNoBaseURL is issue 21 item 1: a credential without a
// base_url never travels in cleartext, so setting any base_url, http or
// https, is a change of scheme, host and path scope that needs the value.
func TestWidenedFromNoBaseURL(t *testing.T) {
	none := Credential{Placement: PlacementBearer, AllowedHosts: []string{"api.example.com"}}
	for _, u := range []string{"http://api.example.com", "https://api.example.com", "https://api.example.com/v1", "HTTP://API.EXAMPLE.COM/"} {
		after := none
		after.BaseURL = u
		if got := Widened(&none, &after); !slices.Equal(got, []string{"base_url"}) {
			t.Errorf("%s from none: got %v, want [base_url]", u, got)
		}
	}
}

func TestResolveScopeRules(t *testing.T) {
	if HasScope([]string{ScopeAdmin}, ScopeCredentialsResolve) {
		t.Error("admin implies credentials:resolve")
	}
	if !HasScope([]string{ScopeAdmin}, ScopeCredentialsUse) || !HasScope([]string{ScopeCredentialsResolve}, ScopeCredentialsResolve) {
		t.Error("admin or an explicit scope no longer grants")
	}
	if err := CheckKeyScopes(KeyKindUser, []string{ScopeCredentialsUse, ScopeCredentialsResolve}); ErrorCode(err) != EINVALID {
		t.Errorf("user key with resolve: %v", err)
	}
	if err := CheckKeyScopes(KeyKindService, []string{ScopeCredentialsResolve}); err != nil {
		t.Errorf("service key with resolve: %v", err)
	}
	owner := &Principal{Kind: KeyKindUser, Role: RoleOwner, Scopes: []string{ScopeAdmin}}
	admin := &Principal{Kind: KeyKindUser, Role: RoleAdmin, Scopes: []string{ScopeAdmin}}
	svc := &Principal{Kind: KeyKindService, Scopes: []string{ScopeAdmin}}
	runner := &Principal{Kind: KeyKindService, Scopes: []string{ScopeKeysWrite, ScopeCredentialsResolve}}
	for _, tc := range []struct {
		p    *Principal
		want int
	}{{owner, 0}, {admin, 1}, {svc, 1}, {runner, 0}} {
		if got := ungrantable(tc.p, []string{ScopeCredentialsResolve}); len(got) != tc.want {
			t.Errorf("%+v grants resolve: missing %v", tc.p, got)
		}
	}
	for _, tc := range []struct {
		role Role
		s    []string
		want bool
	}{
		{RoleOwner, []string{ScopeCredentialsResolve}, true}, {RoleAdmin, []string{ScopeCredentialsResolve}, false},
		{RoleAdmin, []string{ScopeAdmin}, true}, {RoleMember, []string{ScopeKeysRead}, false},
	} {
		if got := RoleAllowsServiceKey(tc.role, tc.s); got != tc.want {
			t.Errorf("RoleAllowsServiceKey(%s, %v) = %v, want %v", tc.role, tc.s, got, tc.want)
		}
	}
}

func TestCapToCreator(t *testing.T) {
	rl := func(n, w int) *RateLimit { return &RateLimit{Requests: n, WindowSeconds: w} }
	parent := &APIKey{RateLimit: rl(5, 60)}
	for _, tc := range []struct {
		child *RateLimit
		ok    bool
	}{{nil, true}, {rl(5, 60), true}, {rl(1, 60), true}, {rl(5, 120), true}, {rl(6, 60), false}, {rl(5, 30), false}, {rl(10, 120), false}} {
		k := &APIKey{RateLimit: tc.child}
		err := capToCreator(k, parent, "", false)
		if (err == nil) != tc.ok {
			t.Errorf("child %v: %v", tc.child, err)
		}
		if err == nil && (k.RateLimit == nil || looserRate(k.RateLimit, parent.RateLimit)) {
			t.Errorf("child %v kept %v", tc.child, k.RateLimit)
		}
		if err != nil && ErrorReason(err) != "exceeds_creator_key" {
			t.Errorf("reason %q", ErrorReason(err))
		}
	}
}
