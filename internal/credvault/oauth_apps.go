package credvault

import (
	"context"
	"strings"

	"github.com/google/uuid"
)

// OAuthService holds the rules of OAuth 2.0 connections: apps (per org,
// managed by owners and admins), oauth2 credentials and their
// authorizations, and the refresh of their tokens (oauth_refresh.go).
type OAuthService struct {
	Store       OAuthStore
	Credentials *CredentialService
	Provider    OAuthProvider
	Transit     Transit
	Audit       AuditStore
	// PublicURL is CREDVAULT_PUBLIC_URL; the redirect URI to register at a
	// provider is PublicURL + OAuthCallbackPath.
	PublicURL string
	// Refresh tunes the refresher; zero fields take their defaults.
	Refresh RefreshPolicy
	// OnRefresh, when set, is told of every token request's outcome
	// ("ok", "invalid_grant", "failed", ...): the metrics hook.
	OnRefresh func(outcome string)
	// Events, when set, receives the oauth.* events of status changes.
	Events EventStore

	flight flightGroup
}

// OAuthCallbackPath is where providers send the person back (RFC 6749
// section 3.1.2).
const OAuthCallbackPath = "/oauth/callback"

// RedirectURI is the redirect URI to register at every provider.
func (s *OAuthService) RedirectURI() string {
	return strings.TrimSuffix(s.PublicURL, "/") + OAuthCallbackPath
}

// OAuthAppInput is POST /v1/oauth-apps: a name, then one of preset |
// issuer | authorize_url + token_url (+ revocation_url), then the client.
type OAuthAppInput struct {
	Name            string
	Preset          string
	Issuer          string
	AuthorizeURL    string
	TokenURL        string
	RevocationURL   string
	ClientID        string
	ClientSecret    Secret
	Scopes          []string
	TokenAuthMethod string
}

// OAuthAppUpdate is PATCH /v1/oauth-apps/{id}; nil leaves a field as it is.
type OAuthAppUpdate struct {
	Name            *string
	ClientID        *string
	ClientSecret    *Secret
	Scopes          *[]string
	TokenAuthMethod *string
}

// CreateOAuthApp registers an app. The client secret is encrypted through
// transit before anything is stored. Errors: EFORBIDDEN (scope
// credentials:write, or not an owner or admin), EINVALID (a field, named;
// discovery that fails), ECONFLICT (name taken), EUNAVAILABLE.
func (s *OAuthService) CreateOAuthApp(ctx context.Context, in OAuthAppInput) (*OAuthApp, error) {
	p, err := s.appCaller(ctx, ScopeCredentialsWrite, true)
	if err != nil {
		return nil, err
	}
	sources := 0
	for _, set := range []bool{in.Preset != "", in.Issuer != "", in.AuthorizeURL != "" || in.TokenURL != "" || in.RevocationURL != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return nil, Errorf(EINVALID, "name exactly one of field \"preset\", field \"issuer\" (discovery) or fields \"authorize_url\" + \"token_url\"")
	}
	a := &OAuthApp{ID: uuid.NewString(), OrgID: p.OrgID, Name: strings.TrimSpace(in.Name), ClientID: in.ClientID,
		Scopes: in.Scopes, TokenAuthMethod: in.TokenAuthMethod}
	if p.UserID != "" {
		a.CreatedBy = &p.UserID
	}
	if err := checkAppFields(a); err != nil {
		return nil, err
	}
	if in.ClientSecret.IsZero() || len(in.ClientSecret.Reveal()) > 2000 {
		return nil, Errorf(EINVALID, "field \"client_secret\" must be 1-2000 characters")
	}
	ep, err := s.Provider.Endpoints(ctx, in.Preset, in.Issuer, in.AuthorizeURL, in.TokenURL, in.RevocationURL)
	if err != nil {
		return nil, err
	}
	a.Preset, a.Issuer, a.AuthorizeURL, a.TokenURL, a.RevocationURL = ep.Preset, ep.Issuer, ep.AuthorizeURL, ep.TokenURL, ep.RevocationURL
	a.IssRequired = ep.IssRequired
	a.ScopeSeparator, a.AuthorizeParams, a.APIHosts, a.BaseURL = ep.ScopeSeparator, ep.AuthorizeParams, ep.APIHosts, ep.BaseURL
	if a.TokenAuthMethod == "" {
		a.TokenAuthMethod = ep.TokenAuthMethod
	}
	if a.TokenAuthMethod == "" {
		a.TokenAuthMethod = AuthMethodBasic
	}
	if a.Scopes == nil {
		a.Scopes = append([]string{}, ep.DefaultScopes...)
	}
	if err := s.encryptAppSecret(ctx, a, in.ClientSecret); err != nil {
		return nil, err
	}
	ev := newAuditEvent(ctx, a.OrgID, "oauth_app.create", "oauth_app", a.ID, map[string]any{
		"name": a.Name, "preset": a.Preset, "issuer": a.Issuer, "token_url": a.TokenURL, "client_id": a.ClientID,
	})
	if err := s.Store.CreateOAuthApp(ctx, a, ev); err != nil {
		return nil, err
	}
	return a, nil
}

func checkAppFields(a *OAuthApp) error {
	if a.Name == "" || len(a.Name) > 200 {
		return Errorf(EINVALID, "field \"name\" must be 1-200 characters")
	}
	if a.ClientID == "" || len(a.ClientID) > 500 || strings.ContainsAny(a.ClientID, "\r\n") {
		return Errorf(EINVALID, "field \"client_id\" must be 1-500 characters on one line")
	}
	switch a.TokenAuthMethod {
	case "", AuthMethodBasic, AuthMethodPost:
	default:
		return Errorf(EINVALID, "field \"token_auth_method\" must be one of: client_secret_basic client_secret_post")
	}
	return checkScopes("scopes", a.Scopes)
}

