package credvault

import (
	"context"
	"time"
)

// Credential kinds: a static value someone typed, or an OAuth 2.0 access
// token (RFC 6749) that credvault obtains and keeps fresh itself.
const (
	KindStatic = "static"
	KindOAuth2 = "oauth2"
)

// OAuth grants credvault runs (RFC 6749 sections 4.1 and 4.4). The
// authorization code grant always uses PKCE S256 (RFC 7636).
const (
	GrantAuthorizationCode = "authorization_code"
	GrantClientCredentials = "client_credentials"
)

// OAuth connection statuses, as GET /v1/credentials/{id} shows them in
// oauth.status.
const (
	OAuthPending        = "pending"         // waiting for the person to authorize at the provider
	OAuthConnected      = "connected"       // a token is stored and credvault keeps it fresh
	OAuthRefreshing     = "refreshing"      // a token request is in flight
	OAuthRefreshFailing = "refresh_failing" // the provider failed transiently; retried with backoff
	OAuthNeedsReauth    = "needs_reauth"    // the provider refused the grant; only a reconnect helps
)

// Token endpoint client authentication methods (RFC 6749 section 2.3.1,
// names from the IANA "OAuth Token Endpoint Authentication Methods"
// registry).
const (
	AuthMethodBasic = "client_secret_basic"
	AuthMethodPost  = "client_secret_post"
)

