package oauth

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"credvault/internal/credvault"
)

// Client implements credvault.OAuthProvider on golang.org/x/oauth2: the
// grant logic is the library's; credvault adds presets, discovery,
// revocation and the translation of answers into its own errors.
type Client struct {
	// HTTP sends every request to providers. It should be the egress-safe
	// client (no private addresses unless allowed, timeouts, no redirects).
	HTTP *http.Client
	// Timeout bounds one token, discovery or revocation request (default 30s).
	Timeout time.Duration
}

var _ credvault.OAuthProvider = (*Client)(nil)

func (c *Client) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	t := c.Timeout
	if t <= 0 {
		t = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	if c.HTTP != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, c.HTTP)
	}
	return ctx, cancel
}

func authStyle(method string) oauth2.AuthStyle {
	if method == credvault.AuthMethodPost {
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleInHeader
}

// config is the x/oauth2 view of an app. Scopes are joined with the
// app's separator here, because x/oauth2 always joins with a space.
func config(app *credvault.OAuthApp, secret credvault.Secret, redirectURI string, scopes []string) *oauth2.Config {
	cfg := &oauth2.Config{
		ClientID: app.ClientID, ClientSecret: secret.Reveal(), RedirectURL: redirectURI,
		Endpoint: oauth2.Endpoint{AuthURL: app.AuthorizeURL, TokenURL: app.TokenURL, AuthStyle: authStyle(app.TokenAuthMethod)},
	}
	if len(scopes) > 0 {
		sep := app.ScopeSeparator
		if sep == "" {
			sep = " "
		}
		cfg.Scopes = []string{strings.Join(scopes, sep)}
	}
	return cfg
}

// AuthCodeURL is the authorization request with state and the PKCE S256
// challenge of verifier (RFC 7636 section 4.2), plus the app's extra
// parameters.
func (c *Client) AuthCodeURL(app *credvault.OAuthApp, redirectURI string, scopes []string, state, verifier string) string {
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	for k, v := range app.AuthorizeParams {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	return config(app, credvault.Secret{}, redirectURI, scopes).AuthCodeURL(state, opts...)
}

// Exchange trades an authorization code for tokens, sending the PKCE
// verifier (RFC 6749 section 4.1.3, RFC 7636 section 4.5).
func (c *Client) Exchange(ctx context.Context, app *credvault.OAuthApp, secret credvault.Secret, redirectURI, code, verifier string) (*credvault.OAuthToken, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	tok, err := config(app, secret, redirectURI, nil).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	return token(tok, "", err)
}

// Refresh runs the refresh token grant (RFC 6749 section 6). A provider
// that rotates answers a new refresh token; one that does not leaves the
// result's RefreshToken zero (the old one stays).
func (c *Client) Refresh(ctx context.Context, app *credvault.OAuthApp, secret, refreshToken credvault.Secret) (*credvault.OAuthToken, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	// An expired token makes the source refresh at once.
	old := &oauth2.Token{RefreshToken: refreshToken.Reveal(), Expiry: time.Unix(1, 0)}
	tok, err := config(app, secret, "", nil).TokenSource(ctx, old).Token()
	return token(tok, refreshToken.Reveal(), err)
}

// ClientCredentials runs the client credentials grant (RFC 6749 section
// 4.4).
func (c *Client) ClientCredentials(ctx context.Context, app *credvault.OAuthApp, secret credvault.Secret, scopes []string) (*credvault.OAuthToken, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	cc := &clientcredentials.Config{ClientID: app.ClientID, ClientSecret: secret.Reveal(), TokenURL: app.TokenURL,
		AuthStyle: authStyle(app.TokenAuthMethod)}
	if len(scopes) > 0 {
		cc.Scopes = config(app, secret, "", scopes).Scopes
	}
	tok, err := cc.Token(ctx)
	return token(tok, "", err)
}

// token converts x/oauth2's answer. oldRefresh is the refresh token that
// was sent: x/oauth2 hands it back when the provider sent none, which is
// not a rotation.
func token(tok *oauth2.Token, oldRefresh string, err error) (*credvault.OAuthToken, error) {
	if err != nil {
		return nil, providerError(err)
	}
	out := &credvault.OAuthToken{AccessToken: credvault.NewSecret(tok.AccessToken), ExpiresAt: tok.Expiry}
	if tok.RefreshToken != "" && tok.RefreshToken != oldRefresh {
		out.RefreshToken = credvault.NewSecret(tok.RefreshToken)
	}
	if sc, ok := tok.Extra("scope").(string); ok && sc != "" {
		out.Scopes = strings.FieldsFunc(sc, func(r rune) bool { return r == ' ' || r == ',' })
	}
	return out, nil
}

// providerError sorts a failed token request: the provider's error answer
// (RFC 6749 section 5.2) is a refusal unless its status is 5xx or 429;
// timeouts and network failures are transient. The message holds the
// provider's error code and description only, never the response body.
func providerError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		pe := &credvault.OAuthProviderError{Code: re.ErrorCode, Description: re.ErrorDescription, Status: status}
		if pe.Code == "" {
			pe.Code = "http_" + http.StatusText(status)
			if status == 0 {
				pe.Code = "bad_response"
			}
		}
		pe.Transient = status >= 500 || status == http.StatusTooManyRequests || (re.ErrorCode == "" && status < 400)
		return pe
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &credvault.OAuthProviderError{Code: "timeout", Description: "the token endpoint did not answer in time", Transient: true}
	case errors.Is(err, context.Canceled):
		return credvault.Wrap(credvault.EUNAVAILABLE, err, "the token request was canceled")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return &credvault.OAuthProviderError{Code: "unreachable", Description: "the token endpoint could not be reached", Transient: true}
	}
	// x/oauth2's own complaints about the answer ("server response
	// missing access_token"): the provider answered something unusable.
	return &credvault.OAuthProviderError{Code: "bad_response", Description: "the token endpoint answered without a usable token", Transient: true}
}

// Revoke sends an RFC 7009 revocation request, authenticating the client
// as it does at the token endpoint. 200 means revoked (or already
// invalid, section 2.2); anything else is an error.
func (c *Client) Revoke(ctx context.Context, app *credvault.OAuthApp, secret, tok credvault.Secret, hint string) error {
	if app.RevocationURL == "" {
		return &credvault.OAuthProviderError{Code: "unsupported", Description: "the provider has no revocation endpoint"}
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	form := url.Values{"token": {tok.Reveal()}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	if app.TokenAuthMethod == credvault.AuthMethodPost {
		form.Set("client_id", app.ClientID)
		form.Set("client_secret", secret.Reveal())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, app.RevocationURL, strings.NewReader(form.Encode()))
	if err != nil {
		return &credvault.OAuthProviderError{Code: "bad_revocation_url"}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if app.TokenAuthMethod != credvault.AuthMethodPost {
		// RFC 6749 section 2.3.1: form-encode both before Basic.
		req.SetBasicAuth(url.QueryEscape(app.ClientID), url.QueryEscape(secret.Reveal()))
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return providerError(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return &credvault.OAuthProviderError{Code: "http_" + http.StatusText(resp.StatusCode), Status: resp.StatusCode,
			Transient: resp.StatusCode >= 500}
	}
	return nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}