// checkScopes: each scope is a scope-token of RFC 6749 section 3.3
// (printable ASCII without space, '"' or '\').
func checkScopes(field string, scopes []string) error {
	if len(scopes) > 100 {
		return Errorf(EINVALID, "field %q holds at most 100 scopes", field)
	}
	for _, sc := range scopes {
		if sc == "" || len(sc) > 500 {
			return Errorf(EINVALID, "field %q: each scope must be 1-500 characters", field)
		}
		for i := 0; i < len(sc); i++ {
			if c := sc[i]; c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' {
				return Errorf(EINVALID, "field %q: scope %q is not a scope-token (RFC 6749 section 3.3)", field, sc)
			}
		}
	}
	return nil
}

func (s *OAuthService) encryptAppSecret(ctx context.Context, a *OAuthApp, secret Secret) error {
	ct, v, err := seal(ctx, s.Transit, secret, OAuthAppContext(a.OrgID, a.ID))
	if err != nil {
		return err
	}
	a.SecretCiphertext, a.SecretKeyVersion = ct, v
	return nil
}

// appSecret decrypts an app's client secret.
func (s *OAuthService) appSecret(ctx context.Context, a *OAuthApp) (Secret, error) {
	pt, err := s.Transit.Decrypt(ctx, a.SecretCiphertext, OAuthAppContext(a.OrgID, a.ID))
	if err != nil {
		return Secret{}, err
	}
	return NewSecret(string(pt)), nil
}

// appCaller checks the scope and, for changes, the role.
func (s *OAuthService) appCaller(ctx context.Context, scope string, manage bool) (*Principal, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireScope(p, scope); err != nil {
		return nil, err
	}
	if manage {
		if err := requireManager(p, "manage OAuth apps"); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// FindOAuthApp returns one app of the caller's org (every member may read
// apps, to connect with them). Errors: EFORBIDDEN, ENOTFOUND.
func (s *OAuthService) FindOAuthApp(ctx context.Context, id string) (*OAuthApp, error) {
	p, err := s.appCaller(ctx, ScopeCredentialsRead, false)
	if err != nil {
		return nil, err
	}
	return s.Store.FindOAuthAppByID(ctx, p.OrgID, id)
}

// FindOAuthApps lists the org's apps, newest first. Errors: EFORBIDDEN.
func (s *OAuthService) FindOAuthApps(ctx context.Context, page Page) ([]*OAuthApp, error) {
	p, err := s.appCaller(ctx, ScopeCredentialsRead, false)
	if err != nil {
		return nil, err
	}
	return s.Store.FindOAuthApps(ctx, p.OrgID, page)
}

// UpdateOAuthApp changes an app's name, client or scopes; a new client
// secret is encrypted before anything is written. Endpoints do not change:
// register a new app for another provider. Errors: EFORBIDDEN, ENOTFOUND,
// EINVALID, ECONFLICT, EUNAVAILABLE.
func (s *OAuthService) UpdateOAuthApp(ctx context.Context, id string, upd OAuthAppUpdate) (*OAuthApp, error) {
	p, err := s.appCaller(ctx, ScopeCredentialsWrite, true)
	if err != nil {
		return nil, err
	}
	a, err := s.Store.FindOAuthAppByID(ctx, p.OrgID, id)
	if err != nil {
		return nil, err
	}
	fields := []string{}
	if upd.Name != nil {
		a.Name = strings.TrimSpace(*upd.Name)
		fields = append(fields, "name")
	}
	if upd.ClientID != nil {
		a.ClientID = *upd.ClientID
		fields = append(fields, "client_id")
	}
	if upd.Scopes != nil {
		a.Scopes = *upd.Scopes
		fields = append(fields, "scopes")
	}
	if upd.TokenAuthMethod != nil {
		if *upd.TokenAuthMethod == "" {
			return nil, Errorf(EINVALID, "field \"token_auth_method\" must be one of: client_secret_basic client_secret_post")
		}
		a.TokenAuthMethod = *upd.TokenAuthMethod
		fields = append(fields, "token_auth_method")
	}
	if err := checkAppFields(a); err != nil {
		return nil, err
	}
	if upd.ClientSecret != nil {
		if upd.ClientSecret.IsZero() || len(upd.ClientSecret.Reveal()) > 2000 {
			return nil, Errorf(EINVALID, "field \"client_secret\" must be 1-2000 characters")
		}
		if err := s.encryptAppSecret(ctx, a, *upd.ClientSecret); err != nil {
			return nil, err
		}
		fields = append(fields, "client_secret")
	}
	if len(fields) == 0 {
		return nil, Errorf(EINVALID, "nothing to change")
	}
	ev := newAuditEvent(ctx, a.OrgID, "oauth_app.update", "oauth_app", a.ID, map[string]any{"fields": fields})
	if err := s.Store.UpdateOAuthApp(ctx, a, upd.ClientSecret != nil, ev); err != nil {
		return nil, err
	}
	return a, nil
}

// DeleteOAuthApp removes an app no credential uses. Errors: EFORBIDDEN,
// ENOTFOUND, ECONFLICT (credentials still use it: delete them first).
func (s *OAuthService) DeleteOAuthApp(ctx context.Context, id string) error {
	p, err := s.appCaller(ctx, ScopeCredentialsWrite, true)
	if err != nil {
		return err
	}
	ev := newAuditEvent(ctx, p.OrgID, "oauth_app.delete", "oauth_app", id, nil)
	return s.Store.DeleteOAuthApp(ctx, p.OrgID, id, ev)
}
