package oauth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// TestPresets: every provider the issue names has a preset with https
// endpoints, the hosts its APIs live on (valid allowed_hosts patterns) and
// the documents its facts come from.
func TestPresets(t *testing.T) {
	for _, id := range []string{"google", "github", "slack", "microsoft", "salesforce", "hubspot", "notion", "atlassian"} {
		p, ok := FindPreset(id)
		if !ok {
			t.Fatalf("no preset %s", id)
		}
		for _, u := range []string{p.AuthorizeURL, p.TokenURL} {
			if CheckEndpointURL("url", u) != nil || !strings.HasPrefix(u, "https://") {
				t.Errorf("%s: endpoint %q", id, u)
			}
		}
		if p.RevocationURL != "" && CheckEndpointURL("revocation_url", p.RevocationURL) != nil {
			t.Errorf("%s: revocation %q", id, p.RevocationURL)
		}
		if len(p.Sources) == 0 || len(p.APIHosts) == 0 || p.ScopeSeparator == "" || p.TokenAuthMethod == "" {
			t.Errorf("%s: sources %v, hosts %v, separator %q, auth %q", id, p.Sources, p.APIHosts, p.ScopeSeparator, p.TokenAuthMethod)
		}
		if _, err := credvault.ParseHostPatterns("allowed_hosts", p.APIHosts); err != nil {
			t.Errorf("%s: API hosts %v: %v", id, p.APIHosts, err)
		}
	}
	if g, _ := FindPreset("google"); g.AuthorizeParams["access_type"] != "offline" || g.AuthorizeParams["prompt"] != "consent" {
		t.Errorf("google needs access_type=offline and prompt=consent for a refresh token: %v", g.AuthorizeParams)
	}
}

func TestCheckEndpointURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://auth.example.com/token":     true,
		"http://127.0.0.1:9000/token":        true,
		"http://localhost/token":             true,
		"http://auth.example.com/token":      false, // plain http off loopback
		"https://user:pw@auth.example.com/t": false,
		"https://auth.example.com/t#frag":    false, // RFC 6749 section 3.1
		"ftp://auth.example.com/t":           false,
		"/token":                             false,
		"https://auth.example.com/ t":        false,
	} {
		err := CheckEndpointURL("token_url", raw)
		if (err == nil) != ok {
			t.Errorf("%q: err %v, want ok %v", raw, err, ok)
		}
		if err != nil && (credvault.ErrorCode(err) != credvault.EINVALID || !strings.Contains(err.Error(), "token_url")) {
			t.Errorf("%q: %v does not name the field", raw, err)
		}
	}
}

// TestDiscovery: OpenID Connect Discovery first, RFC 8414 when it is
// absent; an issuer that differs from the one asked for is refused.
func TestDiscovery(t *testing.T) {
	var srv *httptest.Server
	issuer := func() string { return srv.URL }
	mux := http.NewServeMux()
	mux.HandleFunc("/oidc/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": issuer() + "/oidc", "authorization_endpoint": issuer() + "/oidc/auth",
			"token_endpoint": issuer() + "/oidc/token", "revocation_endpoint": issuer() + "/oidc/revoke",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post"}})
	})
	mux.HandleFunc("/.well-known/oauth-authorization-server/as", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": issuer() + "/as", "token_endpoint": issuer() + "/as/token"})
	})
	mux.HandleFunc("/evil/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": "https://someone-else.example", "token_endpoint": issuer() + "/t"})
	})
	srv = httptest.NewServer(mux)
	defer srv.Close()
	c := &Client{HTTP: srv.Client(), Timeout: 5 * time.Second}
	ctx := context.Background()
	ep, err := c.Endpoints(ctx, "", srv.URL+"/oidc", "", "", "")
	if err != nil || ep.TokenURL != srv.URL+"/oidc/token" || ep.RevocationURL != srv.URL+"/oidc/revoke" || ep.TokenAuthMethod != credvault.AuthMethodPost {
		t.Fatalf("OIDC discovery: %+v %v", ep, err)
	}
	ep, err = c.Endpoints(ctx, "", srv.URL+"/as", "", "", "")
	if err != nil || ep.TokenURL != srv.URL+"/as/token" || ep.Issuer != srv.URL+"/as" {
		t.Fatalf("RFC 8414 discovery: %+v %v", ep, err)
	}
	if _, err := c.Endpoints(ctx, "", srv.URL+"/evil", "", "", ""); err == nil || !strings.Contains(err.Error(), "RFC 8414 section 3.3") {
		t.Fatalf("a foreign issuer in the metadata: %v", err)
	}
	if _, err := c.Endpoints(ctx, "", srv.URL+"/nothing", "", "", ""); err == nil || !strings.Contains(err.Error(), "publishes no") {
		t.Fatalf("no metadata: %v", err)
	}
	if _, err := c.Endpoints(ctx, "nonesuch", "", "", "", ""); err == nil || !strings.Contains(err.Error(), "google") {
		t.Fatalf("unknown preset: %v", err)
	}
}

func TestRefreshMargin(t *testing.T) {
	for life, want := range map[time.Duration]time.Duration{
		time.Hour: 6 * time.Minute, 10 * time.Minute: time.Minute, 2 * time.Minute: 30 * time.Second,
		30 * time.Second: 15 * time.Second, 4 * time.Second: 2 * time.Second,
	} {
		if got := credvault.RefreshMargin(life); got != want {
			t.Errorf("RefreshMargin(%v) = %v, want %v", life, got, want)
		}
	}
}
