package main

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// keyIDs returns the ids of a listing's page, in order, and its next cursor.
func keyIDs(t *testing.T, r response) ([]string, string) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	m := r.json(t)
	var ids []string
	for _, it := range m["data"].([]any) {
		ids = append(ids, it.(map[string]any)["id"].(string))
	}
	next, _ := m["next_cursor"].(string)
	return ids, next
}

// TestKeyModeAndEnvironmentLabel: mode is the prefix, environment a free
// label; an old client's environment "test" still makes a test key.
func TestKeyModeAndEnvironmentLabel(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	cases := []struct {
		body              map[string]any
		wantMode, wantEnv string
	}{
		{map[string]any{"mode": "test", "environment": "staging"}, "test", "staging"},
		{map[string]any{"environment": "production"}, "live", "production"},
		{map[string]any{"environment": "test"}, "test", "test"}, // a client from before the split
		{map[string]any{"environment": "live"}, "live", "live"},
		{map[string]any{}, "live", ""},
	}
	for _, tc := range cases {
		body := map[string]any{"name": "k", "scopes": []string{"keys:read"}}
		for k, v := range tc.body {
			body[k] = v
		}
		r := cl.as(owner, "POST", a.url+"/v1/api-keys", body)
		if r.status != 201 {
			t.Fatalf("%v: %d %s", tc.body, r.status, r.body)
		}
		m := r.json(t)
		if m["mode"] != tc.wantMode || m["environment"] != tc.wantEnv || !strings.HasPrefix(m["key"].(string), "cv_"+tc.wantMode+"_") {
			t.Errorf("%v: mode %v environment %v key %.8s…, want %s %q", tc.body, m["mode"], m["environment"], m["key"], tc.wantMode, tc.wantEnv)
		}
	}
	// mode cannot be changed afterwards: PATCH does not know the field.
	id, _ := cl.createKey(a, owner, map[string]any{"name": "k", "scopes": []string{"keys:read"}})
	if r := cl.as(owner, "PATCH", a.url+"/v1/api-keys/"+id, map[string]any{"mode": "test"}); r.status != 400 || !strings.Contains(r.errMessage(t), `unknown field "mode"`) {
		t.Errorf("PATCH mode: %d %s", r.status, r.body)
	}
}

// TestAPIKeyPatch changes every field a PATCH may change, and checks that
// the narrowed key is refused at once for what it lost.
func TestAPIKeyPatch(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	later := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	id, key := cl.createKey(a, owner, map[string]any{"name": "ci", "scopes": []string{"keys:read", "users:read"},
		"environment": "staging", "tags": map[string]string{"team": "ops"}, "expires_at": later.Format(time.RFC3339),
		"rate_limit": map[string]any{"requests": 100, "window_seconds": 60}})
	if r := cl.as(key, "GET", a.url+"/v1/users", nil); r.status != 200 {
		t.Fatalf("before: %d", r.status)
	}
	sooner := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	steps := []struct {
		body  map[string]any
		check func(m map[string]any) bool
	}{
		{map[string]any{"name": " deploy bot "}, func(m map[string]any) bool { return m["name"] == "deploy bot" }},
		{map[string]any{"environment": "production"}, func(m map[string]any) bool { return m["environment"] == "production" }},
		{map[string]any{"tags": map[string]string{"team": "platform", "cost": "42"}}, func(m map[string]any) bool {
			return fmt.Sprint(m["tags"]) == "map[cost:42 team:platform]"
		}},
		{map[string]any{"scopes": []string{"keys:read"}}, func(m map[string]any) bool { return fmt.Sprint(m["scopes"]) == "[keys:read]" }},
		{map[string]any{"rate_limit": map[string]any{"requests": 10, "window_seconds": 60}}, func(m map[string]any) bool {
			return fmt.Sprint(m["rate_limit"]) == "map[requests:10 window_seconds:60]"
		}},
		{map[string]any{"expires_in": "7d"}, func(m map[string]any) bool {
			at, _ := time.Parse(time.RFC3339Nano, m["expires_at"].(string))
			return at.Before(later) && at.After(sooner)
		}},
		{map[string]any{"expires_at": sooner.Format(time.RFC3339)}, func(m map[string]any) bool { return m["expires_at"] == sooner.Format(time.RFC3339) }},
	}
	for _, st := range steps {
		r := cl.as(owner, "PATCH", a.url+"/v1/api-keys/"+id, st.body)
		if r.status != 200 || !st.check(r.json(t)) {
			t.Fatalf("PATCH %v: %d %s", st.body, r.status, r.body)
		}
		if got := cl.as(owner, "GET", a.url+"/v1/api-keys/"+id, nil).json(t); !st.check(got) {
			t.Fatalf("PATCH %v not stored: %v", st.body, got)
		}
	}
	// The dropped scope is refused at once, and the lower limit applies.
	if r := cl.as(key, "GET", a.url+"/v1/users", nil); r.status != 403 {
		t.Fatalf("dropped scope still works: %d", r.status)
	}
	if r := cl.as(key, "GET", a.url+"/v1/whoami", nil); r.header.Get("RateLimit-Limit") != "10" {
		t.Fatalf("RateLimit-Limit %q, want 10", r.header.Get("RateLimit-Limit"))
	}
	// Every change is audited, without the key.
	audit := cl.as(owner, "GET", a.url+"/v1/audit?action=api_key.update&resource_id="+id, nil)
	if n := len(audit.json(t)["data"].([]any)); n != len(steps) {
		t.Errorf("%d api_key.update events, want %d", n, len(steps))
	}
	if n := strings.Count(cl.allResponses(), key); n != 1 {
		t.Errorf("the key appears in %d responses, want 1 (its creation)", n)
	}
}

