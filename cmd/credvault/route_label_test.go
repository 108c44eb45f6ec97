package main

import (
	"testing"
)

// TestRefusalsNameTheirRoute: a request the /v1 authentication refuses is
// labelled with its own route template in the refusal log line and in
// credvault_http_requests_total, not with the group's prefix "/v1" (the
// middleware that answered).
func TestRefusalsNameTheirRoute(t *testing.T) {
	cl := newCluster(t, map[string]string{"CREDVAULT_LOG_LEVEL": "info"})
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	readerID, reader := cl.createKey(a, owner, map[string]any{"name": "r", "scopes": []string{"keys:read"}})

	if r := cl.call("GET", a.url+"/v1/whoami", nil, nil); r.status != 401 {
		t.Fatalf("whoami without a key: %d", r.status)
	}
	if r := cl.as(reader, "POST", a.url+"/v1/api-keys/"+readerID+"/revoke", nil); r.status != 403 {
		t.Fatalf("revoke with keys:read: %d %s", r.status, r.body)
	}
	want := []string{"/v1/whoami", "/v1/api-keys/:id/revoke"}
	lines := logLines(t, a, "request refused")
	if len(lines) != len(want) {
		t.Fatalf("%d refusal lines, want %d:\n%s", len(lines), len(want), a.logs)
	}
	for i, w := range want {
		if lines[i]["route"] != w {
			t.Errorf("refusal line %d: route %v, want %s", i, lines[i]["route"], w)
		}
	}
	m := scrape(t, cl, a)
	for _, sample := range []string{
		`credvault_http_requests_total{method="GET",route="/v1/whoami",status="401"}`,
		`credvault_http_requests_total{method="POST",route="/v1/api-keys/:id/revoke",status="403"}`,
	} {
		if m[sample] != 1 {
			t.Errorf("%s = %v, want 1", sample, m[sample])
		}
	}
	if v, ok := m[`credvault_http_requests_total{method="GET",route="/v1",status="401"}`]; ok {
		t.Errorf("refusals labelled with the group prefix: %v", v)
	}
}
