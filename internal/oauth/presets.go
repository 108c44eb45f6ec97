// Package oauth is the client side of OAuth 2.0 for credvault: provider
// presets (each fact with the provider document it comes from), OIDC and
// RFC 8414 discovery, the grants on golang.org/x/oauth2, RFC 7009
// revocation, and the proactive refresh loop.
package oauth

import "sort"

// Preset is what credvault knows about a provider so that registering an
// app needs only the client id and secret.
type Preset struct {
	ID            string
	Name          string
	AuthorizeURL  string
	TokenURL      string
	RevocationURL string // RFC 7009 endpoint; "" when the provider has none
	// ScopeSeparator joins scopes in the authorization request (RFC 6749
	// section 3.3 says space; Slack uses commas).
	ScopeSeparator string
	// AuthorizeParams are the extra authorization request parameters the
	// provider needs to hand out a refresh token (or to pick an audience).
	AuthorizeParams map[string]string
	// DefaultScopes are asked for when the app names none (the scope that
	// makes the provider issue a refresh token, where one is needed).
	DefaultScopes []string
	// TokenAuthMethod is how the provider wants the client to
	// authenticate at the token endpoint.
	TokenAuthMethod string
	APIHosts        []string
	BaseURL         string
	// Sources are the provider documents the facts above come from.
	Sources []string
}

var presets = map[string]Preset{
	"google": {
		ID: "google", Name: "Google",
		AuthorizeURL:  "https://accounts.google.com/o/oauth2/v2/auth",
		TokenURL:      "https://oauth2.googleapis.com/token",
		RevocationURL: "https://oauth2.googleapis.com/revoke",
		// A refresh token only with access_type=offline, and again on a
		// later consent only with prompt=consent.
		AuthorizeParams: map[string]string{"access_type": "offline", "prompt": "consent"},
		ScopeSeparator:  " ", TokenAuthMethod: "client_secret_post",
		// googleapis.com is a public suffix (a wildcard over it is refused):
		// the hosts of the common APIs are named one by one.
		APIHosts: []string{"www.googleapis.com", "gmail.googleapis.com", "sheets.googleapis.com", "docs.googleapis.com",
			"people.googleapis.com", "oauth2.googleapis.com"}, BaseURL: "https://www.googleapis.com",
		Sources: []string{
			"https://developers.google.com/identity/protocols/oauth2/web-server",
			"https://accounts.google.com/.well-known/openid-configuration",
		},
	},
	"github": {
		ID: "github", Name: "GitHub",
		AuthorizeURL:   "https://github.com/login/oauth/authorize",
		TokenURL:       "https://github.com/login/oauth/access_token",
		ScopeSeparator: " ", TokenAuthMethod: "client_secret_post",
		APIHosts: []string{"api.github.com"}, BaseURL: "https://api.github.com",
		Sources: []string{
			"https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps",
			"https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens",
		},
	},
	"slack": {
		ID: "slack", Name: "Slack",
		AuthorizeURL:   "https://slack.com/oauth/v2/authorize",
		TokenURL:       "https://slack.com/api/oauth.v2.access",
		ScopeSeparator: ",", TokenAuthMethod: "client_secret_post",
		APIHosts: []string{"slack.com"}, BaseURL: "https://slack.com/api",
		Sources: []string{
			"https://api.slack.com/authentication/oauth-v2",
			"https://api.slack.com/authentication/rotation",
		},
	},
	"microsoft": {
		ID: "microsoft", Name: "Microsoft Entra ID",
		AuthorizeURL:   "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
		TokenURL:       "https://login.microsoftonline.com/common/oauth2/v2.0/token",
		ScopeSeparator: " ", TokenAuthMethod: "client_secret_post",
		// offline_access makes Entra ID issue a refresh token.
		DefaultScopes: []string{"offline_access", "https://graph.microsoft.com/.default"},
		APIHosts:      []string{"graph.microsoft.com"}, BaseURL: "https://graph.microsoft.com",
		Sources: []string{
			"https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow",
			"https://learn.microsoft.com/en-us/entra/identity-platform/scopes-oidc#offline_access",
		},
	},
	"salesforce": {
		ID: "salesforce", Name: "Salesforce",
		AuthorizeURL:  "https://login.salesforce.com/services/oauth2/authorize",
		TokenURL:      "https://login.salesforce.com/services/oauth2/token",
		RevocationURL: "https://login.salesforce.com/services/oauth2/revoke",
		// The refresh_token scope makes Salesforce issue a refresh token;
		// API calls go to the org's own My Domain host.
		ScopeSeparator: " ", TokenAuthMethod: "client_secret_post",
		DefaultScopes: []string{"api", "refresh_token"},
		APIHosts:      []string{"*.my.salesforce.com"},
		Sources: []string{
			"https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm",
			"https://help.salesforce.com/s/articleView?id=sf.remoteaccess_revoke_token.htm",
			"https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_tokens_scopes.htm",
		},
	},
	"hubspot": {
		ID: "hubspot", Name: "HubSpot",
		AuthorizeURL:   "https://app.hubspot.com/oauth/authorize",
		TokenURL:       "https://api.hubapi.com/oauth/v1/token",
		ScopeSeparator: " ", TokenAuthMethod: "client_secret_post",
		APIHosts: []string{"api.hubapi.com"}, BaseURL: "https://api.hubapi.com",
		Sources: []string{
			"https://developers.hubspot.com/docs/api/oauth-quickstart-guide",
			"https://developers.hubspot.com/docs/api/working-with-oauth",
		},
	},
	"notion": {
		ID: "notion", Name: "Notion",
		AuthorizeURL: "https://api.notion.com/v1/oauth/authorize",
		TokenURL:     "https://api.notion.com/v1/oauth/token",
		// owner=user is required on the authorization request.
		AuthorizeParams: map[string]string{"owner": "user"},
		ScopeSeparator:  " ", TokenAuthMethod: "client_secret_basic",
		APIHosts: []string{"api.notion.com"}, BaseURL: "https://api.notion.com",
		Sources: []string{"https://developers.notion.com/docs/authorization"},
	},
	"atlassian": {
		ID: "atlassian", Name: "Atlassian",
		AuthorizeURL: "https://auth.atlassian.com/authorize",
		TokenURL:     "https://auth.atlassian.com/oauth/token",
		// audience and prompt=consent are required; offline_access makes
		// Atlassian issue a (rotating) refresh token.
		AuthorizeParams: map[string]string{"audience": "api.atlassian.com", "prompt": "consent"},
		ScopeSeparator:  " ", TokenAuthMethod: "client_secret_post",
		DefaultScopes: []string{"offline_access"},
		APIHosts:      []string{"api.atlassian.com"}, BaseURL: "https://api.atlassian.com",
		Sources: []string{
			"https://developer.atlassian.com/cloud/jira/platform/oauth-2-3lo-apps/",
			"https://developer.atlassian.com/cloud/oauth/getting-started/refresh-tokens/",
		},
	},
}

// FindPreset returns the preset with that id.
func FindPreset(id string) (Preset, bool) {
	p, ok := presets[id]
	return p, ok
}

// Presets lists every preset, by id.
func Presets() []Preset {
	out := make([]Preset, 0, len(presets))
	for _, p := range presets {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// presetIDs names the presets for error messages.
func presetIDs() string {
	s := ""
	for i, p := range Presets() {
		if i > 0 {
			s += " "
		}
		s += p.ID
	}
	return s
}
