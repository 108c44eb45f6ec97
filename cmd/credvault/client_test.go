package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"credvault/api/client"
)

// ok fails the test unless a generated call succeeded with a 2xx.
func ok(t *testing.T, what string, resp *http.Response, body []byte, err error) {
	t.Helper()
	if err == nil {
		err = client.Check(resp, body)
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func ptr[T any](v T) *T { return &v }

// pathRecorder is a third-party API that records the raw path of every
// call it gets.
type pathRecorder struct {
	srv   *httptest.Server
	mu    sync.Mutex
	paths []string
}

func newPathRecorder(t *testing.T) *pathRecorder {
	p := &pathRecorder{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.paths = append(p.paths, r.Method+" "+r.URL.RequestURI())
		p.mu.Unlock()
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "upstream "+r.URL.EscapedPath()+" auth="+r.Header.Get("Authorization")+" body="+string(b))
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pathRecorder) last() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.paths) == 0 {
		return ""
	}
	return p.paths[len(p.paths)-1]
}

// TestGoClientEveryRouteFamily drives a running credvault through the
// generated client and its hand-written layer: health, whoami, users, API
// keys (create, list, get, roll, revoke, verify), forward-auth, endpoints,
// services, credentials (create, list, get, update, share, usage, test,
// delete), the proxy (generated call and ProxyTransport, nested paths
// intact), inject, audit and rewrap; and errors decoded with code and
// request id.
func TestGoClientEveryRouteFamily(t *testing.T) {
	ctx := context.Background()
	cl := newCluster(t, privateEgress())
	inst := cl.start()
	api := recordForSpec(t, inst.url) // every response is checked against api/openapi.yaml
	boot, owner := cl.bootstrap(inst, "sdk")
	c, err := client.New(api, owner)
	if err != nil {
		t.Fatal(err)
	}

	hz, err := c.HealthzWithResponse(ctx)
	ok(t, "healthz", hz.HTTPResponse, hz.Body, err)
	who, err := c.WhoamiWithResponse(ctx)
	ok(t, "whoami", who.HTTPResponse, who.Body, err)
	if who.JSON200 == nil || who.JSON200.OrgId == uuid.Nil {
		t.Fatalf("whoami: %s", who.Body)
	}

	// Users.
	uc, err := c.UserCreateWithResponse(ctx, client.UserCreateRequest{Email: "bo@sdk.test", Role: "member", Name: ptr("Bo")})
	ok(t, "user create", uc.HTTPResponse, uc.Body, err)
	uid := uc.JSON201.Id
	ul, err := c.UserListWithResponse(ctx, nil)
	ok(t, "user list", ul.HTTPResponse, ul.Body, err)
	if len(ul.JSON200.Data) != 2 {
		t.Errorf("users: got %d, want 2", len(ul.JSON200.Data))
	}
	ug, err := c.UserGetWithResponse(ctx, uid)
	ok(t, "user get", ug.HTTPResponse, ug.Body, err)
	uu, err := c.UserUpdateWithResponse(ctx, uid, client.UserUpdateRequest{Name: ptr("Bo B")})
	ok(t, "user update", uu.HTTPResponse, uu.Body, err)

	// API keys.
	kc, err := c.ApiKeyCreateWithResponse(ctx, client.APIKeyCreateRequest{Name: "ci", Scopes: []client.Scope{"keys:read", "credentials:use"}})
	ok(t, "key create", kc.HTTPResponse, kc.Body, err)
	kid, key := kc.JSON201.Id, kc.JSON201.Key
	kl, err := c.ApiKeyListWithResponse(ctx, nil)
	ok(t, "key list", kl.HTTPResponse, kl.Body, err)
	if strings.Contains(string(kl.Body), key) {
		t.Error("key list shows a key")
	}
	kg, err := c.ApiKeyGetWithResponse(ctx, kid)
	ok(t, "key get", kg.HTTPResponse, kg.Body, err)
	vr, err := c.ApiKeyVerifyWithResponse(ctx, client.VerifyRequest{Key: &key, RequiredScopes: &[]client.Scope{"keys:read"}})
	ok(t, "verify", vr.HTTPResponse, vr.Body, err)
	if !vr.JSON200.Valid {
		t.Errorf("verify: %s", vr.Body)
	}
	other, _ := client.New(api, key)
	ac, err := other.AuthCheckWithResponse(ctx, &client.AuthCheckParams{Scope: &[]client.Scope{"keys:read"}})
	ok(t, "auth check", ac.HTTPResponse, ac.Body, err)
	if ac.HTTPResponse.Header.Get("X-Credvault-Key-Id") != kid.String() {
		t.Errorf("auth check key id: %q", ac.HTTPResponse.Header.Get("X-Credvault-Key-Id"))
	}
	kr, err := c.ApiKeyRollWithResponse(ctx, kid, client.APIKeyRollRequest{GraceSeconds: ptr(0)})
	ok(t, "key roll", kr.HTTPResponse, kr.Body, err)
	kv, err := c.ApiKeyRevokeWithResponse(ctx, kr.JSON201.Id)
	ok(t, "key revoke", kv.HTTPResponse, kv.Body, err)
	// A JWT key's create and roll answers carry a JWS in "key".
	jc, err := c.ApiKeyCreateWithResponse(ctx, client.APIKeyCreateRequest{Name: "signed", Scopes: []client.Scope{"keys:read"},
		Format: ptr(client.APIKeyCreateRequestFormat("jwt"))})
	ok(t, "jwt key create", jc.HTTPResponse, jc.Body, err)
	jr, err := c.ApiKeyRollWithResponse(ctx, jc.JSON201.Id, client.APIKeyRollRequest{GraceSeconds: ptr(0)})
	ok(t, "jwt key roll", jr.HTTPResponse, jr.Body, err)

	// Typed errors: code, status class and request id.
	gone, _ := client.New(api, kr.JSON201.Key)
	wr, err := gone.WhoamiWithResponse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var apiErr *client.APIError
	err = client.Check(wr.HTTPResponse, wr.Body)
	if !errors.As(err, &apiErr) || apiErr.Code != "revoked_api_key" || apiErr.RequestID == "" || !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("revoked key: got %#v, want revoked_api_key with a request id", err)
	}
	nf, err := c.UserGetWithResponse(ctx, uuid.New())
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Check(nf.HTTPResponse, nf.Body); !errors.Is(err, client.ErrNotFound) || !errors.As(err, &apiErr) || apiErr.Code != "not_found" {
		t.Errorf("unknown user: got %v, want not_found", err)
	}

	// Endpoints and services.
	ec, err := c.EndpointCreateWithResponse(ctx, client.EndpointCreateRequest{Name: "billing", AuthMode: "private"})
	ok(t, "endpoint create", ec.HTTPResponse, ec.Body, err)
	el, err := c.EndpointListWithResponse(ctx, nil)
	ok(t, "endpoint list", el.HTTPResponse, el.Body, err)
	eu, err := c.EndpointUpdateWithResponse(ctx, ec.JSON201.Id, client.EndpointUpdateRequest{RequiredScopes: &[]client.Scope{"keys:read"}})
	ok(t, "endpoint update", eu.HTTPResponse, eu.Body, err)
	ed, err := c.EndpointDeleteWithResponse(ctx, ec.JSON201.Id)
	ok(t, "endpoint delete", ed.HTTPResponse, ed.Body, err)
	sl, err := c.ServiceListWithResponse(ctx)
	ok(t, "services", sl.HTTPResponse, sl.Body, err)

	// Credentials, against a local third-party API.
	up := newPathRecorder(t)
	host := strings.TrimPrefix(up.srv.URL, "http://")
	secret := "sk_test_" + strings.Repeat("q7", 12)
	cc, err := c.CredentialCreateWithResponse(ctx, client.CredentialCreateRequest{
		Name: "pay", Placement: ptr(client.Placement("bearer")), Value: &secret,
		BaseUrl: ptr(up.srv.URL + "/api"), AllowedHosts: &[]string{host},
		TestRequest: &client.TestRequest{Path: "/ping"},
	})
	ok(t, "credential create", cc.HTTPResponse, cc.Body, err)
	cid := cc.JSON201.Id
	cls, err := c.CredentialListWithResponse(ctx, nil)
	ok(t, "credential list", cls.HTTPResponse, cls.Body, err)
	cg, err := c.CredentialGetWithResponse(ctx, cid)
	ok(t, "credential get", cg.HTTPResponse, cg.Body, err)
	rotated := "sk_test_" + strings.Repeat("z9", 12)
	cu, err := c.CredentialUpdateWithResponse(ctx, cid, client.CredentialUpdateRequest{Value: &rotated})
	ok(t, "credential rotate", cu.HTTPResponse, cu.Body, err)
	cs, err := c.CredentialSharingWithResponse(ctx, cid, client.Sharing{Mode: "team"})
	ok(t, "credential share", cs.HTTPResponse, cs.Body, err)
	ct, err := c.CredentialTestWithResponse(ctx, cid)
	ok(t, "credential test", ct.HTTPResponse, ct.Body, err)

	// The proxy: the generated call, then the RoundTripper; nested paths
	// and a percent-encoded slash arrive as they were sent.
	for _, p := range []struct{ param, want string }{
		{"v1/charges", "GET /api/v1/charges"},
		{"projects/group%2Fproject/issues", "GET /api/projects/group%2Fproject/issues"},
	} {
		pr, err := c.ProxyGetWithResponse(ctx, cid, p.param)
		ok(t, "proxy "+p.param, pr.HTTPResponse, pr.Body, err)
		if got := up.last(); got != p.want {
			t.Errorf("generated proxy call with %q: upstream got %q, want %q", p.param, got, p.want)
		}
		if strings.Contains(string(pr.Body), rotated) || !strings.Contains(string(pr.Body), "[REDACTED]") {
			t.Errorf("proxy answer not scrubbed: %s", pr.Body)
		}
	}
	hc := &http.Client{Transport: &client.ProxyTransport{Credvault: api, APIKey: owner, CredentialID: cid.String(),
		Headers: http.Header{"X-Credvault-Workflow-Id": {"wf-1"}}}}
	resp, err := hc.Post("https://api.example.test/v1/customers/cus%2F1/sources?expand=x", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || up.last() != "POST /api/v1/customers/cus%2F1/sources?expand=x" || !strings.Contains(string(b), "body=hello") {
		t.Errorf("ProxyTransport: %d %s, upstream got %q", resp.StatusCode, b, up.last())
	}
	bad := &http.Client{Transport: &client.ProxyTransport{Credvault: api, APIKey: owner, CredentialID: uuid.NewString()}}
	resp, err = bad.Get("https://api.example.test/v1/x")
	if err != nil {
		t.Fatal(err)
	}
	if err := client.CheckResponse(resp); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("ProxyTransport with an unknown credential: %v", err)
	}

	// A runner resolves for the user the workflow runs for (issue 9's rule).
	acting := uuid.MustParse(boot.UserID)
	inj := client.InjectRequest{CredentialId: cid, ActingUser: &acting}
	inj.Request.Url = up.srv.URL + "/api/v1/x"
	sk, err := c.ApiKeyCreateWithResponse(ctx, client.APIKeyCreateRequest{Name: "runner", Kind: ptr(client.APIKeyCreateRequestKind("service")),
		Scopes: []client.Scope{"credentials:resolve", "credentials:use"}})
	ok(t, "service key create", sk.HTTPResponse, sk.Body, err)
	runner, _ := client.New(api, sk.JSON201.Key)
	in, err := runner.InjectWithResponse(ctx, inj)
	ok(t, "inject", in.HTTPResponse, in.Body, err)
	if in.JSON200 == nil || !strings.Contains(string(in.Body), "Bearer "+rotated) {
		t.Errorf("inject: %s", in.Body)
	}
	us, err := c.CredentialUsageWithResponse(ctx, cid, nil)
	ok(t, "credential usage", us.HTTPResponse, us.Body, err)
	au, err := c.AuditListWithResponse(ctx, nil)
	ok(t, "audit", au.HTTPResponse, au.Body, err)
	rw, err := c.RewrapWithResponse(ctx)
	ok(t, "rewrap", rw.HTTPResponse, rw.Body, err)
	cd, err := c.CredentialDeleteWithResponse(ctx, cid, &client.CredentialDeleteParams{Force: ptr(true)})
	ok(t, "credential delete", cd.HTTPResponse, cd.Body, err)
	ud, err := c.UserDeleteWithResponse(ctx, uid)
	ok(t, "user delete", ud.HTTPResponse, ud.Body, err)

	for _, s := range []string{secret, rotated} {
		if strings.Contains(cl.allResponses(), s) || strings.Contains(inst.logs.String(), s) {
			t.Errorf("a credential value leaked into a response or log")
		}
	}
}