// TestAPIKeyPatchRefusals: every widening and every bad value is a 400
// naming the field, and nothing is written.
func TestAPIKeyPatchRefusals(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	_, other := cl.bootstrap(a, "globex")
	expires := time.Now().Add(10 * 24 * time.Hour).UTC().Truncate(time.Second)
	id, _ := cl.createKey(a, owner, map[string]any{"name": "ci", "scopes": []string{"keys:read", "users:read"},
		"expires_at": expires.Format(time.RFC3339), "rate_limit": map[string]any{"requests": 100, "window_seconds": 60}})
	neverID, _ := cl.createKey(a, owner, map[string]any{"name": "open", "scopes": []string{"keys:read"}})
	revokedID, _ := cl.createKey(a, owner, map[string]any{"name": "gone", "scopes": []string{"keys:read"}})
	cl.as(owner, "POST", a.url+"/v1/api-keys/"+revokedID+"/revoke", nil)
	// A JWT key's scopes and expiry are claims of its signed token, which
	// offline verifiers trust: narrowing only credvault's record would
	// leave them accepting the wider key.
	jwtID, _ := cl.createKey(a, owner, map[string]any{"name": "signed", "format": "jwt", "scopes": []string{"keys:read", "users:read"}, "expires_in": "30d"})
	mres := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "m@acme.test", "role": "member"})
	_, member := cl.createKey(a, owner, map[string]any{"name": "m", "scopes": []string{"keys:read", "keys:write"}, "user_id": mres.json(t)["id"].(string)})
	ares := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "a@acme.test", "role": "admin"})
	_, admin := cl.createKey(a, owner, map[string]any{"name": "a", "scopes": []string{"admin"}, "user_id": ares.json(t)["id"].(string)})

	snapshot := func() string {
		var s string
		// last_used_at is left out: the verifier writes it in batches,
		// about a second after the requests (refused ones too) that used
		// the caller's own key; it is no change a PATCH made.
		if err := a.s.db.Get(&s, `SELECT string_agg((to_jsonb(k) - 'last_used_at')::text, '|' ORDER BY id) FROM api_keys k WHERE org_id = $1`, res.OrgID); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := a.s.db.Get(&n, `SELECT count(*) FROM audit_events WHERE action = 'api_key.update'`); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(s, n)
	}
	before := snapshot()
	later := expires.Add(time.Hour).Format(time.RFC3339)
	cases := []struct {
		name, key, id string
		body          any
		wantStatus    int
		wantMsg       string
	}{
		{"wider scopes", owner, id, map[string]any{"scopes": []string{"keys:read", "keys:write"}}, 400, `field "scopes" may only narrow a key; it does not hold: keys:write`},
		{"admin scope", owner, id, map[string]any{"scopes": []string{"admin"}}, 400, `field "scopes" may only narrow`},
		{"no scopes", owner, id, map[string]any{"scopes": []string{}}, 400, `field "scopes" must list at least one scope`},
		{"null scopes", owner, id, map[string]any{"scopes": nil}, 400, `field "scopes" must list at least one scope`},
		{"unknown scope", owner, id, map[string]any{"scopes": []string{"keys:delete"}}, 400, `unknown scope "keys:delete"`},
		{"more requests", owner, id, map[string]any{"rate_limit": map[string]any{"requests": 101, "window_seconds": 60}}, 400, `field "rate_limit" may only be lowered`},
		{"higher rate", owner, id, map[string]any{"rate_limit": map[string]any{"requests": 100, "window_seconds": 30}}, 400, `field "rate_limit" may only be lowered`},
		{"limit removed", owner, id, map[string]any{"rate_limit": nil}, 400, `field "rate_limit" may only be lowered, not removed`},
		{"bad limit", owner, id, map[string]any{"rate_limit": map[string]any{"requests": 0, "window_seconds": 60}}, 400, `rate_limit.requests`},
		{"later expiry", owner, id, map[string]any{"expires_at": later}, 400, `field "expires_at" may only be brought forward`},
		{"expiry removed", owner, id, map[string]any{"expires_at": nil}, 400, `field "expires_at" may only be brought forward, not removed`},
		{"never", owner, neverID, map[string]any{"expires_in": "never"}, 400, `field "expires_at" may only be brought forward, not removed`},
		{"past expiry", owner, neverID, map[string]any{"expires_at": "2020-01-01T00:00:00Z"}, 400, `"expires_at" must be in the future`},
		{"bad expires_in", owner, id, map[string]any{"expires_in": "1y"}, 400, `field "expires_in" must be one of`},
		{"empty name", owner, id, map[string]any{"name": "  "}, 400, `field "name" must be 1-200 characters`},
		{"bad label", owner, id, map[string]any{"environment": "Prod uction"}, 400, `field "environment" must be 1-63`},
		{"too many tags", owner, id, map[string]any{"tags": manyTags(21)}, 400, `"tags" holds at most 20`},
		{"unknown field", owner, id, map[string]any{"kind": "service"}, 400, `unknown field "kind"`},
		{"mode", owner, id, map[string]any{"mode": "test"}, 400, `unknown field "mode"`},
		{"format", owner, id, map[string]any{"format": "jwt"}, 400, `unknown field "format"`},
		{"agent", owner, jwtID, map[string]any{"agent": "other"}, 400, `unknown field "agent"`},
		{"JWT key scopes narrowed", owner, jwtID, map[string]any{"scopes": []string{"keys:read"}}, 400, `field "scopes" cannot change on a JWT key`},
		{"JWT key expiry brought forward", owner, jwtID, map[string]any{"expires_in": "7d"}, 400, `field "expires_in" cannot change on a JWT key`},
		{"JWT key expiry date", owner, jwtID, map[string]any{"expires_at": time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)}, 400, `field "expires_at" cannot change on a JWT key`},
		{"empty body", owner, id, map[string]any{}, 400, "nothing to change"},
		{"admin edits an owner's key", admin, id, map[string]any{"name": "x"}, 403, "only owners may"},
		{"wrong type", owner, id, map[string]any{"name": 5}, 400, `field "name" must be a string`},
		{"revoked key narrowed", owner, revokedID, map[string]any{"scopes": []string{"keys:read"}}, 409, "revoked"},
		{"member edits another's key", member, id, map[string]any{"name": "x"}, 403, "only owners and admins"},
		{"other org", other, id, map[string]any{"name": "x"}, 404, "API key not found"},
		{"unknown id", owner, "00000000-0000-0000-0000-000000000000", map[string]any{"name": "x"}, 404, "API key not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := cl.as(tc.key, "PATCH", a.url+"/v1/api-keys/"+tc.id, tc.body)
			if r.status != tc.wantStatus || !strings.Contains(r.errMessage(t), tc.wantMsg) {
				t.Fatalf("got %d %q, want %d containing %q", r.status, r.errMessage(t), tc.wantStatus, tc.wantMsg)
			}
		})
	}
	if after := snapshot(); after != before {
		t.Fatalf("refused PATCHes changed stored keys or wrote audit events:\n%s\n%s", before, after)
	}
	// The same key in another org's hands answers 404, and the revoked key
	// may still be renamed (tidying).
	if r := cl.as(owner, "PATCH", a.url+"/v1/api-keys/"+revokedID, map[string]any{"name": "old CI key"}); r.status != 200 {
		t.Errorf("rename revoked key: %d %s", r.status, r.body)
	}
	// What the token does not carry still changes on a JWT key.
	if r := cl.as(owner, "PATCH", a.url+"/v1/api-keys/"+jwtID, map[string]any{"name": "signed-ci", "environment": "staging",
		"rate_limit": map[string]any{"requests": 10, "window_seconds": 60}}); r.status != 200 {
		t.Errorf("rename and limit a JWT key: %d %s", r.status, r.body)
	}
}

