package main

import (
	"strconv"
	"strings"
	"testing"
)

// TestIntegrationRefusals: every bad input to the integration routes, and
// to a key's integration_id, is a 400 whose message names the field or
// parameter, and nothing is written (no row, no audit event, no change).
func TestIntegrationRefusals(t *testing.T) {
	t.Parallel() // with the other integration tests, after the package's serial ones: their waits overlap
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	_, other := cl.bootstrap(a, "globex")
	r := cl.as(owner, "POST", a.url+"/v1/integrations", map[string]any{"name": "bot", "tags": map[string]string{"k": "v"}})
	iid := r.json(t)["id"].(string)
	foreign := cl.as(other, "POST", a.url+"/v1/integrations", map[string]any{"name": "theirs"}).json(t)["id"].(string)
	kid, _ := cl.createKey(a, owner, map[string]any{"name": "k", "scopes": []string{"keys:read"}, "integration_id": iid})
	long := strings.Repeat("x", 201)
	manyTags := map[string]string{}
	for i := range 21 {
		manyTags[strings.Repeat("t", i+1)] = "v"
	}
	cases := []struct {
		method, path string
		body         any
		field        string
	}{
		{"POST", "/v1/integrations", map[string]any{}, "name"},
		{"POST", "/v1/integrations", map[string]any{"name": "  "}, "name"},
		{"POST", "/v1/integrations", map[string]any{"name": long}, "name"},
		{"POST", "/v1/integrations", map[string]any{"name": 7}, "name"},
		{"POST", "/v1/integrations", map[string]any{"name": "n", "agent": ""}, "agent"},
		{"POST", "/v1/integrations", map[string]any{"name": "n", "agent": long}, "agent"},
		{"POST", "/v1/integrations", map[string]any{"name": "n", "environment": "Prod uction"}, "environment"},
		{"POST", "/v1/integrations", map[string]any{"name": "n", "tags": manyTags}, "tags"},
		{"POST", "/v1/integrations", map[string]any{"name": "n", "tags": map[string]string{"": "v"}}, "tags"},
		{"POST", "/v1/integrations", map[string]any{"name": "n", "tags": []string{"a"}}, "tags"},
		{"POST", "/v1/integrations", map[string]any{"name": "n", "enabled": "no"}, "enabled"},
		{"POST", "/v1/integrations", map[string]any{"name": "n", "colour": "red"}, "colour"},
		{"PATCH", "/v1/integrations/" + iid, map[string]any{"enabled": nil}, "enabled"},
		{"PATCH", "/v1/integrations/" + iid, map[string]any{"enabled": "false"}, "enabled"},
		{"PATCH", "/v1/integrations/" + iid, map[string]any{"name": ""}, "name"},
		{"PATCH", "/v1/integrations/" + iid, map[string]any{"agent": " "}, "agent"},
		{"PATCH", "/v1/integrations/" + iid, map[string]any{"environment": "-x"}, "environment"},
		{"PATCH", "/v1/integrations/" + iid, map[string]any{"tags": manyTags}, "tags"},
		{"PATCH", "/v1/integrations/" + iid, map[string]any{"enabled": false, "nmae": "x"}, "nmae"},
		{"PATCH", "/v1/integrations/" + iid, map[string]any{}, "nothing to change"},
		{"GET", "/v1/integrations?enabled=yes", nil, "enabled"},
		{"GET", "/v1/integrations?environment=A%20B", nil, "environment"},
		{"GET", "/v1/integrations?tag=%3Dv", nil, "tag"},
		{"GET", "/v1/integrations?q=" + long, nil, "q"},
		{"GET", "/v1/integrations?status=active", nil, "status"},
		{"GET", "/v1/integrations?limit=0", nil, "limit"},
		{"GET", "/v1/integrations?cursor=nope", nil, "cursor"},
		{"POST", "/v1/api-keys", map[string]any{"name": "x", "scopes": []string{"keys:read"}, "integration_id": "nope"}, "integration_id"},
		{"POST", "/v1/api-keys", map[string]any{"name": "x", "scopes": []string{"keys:read"}, "integration_id": foreign}, "integration_id"},
		{"POST", "/v1/api-keys", map[string]any{"name": "x", "scopes": []string{"keys:read"}, "integration_id": 5}, "integration_id"},
		{"PATCH", "/v1/api-keys/" + kid, map[string]any{"integration_id": ""}, "integration_id"},
		{"PATCH", "/v1/api-keys/" + kid, map[string]any{"integration_id": foreign}, "integration_id"},
		{"PATCH", "/v1/api-keys/" + kid, map[string]any{"integration_id": "00000000-0000-0000-0000-000000000000"}, "integration_id"},
		{"PATCH", "/v1/api-keys/" + kid, map[string]any{"name": "renamed", "integration_id": "nope"}, "integration_id"},
		{"GET", "/v1/api-keys?integration_id=nope", nil, "integration_id"},
		{"GET", "/v1/api-keys?enabled=maybe", nil, "enabled"},
		{"GET", "/v1/api-keys?integration=" + iid, nil, "integration"},
	}
	counts := func() string {
		return strings.Join([]string{
			strconv.Itoa(countRows(t, cl.dbURL, `SELECT count(*) FROM integrations`)),
			strconv.Itoa(countRows(t, cl.dbURL, `SELECT count(*) FROM api_keys`)),
			strconv.Itoa(countRows(t, cl.dbURL, `SELECT count(*) FROM audit_events`)),
			strconv.Itoa(countRows(t, cl.dbURL, `SELECT count(*) FROM api_key_revocations`)),
			strconv.Itoa(countRows(t, cl.dbURL, `SELECT count(*) FROM integrations WHERE enabled AND name = 'bot' AND tags = '{"k":"v"}' AND agent IS NULL`)),
			strconv.Itoa(countRows(t, cl.dbURL, `SELECT count(*) FROM api_keys WHERE name = 'k' AND integration_id IS NOT NULL`)),
		}, "/")
	}
	before := counts()
	for _, tc := range cases {
		r := cl.as(owner, tc.method, a.url+tc.path, tc.body)
		if r.status != 400 || !strings.Contains(r.errMessage(t), tc.field) {
			t.Errorf("%s %s %v: %d %s, want 400 naming %q", tc.method, tc.path, tc.body, r.status, r.body, tc.field)
		}
	}
	if after := counts(); after != before {
		t.Fatalf("rows (integrations/keys/audit/feed/unchanged integration/unchanged key) %s before, %s after the refusals", before, after)
	}
}
