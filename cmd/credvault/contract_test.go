package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"credvault/api/client"
)

// TestProxyUpstreamStatusesMatchSpec: an upstream's own status comes back
// through the proxy unchanged (a 401 as 401, a 201 as 201), and every such
// answer is one api/openapi.yaml describes (the recorder validates them).
func TestProxyUpstreamStatusesMatchSpec(t *testing.T) {
	cl := newCluster(t, privateEgress())
	inst := cl.start()
	api := recordForSpec(t, inst.url)
	_, owner := cl.bootstrap(inst, "acme")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(code)
		_, _ = w.Write([]byte("upstream said " + r.URL.Path))
	}))
	t.Cleanup(up.Close)
	r := cl.as(owner, "POST", api+"/v1/credentials", map[string]any{"name": "up", "placement": "bearer",
		"value": "sk_test_" + strings.Repeat("u5", 12), "base_url": up.URL, "allowed_hosts": []string{strings.TrimPrefix(up.URL, "http://")}})
	if r.status != 201 {
		t.Fatalf("create credential: %d %s", r.status, r.body)
	}
	id, _ := r.json(t)["id"].(string)
	for _, code := range []int{200, 201, 202, 204, 409, 418, 422} {
		r := cl.as(owner, "GET", api+"/v1/proxy/"+id+"/status/"+strconv.Itoa(code), nil)
		if r.status != code {
			t.Errorf("upstream %d came back as %d %s", code, r.status, r.body)
		}
	}
	// An upstream 401 (one of the statuses credvault also uses for its own
	// refusals) keeps its status and its own body.
	r = cl.as(owner, "GET", inst.url+"/v1/proxy/"+id+"/status/401", nil)
	if r.status != 401 || string(r.body) != "upstream said /status/401" {
		t.Errorf("upstream 401: %d %s", r.status, r.body)
	}
}

// TestInjectNeedsUseAndResolve: POST /v1/inject needs both
// credentials:resolve and credentials:use on the runner's key, as its
// description in api/openapi.yaml says; either alone is 403
// insufficient_scope naming the one missing.
func TestInjectNeedsUseAndResolve(t *testing.T) {
	cl := newCluster(t, privateEgress())
	inst := cl.start()
	res, owner := cl.bootstrap(inst, "acme")
	r := cl.as(owner, "POST", inst.url+"/v1/credentials", map[string]any{"name": "up", "placement": "bearer",
		"value": "sk_test_" + strings.Repeat("i7", 12), "allowed_hosts": []string{"127.0.0.1:9"}})
	if r.status != 201 {
		t.Fatalf("create credential: %d %s", r.status, r.body)
	}
	id, _ := r.json(t)["id"].(string)
	body := map[string]any{"credential_id": id, "request": map[string]any{"method": "GET", "url": "https://127.0.0.1:9/x"}}
	for _, tc := range []struct {
		scopes  []string
		status  int
		missing string
	}{
		{[]string{"credentials:resolve"}, 403, "credentials:use"},
		{[]string{"credentials:use"}, 403, "credentials:resolve"},
		{[]string{"credentials:use", "credentials:resolve"}, 200, ""},
	} {
		_, runner := cl.createKey(inst, owner, map[string]any{"name": "runner", "kind": "service", "scopes": tc.scopes})
		r := cl.call("POST", inst.url+"/v1/inject", map[string]string{"X-API-Key": runner, "X-Credvault-Acting-User": res.UserID}, body)
		if r.status != tc.status {
			t.Errorf("scopes %v: %d %s, want %d", tc.scopes, r.status, r.body, tc.status)
			continue
		}
		if tc.missing != "" && (r.errCode(t) != "insufficient_scope" || !strings.Contains(r.errMessage(t), tc.missing)) {
			t.Errorf("scopes %v: %s, want insufficient_scope naming %s", tc.scopes, r.body, tc.missing)
		}
	}
}

// TestJWKSConditionalThroughClient: the generated client can make the
// conditional request the JWKS honours (api/openapi.yaml declares its
// If-None-Match header): the first answer's ETag sent back gets 304, and
// both answers are ones the document describes (the recorder validates
// them).
func TestJWKSConditionalThroughClient(t *testing.T) {
	cl := newCluster(t, nil)
	inst := cl.start()
	api := recordForSpec(t, inst.url)
	c, err := client.NewClientWithResponses(api)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := c.JwksWithResponse(ctx, nil)
	if err != nil || first.StatusCode() != 200 {
		t.Fatalf("JWKS: %v %v", first, err)
	}
	etag := first.HTTPResponse.Header.Get("ETag")
	if etag == "" {
		t.Fatal("JWKS without an ETag")
	}
	again, err := c.JwksWithResponse(ctx, &client.JwksParams{IfNoneMatch: &etag})
	if err != nil || again.StatusCode() != 304 || len(again.Body) != 0 {
		t.Fatalf("JWKS with If-None-Match %s: %v %v", etag, again, err)
	}
}
