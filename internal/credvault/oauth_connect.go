package credvault

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"

	"github.com/google/uuid"
)

// authorizationTTL is how long a started authorization (its state) may be
// completed at the callback.
const authorizationTTL = 10 * time.Minute

// OAuthCredentialInput is POST /v1/credentials with kind "oauth2": the
// credential's fields (no value: credvault obtains the token), the app, the
// grant and the scopes (the app's by default).
type OAuthCredentialInput struct {
	CreateCredentialInput
	AppID  string
	Grant  string
	Scopes []string
	// ReturnTo is where the callback ends: "api" (a plain page) or
	// "console" (the credential's console page).
	ReturnTo string
}

// Connection is a credential with its authorization URL, when the person
// still has to authorize at the provider.
type Connection struct {
	Credential   *Credential
	AuthorizeURL string
}

// CreateOAuthCredential creates an oauth2 credential. With the
// authorization_code grant it is pending, and AuthorizeURL is where the
// person authorizes (single-use state, PKCE S256, 10 minutes). With
// client_credentials the first token is fetched now, and nothing is stored
// if the provider refuses. Errors: EFORBIDDEN (scope credentials:write),
// EINVALID (a field, named; reason oauth_provider_error when the provider
// refuses the client credentials, naming its error), EUNAVAILABLE (Vault,
// PostgreSQL, or the provider failing: reason oauth_refresh_unavailable).
func (s *OAuthService) CreateOAuthCredential(ctx context.Context, in OAuthCredentialInput) (*Connection, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireScope(p, ScopeCredentialsWrite); err != nil {
		return nil, err
	}
	if !in.Value.IsZero() {
		return nil, Errorf(EINVALID, "field \"value\" is not allowed for kind oauth2: credvault obtains the token from the provider")
	}
	if !IsUUID(in.AppID) {
		return nil, Errorf(EINVALID, "field \"oauth_app_id\" must be the id of an OAuth app (see GET /v1/oauth-apps)")
	}
	app, err := s.Store.FindOAuthAppByID(ctx, p.OrgID, in.AppID)
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(EINVALID, "field \"oauth_app_id\": no OAuth app %s in your org", in.AppID)
	}
	if err != nil {
		return nil, err
	}
	if in.Grant != GrantAuthorizationCode && in.Grant != GrantClientCredentials {
		return nil, Errorf(EINVALID, "field \"grant\" must be one of: authorization_code client_credentials")
	}
	if in.Grant == GrantAuthorizationCode && app.AuthorizeURL == "" {
		return nil, Errorf(EINVALID, "field \"grant\": OAuth app %s has no authorize_url, so only client_credentials works with it", app.ID)
	}
	scopes := in.Scopes
	if scopes == nil {
		scopes = append([]string{}, app.Scopes...)
	}
	if err := checkScopes("scopes", scopes); err != nil {
		return nil, err
	}
	if in.ReturnTo != "console" {
		in.ReturnTo = "api"
	}
	c := &Credential{
		ID: uuid.NewString(), OrgID: p.OrgID, Name: strings.TrimSpace(in.Name), Kind: KindOAuth2,
		Service: strings.ToLower(strings.TrimSpace(in.Service)), Placement: in.Placement, ParamName: in.ParamName,
		ValuePrefix: in.ValuePrefix, BaseURL: in.BaseURL, AllowedHosts: in.AllowedHosts, TestRequest: in.TestRequest,
		Sharing: Sharing{Mode: SharingPersonal, Members: []Share{}}, Hint: "oauth2", RotatedAt: s.now(),
		OAuth: &OAuthConnection{AppID: app.ID, Grant: in.Grant, Scopes: scopes, ScopesGranted: []string{}, Status: OAuthPending},
	}
	if p.UserID != "" {
		c.OwnerID = &p.UserID
	}
	if c.Service == "" {
		c.Service = app.Preset
	}
	if c.Service == "" {
		c.Service = "custom"
	}
	if !serviceName(c.Service) {
		return nil, Errorf(EINVALID, "field \"service\" must be a name of 1-64 lowercase letters, digits, '-' or '_'")
	}
	if c.Placement == "" {
		c.Placement = PlacementBearer
	}
	if c.Placement == PlacementBasic || c.Placement == PlacementQuery && in.ParamName == "" {
		return nil, Errorf(EINVALID, "field \"placement\" must be bearer (the default), header or query with param_name for an oauth2 credential")
	}
	if c.BaseURL == "" && c.AllowedHosts == nil {
		c.BaseURL = app.BaseURL
	}
	if c.AllowedHosts == nil {
		c.AllowedHosts = append([]string{}, app.APIHosts...)
	}
	if in.Sharing != nil {
		c.Sharing = *in.Sharing
	}
	if err := s.Credentials.check(ctx, c, in.ParamName != ""); err != nil {
		return nil, err
	}
	ev := newAuditEvent(ctx, c.OrgID, "credential.create", "credential", c.ID, map[string]any{
		"name": c.Name, "service": c.Service, "kind": KindOAuth2, "oauth_app_id": app.ID, "grant": in.Grant,
		"placement": c.Placement, "allowed_hosts": c.AllowedHosts, "sharing": c.Sharing.Mode, "scopes": scopes,
	})
	if in.Grant == GrantClientCredentials {
		return s.createClientCredentials(ctx, c, app, ev)
	}
	auth, url, err := s.newAuthorization(c, app, p, in.ReturnTo)
	if err != nil {
		return nil, err
	}
	if err := s.Store.CreateOAuthCredential(ctx, c, auth, ev); err != nil {
		return nil, err
	}
	return &Connection{Credential: c, AuthorizeURL: url}, nil
}