// OAuthApp is a client an org registered at an OAuth provider: where the
// provider's endpoints are, the client id and the client secret (as
// transit ciphertext, never shown), the default scopes and how the client
// authenticates at the token endpoint.
type OAuthApp struct {
	ID     string
	OrgID  string
	Name   string
	Preset string // a preset id, or ""
	Issuer string // the issuer endpoints were discovered from, or ""
	// IssRequired: the issuer's metadata says
	// authorization_response_iss_parameter_supported (RFC 9207 section
	// 3), so a callback without iss is refused.
	IssRequired      bool
	AuthorizeURL     string
	TokenURL         string
	RevocationURL    string            // RFC 7009 endpoint, "" when the provider has none
	ScopeSeparator   string            // " " (RFC 6749 section 3.3) unless the provider says otherwise
	AuthorizeParams  map[string]string // extra authorization request parameters (Google's access_type=offline)
	APIHosts         []string          // where the provider's APIs live: a credential's default allowed_hosts
	BaseURL          string            // a credential's default base_url
	ClientID         string
	SecretCiphertext string
	SecretKeyVersion int
	Scopes           []string
	TokenAuthMethod  string
	CreatedBy        *string
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// OAuthConnection is the OAuth side of an oauth2 credential: which app and
// grant, and the state of its tokens. The access token is the credential's
// ciphertext; the refresh token is RefreshCiphertext. Neither is ever
// shown.
type OAuthConnection struct {
	AppID             string
	Grant             string
	Scopes            []string
	ScopesGranted     []string
	Status            string
	RefreshCiphertext string
	ExpiresAt         *time.Time
	RefreshAt         *time.Time
	LastRefreshedAt   *time.Time
	LastError         string
	Failures          int
	NextAttemptAt     *time.Time
	TokenVersion      int64
}

// usable reports whether the stored access token may be sent at now: one
// is stored and it has not expired (a token without an expiry is used until
// the upstream refuses it).
func (o *OAuthConnection) usable(now time.Time) bool {
	return o.TokenVersion > 0 && (o.ExpiresAt == nil || now.Before(*o.ExpiresAt))
}

// OAuthToken is what a token endpoint answered (RFC 6749 section 5.1).
// ExpiresAt is zero when the provider gave no expires_in.
type OAuthToken struct {
	AccessToken  Secret
	RefreshToken Secret // zero when the provider sent none (keep the old one)
	ExpiresAt    time.Time
	Scopes       []string // the granted scope, when the provider names it
}

// OAuthEndpoints is what a preset, discovery or the caller's explicit URLs
// give an app.
type OAuthEndpoints struct {
	Preset          string
	Issuer          string
	IssRequired     bool // RFC 9207: the metadata's authorization_response_iss_parameter_supported
	AuthorizeURL    string
	TokenURL        string
	RevocationURL   string
	ScopeSeparator  string
	AuthorizeParams map[string]string
	APIHosts        []string
	BaseURL         string
	TokenAuthMethod string // the method the provider documents, "" = the caller's choice
	DefaultScopes   []string
}

// OAuthProviderError is a token endpoint's error answer (RFC 6749 section
// 5.2) or a failure to reach it. Transient failures (5xx, 429, timeouts,
// refused connections) are retried with backoff; others need a person.
// Code and Description are the provider's words (never a token).
type OAuthProviderError struct {
	Code        string
	Description string
	Status      int
	Transient   bool
}

func (e *OAuthProviderError) Error() string {
	s := "oauth provider: " + e.Code
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// OAuthProvider is the client side of OAuth 2.0 as the domain sees it
// (internal/oauth implements it on golang.org/x/oauth2). Every method that
// talks to the provider returns *OAuthProviderError for the provider's
// answers and failures.
type OAuthProvider interface {
	// Endpoints resolves a preset id, an issuer (OIDC discovery, RFC 8414)
	// or explicit URLs into endpoints. Errors: EINVALID naming the field.
	Endpoints(ctx context.Context, preset, issuer, authorizeURL, tokenURL, revocationURL string) (OAuthEndpoints, error)
	// AuthCodeURL is the authorization request (RFC 6749 section 4.1.1)
	// with PKCE S256 derived from verifier.
	AuthCodeURL(app *OAuthApp, redirectURI string, scopes []string, state, verifier string) string
	Exchange(ctx context.Context, app *OAuthApp, secret Secret, redirectURI, code, verifier string) (*OAuthToken, error)
	Refresh(ctx context.Context, app *OAuthApp, secret, refreshToken Secret) (*OAuthToken, error)
	ClientCredentials(ctx context.Context, app *OAuthApp, secret Secret, scopes []string) (*OAuthToken, error)
	// Revoke asks the provider to revoke a token (RFC 7009).
	Revoke(ctx context.Context, app *OAuthApp, secret, token Secret, hint string) error
}

// OAuthAuthorization is an authorization in flight: the single-use state
// (stored only as its SHA-256), bound to org, user and credential.
type OAuthAuthorization struct {
	StateHash    [32]byte
	OrgID        string
	UserID       *string
	CredentialID string
	CodeVerifier string
	RedirectURI  string
	ReturnTo     string // "api" or "console"
	ExpiresAt    time.Time
}

// OAuthWrite is what a locked refresh decided to store: the connection
// fields of the credential (always), its access token ciphertext when
// TokenChanged, and the audit events.
type OAuthWrite struct {
	TokenChanged bool
	Events       []*AuditEvent
}

// OAuthStore persists OAuth apps, connections and authorizations.
type OAuthStore interface {
	CreateOAuthApp(ctx context.Context, a *OAuthApp, ev *AuditEvent) error
	// FindOAuthAppByID returns ENOTFOUND for an id outside orgID.
	FindOAuthAppByID(ctx context.Context, orgID, id string) (*OAuthApp, error)
	FindOAuthApps(ctx context.Context, orgID string, page Page) ([]*OAuthApp, error)
	// UpdateOAuthApp stores a's fields (and its secret when secretChanged).
	UpdateOAuthApp(ctx context.Context, a *OAuthApp, secretChanged bool, ev *AuditEvent) error
	// DeleteOAuthApp returns ECONFLICT while credentials use the app.
	DeleteOAuthApp(ctx context.Context, orgID, id string, ev *AuditEvent) error

	// CreateOAuthCredential stores an oauth2 credential (c.OAuth set) with
	// its shares, and the authorization when auth is not nil.
	CreateOAuthCredential(ctx context.Context, c *Credential, auth *OAuthAuthorization, evs ...*AuditEvent) error
	// StartOAuthAuthorization stores a new authorization for c and moves
	// it back to pending (reconnect), in one transaction.
	StartOAuthAuthorization(ctx context.Context, c *Credential, auth *OAuthAuthorization, ev *AuditEvent) error
	// TakeOAuthAuthorization deletes and returns the authorization with
	// that state hash: a state works once. ENOTFOUND when there is none.
	TakeOAuthAuthorization(ctx context.Context, hash [32]byte) (*OAuthAuthorization, error)
	// LockOAuthCredential runs fn holding credential id's cluster-wide
	// lock (one refresh at a time across replicas), on the credential as
	// read under the lock. When wait is false and another holds the lock,
	// it returns locked=false without running fn. mark shows status
	// "refreshing" to readers while fn's token request runs. A non-nil
	// write is stored with c (even when fn also returned an error) and
	// announced ("cred:<id>") before the lock ends. ENOTFOUND when the
	// credential is gone.
	LockOAuthCredential(ctx context.Context, orgID, id string, wait bool, fn func(c *Credential, mark func() error) (*OAuthWrite, error)) (locked bool, err error)
	// ClaimDueOAuth takes the locks of up to limit connected or failing
	// connections whose refresh time (and backoff) passed at now,
	// earliest first, skipping those another holds, and reads and marks
	// them under the locks. The caller must Release the claim.
	ClaimDueOAuth(ctx context.Context, now time.Time, limit int) (OAuthClaim, error)
}

// OAuthAppContext is the derivation context of an app's client secret.
func OAuthAppContext(orgID, appID string) []byte {
	return []byte("org:" + orgID + "|oauth_app:" + appID)
}

// RefreshTokenContext is the derivation context of a credential's refresh
// token: bound to its row like the value, and apart from the access token.
func RefreshTokenContext(orgID, credentialID string) []byte {
	return []byte("org:" + orgID + "|cred:" + credentialID + "|refresh_token")
}