// TestAPIKeyListing: newest first, revoked and expired hidden by default,
// every filter, keyset pagination across pages, and unknown or bad
// parameters refused.
func TestAPIKeyListing(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	mres := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "m@acme.test", "role": "admin"})
	adminID := mres.json(t)["id"].(string)
	_, admin := cl.createKey(a, owner, map[string]any{"name": "admin key", "scopes": []string{"admin"}, "user_id": adminID})
	memberID := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "n@acme.test", "role": "member"}).json(t)["id"].(string)
	mk := func(creator string, body map[string]any) string {
		body["scopes"] = []string{"keys:read"}
		id, _ := cl.createKey(a, creator, body)
		return id
	}
	prod := mk(owner, map[string]any{"name": "Billing prod", "environment": "production", "tags": map[string]string{"team": "billing"}})
	stag := mk(owner, map[string]any{"name": "billing staging", "environment": "staging", "tags": map[string]string{"team": "ops"}})
	soon := mk(owner, map[string]any{"name": "100%_done", "expires_in": "7d", "tags": map[string]string{"temp": ""}})
	byAdmin := mk(admin, map[string]any{"name": "made by admin", "user_id": memberID})
	revoked := mk(owner, map[string]any{"name": "revoked one"})
	cl.as(owner, "POST", a.url+"/v1/api-keys/"+revoked+"/revoke", nil)
	expired := mk(owner, map[string]any{"name": "expired one"})
	cl.as(owner, "POST", a.url+"/v1/api-keys/"+expired+"/roll", map[string]any{"grace_seconds": 0})
	rolled := mustList(t, cl, a, owner, "?q=expired+one")[0] // the replacement, newest
	adminKeyID := mustList(t, cl, a, owner, "?q=admin+key")[0]
	bootstrapID := mustList(t, cl, a, owner, "?q=bootstrap")[0]

	cases := map[string][]string{
		"":                             {rolled, byAdmin, soon, stag, prod, adminKeyID, bootstrapID},
		"?status=active":               {rolled, byAdmin, soon, stag, prod, adminKeyID, bootstrapID},
		"?status=revoked":              {revoked},
		"?status=expired":              {expired},
		"?status=all":                  {rolled, expired, revoked, byAdmin, soon, stag, prod, adminKeyID, bootstrapID},
		"?environment=production":      {prod},
		"?environment=staging":         {stag},
		"?tag=team":                    {stag, prod},
		"?tag=team=ops":                {stag},
		"?tag=temp=":                   {soon},
		"?tag=nope":                    {},
		"?q=BILLING":                   {stag, prod},
		"?q=100%25_":                   {soon},
		"?q=%25":                       {soon},
		"?q=_":                         {soon},
		"?expires_within=8":            {soon},
		"?expires_within=6":            {},
		"?created_by=" + adminID:       {byAdmin},
		"?user_id=" + adminID:          {adminKeyID},
		"?status=all&q=ed+one":         {rolled, expired, revoked},
		"?status=all&environment=none": {},
	}
	for q, want := range cases {
		if got := mustList(t, cl, a, owner, q); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("GET /v1/api-keys%s = %v, want %v", q, got, want)
		}
	}
	// Keyset pagination walks every key once, newest first, even with
	// keys created in the same instant (the id breaks the tie).
	if _, err := a.s.db.Exec(`UPDATE api_keys SET created_at = '2026-01-01T00:00:00Z' WHERE id IN ($1, $2, $3)`, prod, stag, soon); err != nil {
		t.Fatal(err)
	}
	all := mustList(t, cl, a, owner, "?status=all")
	var walked []string
	next := ""
	for pages := 0; pages < 20; pages++ {
		ids, cur := keyIDs(t, cl.as(owner, "GET", a.url+"/v1/api-keys?status=all&limit=2&cursor="+url.QueryEscape(next), nil))
		walked = append(walked, ids...)
		if cur == "" {
			break
		}
		next = cur
	}
	if fmt.Sprint(walked) != fmt.Sprint(all) || len(all) != 9 {
		t.Errorf("paged walk %v, want %v", walked, all)
	}

	// Bad and unknown parameters: 400 naming the parameter.
	bad := map[string]string{
		"?stauts=all":                    `unknown query parameter "stauts"`,
		"?status=deleted":                `query parameter "status" must be one of`,
		"?environment=Prod!":             `query parameter "environment" must be`,
		"?tag==x":                        `query parameter "tag" must be key or key=value`,
		"?expires_within=soon":           `query parameter "expires_within" must be a number`,
		"?expires_within=-1":             `query parameter "expires_within" must be a number of days from 0`,
		"?created_by=me":                 `query parameter "created_by" must be a user id`,
		"?user_id=me":                    `query parameter "user_id" must be a user id`,
		"?cursor=" + prod:                `query parameter "cursor" must be the next_cursor`,
		"?limit=0":                       `query parameter "limit" must be a number from 1 to 500`,
		"?q=" + strings.Repeat("x", 201): `query parameter "q" is longer than 200`,
	}
	for q, want := range bad {
		r := cl.as(owner, "GET", a.url+"/v1/api-keys"+q, nil)
		if r.status != 400 || !strings.Contains(r.errMessage(t), want) {
			t.Errorf("GET /v1/api-keys%.40s: %d %q, want 400 containing %q", q, r.status, r.errMessage(t), want)
		}
	}
}

