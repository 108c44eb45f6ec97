package oauth

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"credvault/internal/credvault"
)

// Endpoints resolves an app's provider: a preset, discovery from an
// issuer, or explicit URLs (each an absolute https URL; http only on a
// loopback host, for development). Errors: EINVALID naming the field.
func (c *Client) Endpoints(ctx context.Context, preset, issuer, authorizeURL, tokenURL, revocationURL string) (credvault.OAuthEndpoints, error) {
	switch {
	case preset != "":
		p, ok := FindPreset(strings.ToLower(preset))
		if !ok {
			return credvault.OAuthEndpoints{}, credvault.Errorf(credvault.EINVALID, "field \"preset\" must be one of: %s", presetIDs())
		}
		return credvault.OAuthEndpoints{
			Preset: p.ID, AuthorizeURL: p.AuthorizeURL, TokenURL: p.TokenURL, RevocationURL: p.RevocationURL,
			ScopeSeparator: p.ScopeSeparator, AuthorizeParams: p.AuthorizeParams, APIHosts: p.APIHosts,
			BaseURL: p.BaseURL, TokenAuthMethod: p.TokenAuthMethod, DefaultScopes: p.DefaultScopes,
		}, nil
	case issuer != "":
		return c.discover(ctx, issuer)
	}
	for _, f := range []struct {
		name, v  string
		required bool
	}{
		{"authorize_url", authorizeURL, false}, {"token_url", tokenURL, true}, {"revocation_url", revocationURL, false},
	} {
		if f.v == "" && !f.required {
			continue
		}
		if err := CheckEndpointURL(f.name, f.v); err != nil {
			return credvault.OAuthEndpoints{}, err
		}
	}
	return credvault.OAuthEndpoints{AuthorizeURL: authorizeURL, TokenURL: tokenURL, RevocationURL: revocationURL, ScopeSeparator: " "}, nil
}

// CheckEndpointURL: an absolute https URL without credentials or fragment
// (RFC 6749 section 3.1 forbids a fragment); plain http only towards a
// loopback host. Errors: EINVALID naming field.
func CheckEndpointURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || u.Fragment != "" || strings.ContainsAny(raw, " \t\r\n") {
		return credvault.Errorf(credvault.EINVALID, "field %q must be an absolute https URL without credentials or fragment", field)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback(u.Hostname()) {
			return credvault.Errorf(credvault.EINVALID, "field %q must use https (http only towards localhost)", field)
		}
	default:
		return credvault.Errorf(credvault.EINVALID, "field %q must be an https URL", field)
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// metadata is the part of OpenID Provider Metadata (OpenID Connect
// Discovery 1.0 section 3) and RFC 8414 section 2 credvault reads.
type metadata struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	RevocationEndpoint    string   `json:"revocation_endpoint"`
	TokenAuthMethods      []string `json:"token_endpoint_auth_methods_supported"`
	// RFC 9207 section 3: the provider puts iss in every authorization
	// response.
	IssParameterSupported bool `json:"authorization_response_iss_parameter_supported"`
}

// discover reads the issuer's metadata: OpenID Connect Discovery's
// {issuer}/.well-known/openid-configuration, else RFC 8414's
// /.well-known/oauth-authorization-server{path}. The metadata's issuer
// must equal the one asked for (RFC 8414 section 3.3).
func (c *Client) discover(ctx context.Context, issuer string) (credvault.OAuthEndpoints, error) {
	if err := CheckEndpointURL("issuer", issuer); err != nil {
		return credvault.OAuthEndpoints{}, err
	}
	u, _ := url.Parse(issuer)
	if u.RawQuery != "" {
		return credvault.OAuthEndpoints{}, credvault.Errorf(credvault.EINVALID, "field \"issuer\" must not have a query (RFC 8414 section 2)")
	}
	trimmed := strings.TrimSuffix(issuer, "/")
	oidc := trimmed + "/.well-known/openid-configuration"
	rfc8414 := u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.EscapedPath(), "/")
	var md metadata
	found := false
	for _, where := range []string{oidc, rfc8414} {
		ok, err := c.fetchMetadata(ctx, where, &md)
		if err != nil {
			return credvault.OAuthEndpoints{}, err
		}
		if ok {
			found = true
			break
		}
	}
	if !found {
		return credvault.OAuthEndpoints{}, credvault.Errorf(credvault.EINVALID, "field \"issuer\": %s publishes no OpenID or RFC 8414 metadata under /.well-known", u.Host)
	}
	if strings.TrimSuffix(md.Issuer, "/") != trimmed {
		return credvault.OAuthEndpoints{}, credvault.Errorf(credvault.EINVALID, "field \"issuer\": the metadata names issuer %q, not the one given (RFC 8414 section 3.3)", md.Issuer)
	}
	if md.TokenEndpoint == "" {
		return credvault.OAuthEndpoints{}, credvault.Errorf(credvault.EINVALID, "field \"issuer\": the metadata has no token_endpoint")
	}
	for _, f := range [][2]string{{"authorization_endpoint", md.AuthorizationEndpoint}, {"token_endpoint", md.TokenEndpoint}, {"revocation_endpoint", md.RevocationEndpoint}} {
		if f[1] != "" {
			if err := CheckEndpointURL(f[0], f[1]); err != nil {
				return credvault.OAuthEndpoints{}, credvault.Errorf(credvault.EINVALID, "field \"issuer\": the metadata's %s is not a usable https URL", f[0])
			}
		}
	}
	ep := credvault.OAuthEndpoints{Issuer: md.Issuer, IssRequired: md.IssParameterSupported, AuthorizeURL: md.AuthorizationEndpoint, TokenURL: md.TokenEndpoint,
		RevocationURL: md.RevocationEndpoint, ScopeSeparator: " "}
	// RFC 8414 section 2: absent, the default is client_secret_basic.
	if len(md.TokenAuthMethods) > 0 && !slices.Contains(md.TokenAuthMethods, credvault.AuthMethodBasic) && slices.Contains(md.TokenAuthMethods, credvault.AuthMethodPost) {
		ep.TokenAuthMethod = credvault.AuthMethodPost
	}
	return ep, nil
}

// fetchMetadata GETs one metadata document; ok is false on 404.
func (c *Client) fetchMetadata(ctx context.Context, where string, md *metadata) (bool, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return false, credvault.Errorf(credvault.EINVALID, "field \"issuer\" does not make a valid metadata URL")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return false, credvault.Errorf(credvault.EINVALID, "field \"issuer\": %s could not be reached for discovery", req.URL.Host)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return false, credvault.Errorf(credvault.EINVALID, "field \"issuer\": discovery at %s answered %d", req.URL.Host, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(md); err != nil {
		return false, credvault.Errorf(credvault.EINVALID, "field \"issuer\": the metadata at %s is not JSON", req.URL.Host)
	}
	return true, nil
}