// createClientCredentials fetches the first token before anything is
// stored: a refused client secret leaves nothing behind.
func (s *OAuthService) createClientCredentials(ctx context.Context, c *Credential, app *OAuthApp, ev *AuditEvent) (*Connection, error) {
	secret, err := s.appSecret(ctx, app)
	if err != nil {
		return nil, err
	}
	tok, err := s.Provider.ClientCredentials(ctx, app, secret, c.OAuth.Scopes)
	s.count(err)
	if err != nil {
		return nil, providerRefusal(err, "the provider refused the client credentials")
	}
	if err := s.storeToken(ctx, c, tok, s.now()); err != nil {
		return nil, err
	}
	ev.Data["status"] = c.OAuth.Status
	connect := newAuditEvent(ctx, c.OrgID, "credential.oauth_connect", "credential", c.ID, map[string]any{
		"grant": GrantClientCredentials, "outcome": "ok", "expires_at": c.OAuth.ExpiresAt, "scopes_granted": c.OAuth.ScopesGranted,
	})
	if err := s.Store.CreateOAuthCredential(ctx, c, nil, ev, connect); err != nil {
		return nil, err
	}
	return &Connection{Credential: c}, nil
}

// providerRefusal turns a provider's answer into what the caller sees:
// EINVALID naming the provider's error for a refusal, EUNAVAILABLE for a
// provider that failed.
func providerRefusal(err error, what string) error {
	pe, ok := err.(*OAuthProviderError)
	if !ok {
		return err
	}
	if pe.Transient {
		return &Error{Code: EUNAVAILABLE, Reason: "oauth_refresh_unavailable", Err: err, RetryAfter: 30 * time.Second,
			Message: "the OAuth provider did not answer (" + pe.Code + "); try again later"}
	}
	return &Error{Code: EINVALID, Reason: "oauth_provider_error", Details: map[string]any{"provider_error": pe.Code, "provider_error_description": pe.Description},
		Message: what + ": " + providerText(pe)}
}

// providerText is the provider's error as a person reads it, cut to 300
// bytes.
func providerText(pe *OAuthProviderError) string {
	t := pe.Code
	if pe.Description != "" {
		t += " (" + pe.Description + ")"
	}
	if len(t) > 300 {
		t = strings.ToValidUTF8(t[:300], "")
	}
	return t
}

// newAuthorization makes a single-use state and a PKCE verifier (RFC 7636
// section 4.1: 32 random octets, base64url, 43 characters) and the
// authorization URL carrying the state and the S256 challenge.
func (s *OAuthService) newAuthorization(c *Credential, app *OAuthApp, p *Principal, returnTo string) (*OAuthAuthorization, string, error) {
	state, err := randomToken()
	if err != nil {
		return nil, "", err
	}
	verifier, err := randomToken()
	if err != nil {
		return nil, "", err
	}
	auth := &OAuthAuthorization{
		StateHash: sha256.Sum256([]byte(state)), OrgID: c.OrgID, CredentialID: c.ID, CodeVerifier: verifier,
		RedirectURI: s.RedirectURI(), ReturnTo: returnTo, ExpiresAt: s.now().Add(authorizationTTL).UTC(),
	}
	if p.UserID != "" {
		auth.UserID = &p.UserID
	}
	return auth, s.Provider.AuthCodeURL(app, auth.RedirectURI, c.OAuth.Scopes, state, verifier), nil
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", Wrap(EINTERNAL, err, "no randomness")
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Reconnect starts a new authorization for an oauth2 credential, under the
// same id, so that workflows keep their reference; the current token (if
// any) keeps working until the callback replaces it. A client_credentials
// credential fetches a new token at once. Errors: EFORBIDDEN (scope, or
// only `use`), ENOTFOUND, EINVALID (not an oauth2 credential), and those of
// CreateOAuthCredential.
func (s *OAuthService) Reconnect(ctx context.Context, id, returnTo string) (*Connection, error) {
	c, _, err := s.Credentials.load(ctx, id, ScopeCredentialsWrite, PermissionManage)
	if err != nil {
		return nil, err
	}
	if c.Kind != KindOAuth2 || c.OAuth == nil {
		return nil, Errorf(EINVALID, "credential %s is not an OAuth connection (kind %s): set a new value with PATCH instead", c.ID, c.Kind)
	}
	app, err := s.Store.FindOAuthAppByID(ctx, c.OrgID, c.OAuth.AppID)
	if err != nil {
		return nil, err
	}
	if c.OAuth.Grant == GrantClientCredentials {
		if _, _, err := s.refresh(ctx, c.OrgID, c.ID, triggerReconnect, 0, nil); err != nil {
			return nil, err
		}
		c, err = s.Credentials.Store.FindCredentialByID(ctx, c.OrgID, c.ID)
		if err != nil {
			return nil, err
		}
		return &Connection{Credential: c}, nil
	}
	if returnTo != "console" {
		returnTo = "api"
	}
	auth, url, err := s.newAuthorization(c, app, PrincipalFrom(ctx), returnTo)
	if err != nil {
		return nil, err
	}
	ev := newAuditEvent(ctx, c.OrgID, "credential.oauth_reconnect", "credential", c.ID, map[string]any{"status": c.OAuth.Status})
	if err := s.Store.StartOAuthAuthorization(ctx, c, auth, ev); err != nil {
		return nil, err
	}
	return &Connection{Credential: c, AuthorizeURL: url}, nil
}
