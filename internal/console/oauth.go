package console

import (
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// oauthConnectData is the page between starting an authorization and the
// provider: the console's form-action 'self' policy stops a form post from
// redirecting to another origin, so the person follows a link instead.
type oauthConnectData struct {
	C            *credvault.Credential
	AuthorizeURL string
	Provider     string // the authorization endpoint's host
}

// handleOAuthConnect is the "Connect" of an OAuth app: it creates an
// oauth2 credential (authorization code, PKCE) and shows the link to the
// provider; the callback comes back to the credential's page.
func (c *Console) handleOAuthConnect(ctx *fiber.Ctx, v *view) error {
	if c.cfg.Services.OAuth == nil {
		return c.fail(ctx, v, credvault.Errorf(credvault.ENOTFOUND, "OAuth connections are not configured"))
	}
	in := credvault.OAuthCredentialInput{
		CreateCredentialInput: credvault.CreateCredentialInput{
			Name:    strings.TrimSpace(ctx.FormValue("name")),
			BaseURL: strings.TrimSpace(ctx.FormValue("base_url")),
			Sharing: &credvault.Sharing{Mode: ctx.FormValue("sharing", credvault.SharingPersonal)},
		},
		AppID: strings.TrimSpace(ctx.FormValue("oauth_app_id")), Grant: credvault.GrantAuthorizationCode, ReturnTo: "console",
	}
	if hosts := splitList(ctx.FormValue("allowed_hosts")); len(hosts) > 0 {
		in.AllowedHosts = hosts
	}
	var conn *credvault.Connection
	err := credvault.CheckPrintable("name", in.Name)
	if err == nil {
		conn, err = c.cfg.Services.OAuth.CreateOAuthCredential(ctx.UserContext(), in)
	}
	if err != nil {
		if credvault.ErrorCode(err) != credvault.EINVALID {
			return c.fail(ctx, v, err)
		}
		v.Error = credvault.ErrorMessage(err)
		d := credentialNewData{Presets: credvault.ServicePresets(), Form: map[string]string{"name": in.Name}}
		d.Apps, _ = c.cfg.Services.OAuth.FindOAuthApps(ctx.UserContext(), credvault.Page{Limit: 100})
		v.Title, v.Nav, v.Data = "Connect a service", "credentials", d
		return c.render(ctx, fiber.StatusBadRequest, "credential_new", v)
	}
	return c.renderConnect(ctx, v, conn)
}

// handleOAuthReconnect is "Connect" or "Reconnect" on an oauth2
// credential's page: a new authorization for the same id.
func (c *Console) handleOAuthReconnect(ctx *fiber.Ctx, v *view) error {
	if c.cfg.Services.OAuth == nil {
		return c.fail(ctx, v, credvault.Errorf(credvault.ENOTFOUND, "OAuth connections are not configured"))
	}
	conn, err := c.cfg.Services.OAuth.Reconnect(ctx.UserContext(), ctx.Params("id"), "console")
	if err != nil {
		return c.credentialFormError(ctx, v, err)
	}
	return c.renderConnect(ctx, v, conn)
}

func (c *Console) renderConnect(ctx *fiber.Ctx, v *view, conn *credvault.Connection) error {
	if conn.AuthorizeURL == "" { // client_credentials: connected already
		return ctx.Redirect("/credentials/"+url.PathEscape(conn.Credential.ID)+"?connected=1", fiber.StatusSeeOther)
	}
	d := oauthConnectData{C: conn.Credential, AuthorizeURL: conn.AuthorizeURL}
	if u, err := url.Parse(conn.AuthorizeURL); err == nil {
		d.Provider = u.Host
	}
	v.Title, v.Nav, v.Data = "Connect "+conn.Credential.Name, "credentials", d
	return c.render(ctx, fiber.StatusOK, "oauth_connect", v)
}

// truncateText cuts s to n bytes on a character boundary.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