func mustList(t *testing.T, cl *cluster, a *instance, key, q string) []string {
	t.Helper()
	ids, _ := keyIDs(t, cl.as(key, "GET", a.url+"/v1/api-keys"+q, nil))
	return ids
}

// TestListingsRefuseUnknownParameters: every listing answers 400 naming a
// parameter it does not know, instead of an unfiltered list; and the
// other listings are newest first as well.
func TestListingsRefuseUnknownParameters(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	for _, path := range []string{"/v1/api-keys", "/v1/credentials", "/v1/users", "/v1/endpoints", "/v1/audit"} {
		r := cl.as(owner, "GET", a.url+path+"?limit=5&colour=blue", nil)
		if r.status != 400 || !strings.Contains(r.errMessage(t), `unknown query parameter "colour"`) {
			t.Errorf("%s?colour=blue: %d %s", path, r.status, r.body)
		}
	}
	cred := cl.createCredential(a, owner, map[string]any{"name": "s", "service": "stripe", "value": "sk_test_123456789"})["id"].(string)
	if r := cl.as(owner, "GET", a.url+"/v1/credentials/"+cred+"/usage?workflow=x", nil); r.status != 400 {
		t.Errorf("usage with an unknown parameter: %d", r.status)
	}
	u1 := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "a@acme.test", "role": "member"}).json(t)["id"].(string)
	u2 := cl.as(owner, "POST", a.url+"/v1/users", map[string]any{"email": "b@acme.test", "role": "member"}).json(t)["id"].(string)
	ids, next := keyIDs(t, cl.as(owner, "GET", a.url+"/v1/users?limit=2", nil))
	if fmt.Sprint(ids) != fmt.Sprint([]string{u2, u1}) || next == "" {
		t.Errorf("users page 1: %v (next %q), want [%s %s]", ids, next, u2, u1)
	}
	ids, _ = keyIDs(t, cl.as(owner, "GET", a.url+"/v1/users?limit=2&cursor="+url.QueryEscape(next), nil))
	if fmt.Sprint(ids) != fmt.Sprint([]string{res.UserID}) {
		t.Errorf("users page 2: %v, want [%s]", ids, res.UserID)
	}
	e1 := cl.as(owner, "POST", a.url+"/v1/endpoints", map[string]any{"name": "one", "auth_mode": "none"}).json(t)["id"].(string)
	e2 := cl.as(owner, "POST", a.url+"/v1/endpoints", map[string]any{"name": "two", "auth_mode": "none"}).json(t)["id"].(string)
	if ids, _ := keyIDs(t, cl.as(owner, "GET", a.url+"/v1/endpoints", nil)); fmt.Sprint(ids) != fmt.Sprint([]string{e2, e1}) {
		t.Errorf("endpoints: %v, want [%s %s]", ids, e2, e1)
	}
}
