package httpapi

import (
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// oauthStatus is an oauth2 credential's connection as GET shows it: never
// a token.
type oauthStatus struct {
	AppID           string     `json:"oauth_app_id"`
	Grant           string     `json:"grant"`
	Status          string     `json:"status"`
	Scopes          []string   `json:"scopes"`
	ScopesGranted   []string   `json:"scopes_granted"`
	ExpiresAt       *time.Time `json:"expires_at"`
	LastRefreshedAt *time.Time `json:"last_refreshed_at"`
	LastError       string     `json:"last_error"`
	NextAttemptAt   *time.Time `json:"next_attempt_at"`
}

func oauthJSON(o *credvault.OAuthConnection) *oauthStatus {
	if o == nil {
		return nil
	}
	return &oauthStatus{AppID: o.AppID, Grant: o.Grant, Status: o.Status, Scopes: o.Scopes, ScopesGranted: o.ScopesGranted,
		ExpiresAt: o.ExpiresAt, LastRefreshedAt: o.LastRefreshedAt, LastError: o.LastError, NextAttemptAt: o.NextAttemptAt}
}

type oauthAppRequest struct {
	Name            string   `json:"name" validate:"required,max=200,printable_name"`
	Preset          string   `json:"preset" validate:"max=64"`
	Issuer          string   `json:"issuer" validate:"max=2048"`
	AuthorizeURL    string   `json:"authorize_url" validate:"max=2048"`
	TokenURL        string   `json:"token_url" validate:"max=2048"`
	RevocationURL   string   `json:"revocation_url" validate:"max=2048"`
	ClientID        string   `json:"client_id" validate:"required,max=500"`
	ClientSecret    string   `json:"client_secret" validate:"required,max=2000"`
	Scopes          []string `json:"scopes"`
	TokenAuthMethod string   `json:"token_auth_method" validate:"omitempty,oneof=client_secret_basic client_secret_post"`
}

type oauthAppUpdateRequest struct {
	Name            *string   `json:"name" validate:"omitempty,max=200,printable_name"`
	ClientID        *string   `json:"client_id" validate:"omitempty,max=500"`
	ClientSecret    *string   `json:"client_secret" validate:"omitempty,max=2000"`
	Scopes          *[]string `json:"scopes"`
	TokenAuthMethod *string   `json:"token_auth_method" validate:"omitempty,oneof=client_secret_basic client_secret_post"`
}

// oauthAppResponse is an app without its client secret, with the redirect
// URI to register at the provider.
type oauthAppResponse struct {
	ID              string            `json:"id"`
	Name            string            `json:"name"`
	Preset          string            `json:"preset"`
	Issuer          string            `json:"issuer"`
	AuthorizeURL    string            `json:"authorize_url"`
	TokenURL        string            `json:"token_url"`
	RevocationURL   string            `json:"revocation_url"`
	ScopeSeparator  string            `json:"scope_separator"`
	AuthorizeParams map[string]string `json:"authorize_params"`
	APIHosts        []string          `json:"api_hosts"`
	BaseURL         string            `json:"base_url"`
	ClientID        string            `json:"client_id"`
	Scopes          []string          `json:"scopes"`
	TokenAuthMethod string            `json:"token_auth_method"`
	RedirectURI     string            `json:"redirect_uri"`
	CreatedBy       *string           `json:"created_by"`
	CreatedAt       time.Time         `json:"created_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
}

func (s *Server) oauthAppJSON(c *fiber.Ctx, a *credvault.OAuthApp) oauthAppResponse {
	params := a.AuthorizeParams
	if params == nil {
		params = map[string]string{}
	}
	return oauthAppResponse{ID: a.ID, Name: a.Name, Preset: a.Preset, Issuer: a.Issuer, AuthorizeURL: a.AuthorizeURL,
		TokenURL: a.TokenURL, RevocationURL: a.RevocationURL, ScopeSeparator: a.ScopeSeparator, AuthorizeParams: params,
		APIHosts: a.APIHosts, BaseURL: a.BaseURL, ClientID: a.ClientID, Scopes: a.Scopes, TokenAuthMethod: a.TokenAuthMethod,
		RedirectURI: s.cfg.Services.OAuth.RedirectURI(), CreatedBy: a.CreatedBy, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

// oauth is the OAuth service; a server wired without one answers 503.
func (s *Server) oauth() (*credvault.OAuthService, error) {
	if s.cfg.Services.OAuth == nil {
		return nil, credvault.Errorf(credvault.EUNAVAILABLE, "OAuth connections are not configured on this server")
	}
	return s.cfg.Services.OAuth, nil
}

func (s *Server) handleOAuthAppCreate(c *fiber.Ctx) error {
	o, err := s.oauth()
	if err != nil {
		return err
	}
	var in oauthAppRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	a, err := o.CreateOAuthApp(c.UserContext(), credvault.OAuthAppInput{
		Name: in.Name, Preset: in.Preset, Issuer: in.Issuer, AuthorizeURL: in.AuthorizeURL, TokenURL: in.TokenURL,
		RevocationURL: in.RevocationURL, ClientID: in.ClientID, ClientSecret: credvault.NewSecret(in.ClientSecret),
		Scopes: in.Scopes, TokenAuthMethod: in.TokenAuthMethod,
	})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(s.oauthAppJSON(c, a))
}

func (s *Server) handleOAuthAppList(c *fiber.Ctx) error {
	o, err := s.oauth()
	if err != nil {
		return err
	}
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	list, err := o.FindOAuthApps(c.UserContext(), p)
	if err != nil {
		return err
	}
	out := make([]oauthAppResponse, len(list))
	for i, a := range list {
		out[i] = s.oauthAppJSON(c, a)
	}
	return c.JSON(page(out, p.Limit, func(r oauthAppResponse) string { return keysetOf(r.CreatedAt, r.ID) }))
}

func (s *Server) handleOAuthAppGet(c *fiber.Ctx) error {
	o, err := s.oauth()
	if err != nil {
		return err
	}
	a, err := o.FindOAuthApp(c.UserContext(), pathID(c))
	if err != nil {
		return err
	}
	return c.JSON(s.oauthAppJSON(c, a))
}

func (s *Server) handleOAuthAppUpdate(c *fiber.Ctx) error {
	o, err := s.oauth()
	if err != nil {
		return err
	}
	var in oauthAppUpdateRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	upd := credvault.OAuthAppUpdate{Name: in.Name, ClientID: in.ClientID, Scopes: in.Scopes, TokenAuthMethod: in.TokenAuthMethod}
	if in.ClientSecret != nil {
		v := credvault.NewSecret(*in.ClientSecret)
		upd.ClientSecret = &v
	}
	a, err := o.UpdateOAuthApp(c.UserContext(), pathID(c), upd)
	if err != nil {
		return err
	}
	return c.JSON(s.oauthAppJSON(c, a))
}

func (s *Server) handleOAuthAppDelete(c *fiber.Ctx) error {
	o, err := s.oauth()
	if err != nil {
		return err
	}
	if err := o.DeleteOAuthApp(c.UserContext(), pathID(c)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// createOAuthCredential is POST /v1/credentials with kind "oauth2".
func (s *Server) createOAuthCredential(c *fiber.Ctx, in *createCredentialRequest) error {
	o, err := s.oauth()
	if err != nil {
		return err
	}
	input := credvault.OAuthCredentialInput{
		CreateCredentialInput: credvault.CreateCredentialInput{
			Name: in.Name, Service: in.Service, Placement: in.Placement, ParamName: in.ParamName, ValuePrefix: in.ValuePrefix,
			Username: in.Username, BaseURL: in.BaseURL, AllowedHosts: in.AllowedHosts, TestRequest: in.TestRequest,
			Value: credvault.NewSecret(in.Value),
		},
		AppID: in.OAuthAppID, Grant: in.Grant, Scopes: in.Scopes, ReturnTo: "api",
	}
	if in.Username != "" {
		return credvault.Errorf(credvault.EINVALID, "field \"username\" is not allowed for kind oauth2")
	}
	if in.Sharing != nil {
		input.Sharing = &credvault.Sharing{Mode: in.Sharing.Mode, Members: in.Sharing.Members}
	}
	conn, err := o.CreateOAuthCredential(c.UserContext(), input)
	if err != nil {
		return err
	}
	out := credentialJSON(c, conn.Credential)
	out.AuthorizeURL = conn.AuthorizeURL
	return c.Status(fiber.StatusCreated).JSON(out)
}

func (s *Server) handleCredentialReconnect(c *fiber.Ctx) error {
	o, err := s.oauth()
	if err != nil {
		return err
	}
	conn, err := o.Reconnect(c.UserContext(), pathID(c), "api")
	if err != nil {
		return err
	}
	out := credentialJSON(c, conn.Credential)
	out.AuthorizeURL = conn.AuthorizeURL
	return c.JSON(out)
}

// handleOAuthCallback is GET /oauth/callback, where providers send the
// person back. It needs no API key: the single-use state is the proof.
func (s *Server) handleOAuthCallback(c *fiber.Ctx) error {
	o, err := s.oauth()
	if err != nil {
		return s.callbackPage(c, fiber.StatusServiceUnavailable, "Connection failed", credvault.ErrorMessage(err), "")
	}
	if err := knownParams(c, "state", "code", "error", "error_description", "error_uri", "iss", "scope",
		"session_state", "authuser", "prompt", "hd"); err != nil {
		return s.callbackPage(c, fiber.StatusBadRequest, "Connection failed", credvault.ErrorMessage(err), "")
	}
	in := credvault.CallbackInput{
		State: strings.Clone(c.Query("state")), Code: strings.Clone(c.Query("code")), Error: strings.Clone(c.Query("error")),
		ErrorDescription: strings.Clone(c.Query("error_description")), Issuer: strings.Clone(c.Query("iss")),
	}
	in.SessionOrgID, in.SessionUserID, err = s.consoleSession(c)
	var res *credvault.CallbackResult
	if err == nil {
		res, err = o.Callback(c.UserContext(), in)
	}
	if err != nil {
		status := statusOf[credvault.ErrorCode(err)]
		if status == 0 || status >= 500 {
			s.log.Error("oauth callback failed", "request_id", requestID(c), "error", err.Error())
			status = fiber.StatusServiceUnavailable
		}
		return s.callbackPage(c, status, "Connection failed", credvault.ErrorMessage(err), "")
	}
	if res.ReturnTo == "console" && s.cfg.Console != nil {
		q := url.Values{}
		if res.Error != "" {
			q.Set("oauth_error", res.Error)
		} else {
			q.Set("connected", "1")
		}
		return c.Redirect("/credentials/"+url.PathEscape(res.CredentialID)+"?"+q.Encode(), fiber.StatusSeeOther)
	}
	if res.Error != "" {
		return s.callbackPage(c, fiber.StatusBadRequest, "Connection refused by the provider",
			"The provider did not authorize the connection. The credential stays pending; start again with POST /v1/credentials/"+res.CredentialID+"/reconnect.", res.Error)
	}
	return s.callbackPage(c, fiber.StatusOK, "Connected", "Credential "+res.CredentialID+" is connected. You may close this window.", "")
}

// consoleSession returns the org and user of the request's console
// session, "" when it has none (or one that ended). Errors: as
// SessionService.Authenticate, but for an ended session.
func (s *Server) consoleSession(c *fiber.Ctx) (orgID, userID string, err error) {
	if s.cfg.Console == nil || s.cfg.Services.Sessions == nil {
		return "", "", nil
	}
	tok := c.Cookies(s.cfg.Console.SessionCookieName())
	if tok == "" {
		return "", "", nil
	}
	p, _, err := s.cfg.Services.Sessions.Authenticate(c.UserContext(), tok)
	if credvault.ErrorCode(err) == credvault.EUNAUTHORIZED {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	return p.OrgID, p.UserID, nil
}

func (s *Server) callbackPage(c *fiber.Ctx, status int, title, msg, detail string) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("Content-Security-Policy", pageCSP)
	c.Set("Referrer-Policy", "no-referrer")
	c.Status(status)
	return plainPage.Execute(c.Response().BodyWriter(), map[string]string{"Title": title, "Message": msg, "Detail": detail})
}
