package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"credvault/internal/postgres"
)

// hiddenRunes are characters no human-readable name may hold
// (credvault.HiddenRune): C0, DEL and C1 controls, bidirectional overrides
// and isolates, a zero-width space, a line separator, a Hangul filler.
var hiddenRunes = []rune{'\x1b', '\u202e', '\x7f', '\u2066', '\u009b', '\u200b', '\u2069', '\u2028', '\u202a', '\u3164', '\n', '\ufeff'}

// TestNamesRefuseHiddenCharacters: every name-like field of the JSON API
// (credential, key, integration, member, endpoint and OAuth app names, a
// key's or integration's agent and tags, a webhook's description), on
// create and on update, answers 400 naming the field and the code point
// when it holds a control, bidi or other invisible character, and no row
// of any table it could write changes.
func TestNamesRefuseHiddenCharacters(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"})
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	must := func(r response, what string) string {
		t.Helper()
		if r.status != 201 && r.status != 200 {
			t.Fatalf("%s: %d %s", what, r.status, r.body)
		}
		return r.json(t)["id"].(string)
	}
	cred := must(cl.as(owner, "POST", a.url+"/v1/credentials", map[string]any{"name": "upstream", "placement": "bearer", "value": "sk-plain-123456", "base_url": "https://api.example.com"}), "credential")
	key := must(cl.as(owner, "POST", a.url+"/v1/api-keys", map[string]any{"name": "k", "scopes": []string{"keys:read"}}), "key")
	integ := must(cl.as(owner, "POST", a.url+"/v1/integrations", map[string]any{"name": "bot"}), "integration")
	user := must(cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "m@acme.test", "name": "Mo", "role": "member"}), "user")
	ep := must(cl.as(owner, "POST", a.url+"/v1/endpoints", map[string]any{"name": "orders", "auth_mode": "private"}), "endpoint")
	hook := must(cl.as(owner, "POST", a.url+"/v1/webhooks", map[string]any{"url": "http://127.0.0.1:9/hook", "event_types": []string{"*"}}), "webhook")
	app := must(cl.as(owner, "POST", a.url+"/v1/oauth-apps", map[string]any{"name": "app", "authorize_url": "http://127.0.0.1:9/authorize", "token_url": "http://127.0.0.1:9/token", "client_id": "cid", "client_secret": "csecret"}), "oauth app")

	n := 0
	bad := func() (string, rune) { // a name that is fine but for one hidden character
		r := hiddenRunes[n%len(hiddenRunes)]
		n++
		return "na" + string(r) + "me", r
	}
	type tcase struct {
		method, path, field string
		body                func(v string) map[string]any
	}
	cases := []tcase{
		{"POST", "/v1/credentials", "name", func(v string) map[string]any {
			return map[string]any{"name": v, "placement": "bearer", "value": "sk-plain-654321", "base_url": "https://api.example.com"}
		}},
		{"PATCH", "/v1/credentials/" + cred, "name", func(v string) map[string]any { return map[string]any{"name": v} }},
		{"POST", "/v1/api-keys", "name", func(v string) map[string]any { return map[string]any{"name": v, "scopes": []string{"keys:read"}} }},
		{"POST", "/v1/api-keys", "agent", func(v string) map[string]any {
			return map[string]any{"name": "j", "scopes": []string{"keys:read"}, "format": "jwt", "agent": v}
		}},
		{"POST", "/v1/api-keys", "tags", func(v string) map[string]any {
			return map[string]any{"name": "t", "scopes": []string{"keys:read"}, "tags": map[string]string{"team": v}}
		}},
		{"POST", "/v1/api-keys", "tags", func(v string) map[string]any {
			return map[string]any{"name": "t", "scopes": []string{"keys:read"}, "tags": map[string]string{v: "x"}}
		}},
		{"PATCH", "/v1/api-keys/" + key, "name", func(v string) map[string]any { return map[string]any{"name": v} }},
		{"PATCH", "/v1/api-keys/" + key, "tags", func(v string) map[string]any { return map[string]any{"tags": map[string]string{"team": v}} }},
		{"POST", "/v1/integrations", "name", func(v string) map[string]any { return map[string]any{"name": v} }},
		{"POST", "/v1/integrations", "agent", func(v string) map[string]any { return map[string]any{"name": "i", "agent": v} }},
		{"POST", "/v1/integrations", "tags", func(v string) map[string]any { return map[string]any{"name": "i2", "tags": map[string]string{v: "x"}} }},
		{"PATCH", "/v1/integrations/" + integ, "name", func(v string) map[string]any { return map[string]any{"name": v} }},
		{"PATCH", "/v1/integrations/" + integ, "agent", func(v string) map[string]any { return map[string]any{"agent": v} }},
		{"PATCH", "/v1/integrations/" + integ, "tags", func(v string) map[string]any { return map[string]any{"tags": map[string]string{"k": v}} }},
		{"POST", "/v1/users", "name", func(v string) map[string]any {
			return map[string]any{"email": "n@acme.test", "name": v, "role": "member"}
		}},
		{"PATCH", "/v1/users/" + user, "name", func(v string) map[string]any { return map[string]any{"name": v} }},
		{"POST", "/v1/endpoints", "name", func(v string) map[string]any { return map[string]any{"name": v, "auth_mode": "none"} }},
		{"PATCH", "/v1/endpoints/" + ep, "name", func(v string) map[string]any { return map[string]any{"name": v} }},
		{"POST", "/v1/webhooks", "description", func(v string) map[string]any {
			return map[string]any{"url": "http://127.0.0.1:9/other", "event_types": []string{"*"}, "description": v}
		}},
		{"PATCH", "/v1/webhooks/" + hook, "description", func(v string) map[string]any { return map[string]any{"description": v} }},
		{"POST", "/v1/oauth-apps", "name", func(v string) map[string]any {
			return map[string]any{"name": v, "token_url": "http://127.0.0.1:9/token", "client_id": "c2", "client_secret": "s2"}
		}},
		{"PATCH", "/v1/oauth-apps/" + app, "name", func(v string) map[string]any { return map[string]any{"name": v} }},
	}
	tables := []string{"credentials", "api_keys", "integrations", "users", "endpoints", "webhooks", "oauth_apps", "audit_events"}
	before := tableDigests(t, cl.dbURL, tables)
	for _, tc := range cases {
		v, r := bad()
		res := cl.as(owner, tc.method, a.url+tc.path, tc.body(v))
		msg := ""
		if res.status == 400 {
			msg = res.errMessage(t)
		}
		want := fmt.Sprintf("field %q holds U+%04X", tc.field, r)
		if res.status != 400 || !strings.Contains(msg, want) {
			t.Errorf("%s %s %s=%q: %d %s, want 400 with %q", tc.method, tc.path, tc.field, v, res.status, res.body, want)
		}
		if strings.ContainsRune(msg, r) {
			t.Errorf("%s %s: the message echoes the refused character: %q", tc.method, tc.path, msg)
		}
	}
	after := tableDigests(t, cl.dbURL, tables)
	for i, table := range tables {
		if before[i] != after[i] {
			t.Errorf("table %s changed during the refusals: %s before, %s after", table, before[i], after[i])
		}
	}
	t.Logf("%d refusals; digests of %d tables compared before and after", len(cases), len(tables))

	// Printable text (accents, CJK, emoji with its variation selector)
	// is still a name.
	for _, name := range []string{"Zoë's café", "東京 bot", "rocket 🚀", "heart ❤️"} {
		if r := cl.as(owner, "PATCH", a.url+"/v1/integrations/"+integ, map[string]any{"name": name}); r.status != 200 {
			t.Errorf("PATCH integration name %q: %d %s, want 200", name, r.status, r.body)
		}
	}
}

// tableDigests is, for each table, its row count and an md5 of all its
// rows' text but last_used_at (which the caller's own key moves): equal
// digests mean nothing was inserted, changed or deleted.
func tableDigests(t *testing.T, dbURL string, tables []string) []string {
	t.Helper()
	db, err := postgres.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := make([]string, len(tables))
	for i, table := range tables {
		q := `SELECT count(*)::text || '/' || coalesce(md5(string_agg((to_jsonb(r) - 'last_used_at')::text, '|' ORDER BY (to_jsonb(r) - 'last_used_at')::text)), '-') FROM ` + table + ` r`
		if err := sqlx.GetContext(context.Background(), db, &out[i], q); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
