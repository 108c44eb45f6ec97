package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestConsoleFormsRefuseHiddenCharacters: the console's forms refuse a
// name, agent or tag holding a control, bidi or other invisible character
// by the API's rule: 400, the form shown again with a message naming the
// field and the code point, the field marked aria-invalid, and no row of
// any table written.
func TestConsoleFormsRefuseHiddenCharacters(t *testing.T) {
	t.Parallel()
	cl, inst, ownerKey := consoleCluster(t)
	b := newBrowserish(t, inst.url)
	if p := b.signInWithLink(newLink(t, cl, inst, ownerKey, whoamiUser(t, cl, inst, ownerKey))); p.status != 303 {
		t.Fatalf("sign in: %d %s", p.status, p.body)
	}
	r := cl.as(ownerKey, "POST", inst.url+"/v1/credentials", map[string]any{"name": "upstream", "placement": "bearer", "value": "sk-plain-123456", "base_url": "https://api.example.com"})
	if r.status != 201 {
		t.Fatalf("credential: %d %s", r.status, r.body)
	}
	cred := r.json(t)["id"].(string)
	tok := b.csrf("/credentials/new")

	n := 0
	bad := func() (string, rune) {
		r := hiddenRunes[n%len(hiddenRunes)]
		if r == '\n' { // spaces at the ends are trimmed; inside a name it still counts
			r = '\t'
		}
		n++
		return "na" + string(r) + "me", r
	}
	cases := []struct {
		path, field, input string // input: the id of the field's <input>
		form               func(v string) url.Values
	}{
		{"/credentials", "name", "name", func(v string) url.Values {
			return url.Values{"custom": {"1"}, "name": {v}, "placement": {"bearer"}, "value": {"sk-plain-654321"}, "base_url": {"https://api.example.com"}}
		}},
		{"/credentials/" + cred + "/settings", "name", "s-name", func(v string) url.Values { return url.Values{"name": {v}} }},
		{"/api-keys", "name", "k-name", func(v string) url.Values {
			return url.Values{"name": {v}, "scopes": {"keys:read"}, "expires_in": {"30d"}}
		}},
		{"/api-keys", "agent", "k-agent", func(v string) url.Values {
			return url.Values{"name": {"j"}, "scopes": {"keys:read"}, "expires_in": {"30d"}, "format": {"jwt"}, "agent": {v}}
		}},
		{"/api-keys", "tags", "k-tags", func(v string) url.Values {
			return url.Values{"name": {"t"}, "scopes": {"keys:read"}, "expires_in": {"30d"}, "tags": {"team=" + v}}
		}},
		{"/integrations", "name", "i-name", func(v string) url.Values { return url.Values{"name": {v}} }},
		{"/integrations", "agent", "i-agent", func(v string) url.Values { return url.Values{"name": {"i"}, "agent": {v}} }},
		{"/integrations", "tags", "i-tags", func(v string) url.Values { return url.Values{"name": {"i2"}, "tags": {v + "=x"}} }},
		{"/members", "name", "m-name", func(v string) url.Values {
			return url.Values{"email": {"n@acme.test"}, "name": {v}, "role": {"member"}}
		}},
		{"/endpoints", "name", "e-name", func(v string) url.Values { return url.Values{"name": {v}, "auth_mode": {"none"}} }},
	}
	tables := []string{"credentials", "api_keys", "integrations", "users", "endpoints", "audit_events"}
	before := tableDigests(t, cl.dbURL, tables)
	for _, tc := range cases {
		v, r := bad()
		form := tc.form(v)
		form.Set("csrf", tok)
		p := b.post(tc.path, form, nil)
		msg := alertOf(p.body)
		want := fmt.Sprintf("field %q holds U+%04X", tc.field, r)
		if p.status != 400 || !strings.Contains(msg, want) {
			t.Errorf("POST %s %s=%q: %d %q, want 400 with %q", tc.path, tc.field, v, p.status, msg, want)
			continue
		}
		if !regexp.MustCompile(`id="` + tc.input + `"[^>]*aria-invalid="true"`).MatchString(p.body) {
			t.Errorf("POST %s: the form is not shown again with #%s marked aria-invalid", tc.path, tc.input)
		}
	}
	after := tableDigests(t, cl.dbURL, tables)
	for i, table := range tables {
		if before[i] != after[i] {
			t.Errorf("table %s changed during the refused forms: %s before, %s after", table, before[i], after[i])
		}
	}
	t.Logf("%d console forms refused", len(cases))
}
