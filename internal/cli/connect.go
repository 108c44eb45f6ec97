package cli

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"credvault/api/client"
)

// credentialsConnect is `credentials connect`: with --app it creates an
// OAuth 2.0 credential through that app; with an ID it reconnects an
// existing one (same id, so workflows keep their reference). For the
// authorization_code grant it prints the URL to open in a browser; for
// client_credentials the connection is made at once.
func credentialsConnect(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("credentials connect")
	app := fs.String("app", "", "the OAuth app to connect through (see GET /v1/oauth-apps); creates a new credential")
	name := fs.String("name", "", "the new credential's name (with --app)")
	grant := fs.String("grant", "authorization_code", "authorization_code (a person authorizes in a browser) or client_credentials")
	service := fs.String("service", "", "a service name (default: the app's preset)")
	baseURL := fs.String("base-url", "", "the API's base URL (default: the app's)")
	var hosts, scopes stringList
	fs.Var(&hosts, "allowed-host", "a host the token may be sent to (repeat; default: the app's API hosts)")
	fs.Var(&scopes, "scope", "a scope to ask for (repeat; default: the app's)")
	pos, err := parseFlags(fs, args, -1, "(--app APP_ID --name NAME [--grant G] [--scope S]... [--base-url URL] [--allowed-host H]... | ID)")
	if err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	api, err := s.client()
	if err != nil {
		return err
	}
	var cred *client.Credential
	switch {
	case *app != "" && len(pos) == 0:
		appID, err := uuid.Parse(*app)
		if err != nil {
			return usageErrorf("credentials connect: --app %q is not an id (a UUID)", *app)
		}
		if *name == "" {
			return usageErrorf("credentials connect --app needs --name")
		}
		kind, g := client.CredentialCreateRequestKindOauth2, client.CredentialCreateRequestGrant(*grant)
		if !g.Valid() {
			return usageErrorf("credentials connect: --grant must be authorization_code or client_credentials")
		}
		body := client.CredentialCreateRequest{Name: *name, Kind: &kind, OauthAppId: &appID, Grant: &g}
		setIf(&body.Service, *service)
		setIf(&body.BaseUrl, *baseURL)
		if len(scopes) > 0 {
			sc := []string(scopes)
			body.Scopes = &sc
		}
		if len(hosts) > 0 {
			h := []client.AllowedHost(hosts)
			body.AllowedHosts = &h
		}
		r, err := api.CredentialCreateWithResponse(ctx, body)
		if err != nil {
			return err
		}
		if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
			return err
		}
		cred = r.JSON201
	case *app == "" && len(pos) == 1:
		id, err := uuid.Parse(pos[0])
		if err != nil {
			return usageErrorf("credentials connect: %q is not an id (a UUID)", pos[0])
		}
		r, err := api.CredentialReconnectWithResponse(ctx, id)
		if err != nil {
			return err
		}
		if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
			return err
		}
		cred = r.JSON200
	default:
		return usageErrorf("credentials connect needs either --app APP_ID --name NAME (a new connection) or the ID of one to reconnect")
	}
	if cred.AuthorizeUrl != nil {
		_, err := fmt.Fprintf(s.env.Stdout, "Open this URL in a browser to connect %q (%s); it works once, for 10 minutes:\n%s\n",
			cred.Name, cred.Id, *cred.AuthorizeUrl)
		return err
	}
	status := "connected"
	if cred.Oauth != nil {
		status = string(cred.Oauth.Status)
	}
	_, err = fmt.Fprintf(s.env.Stdout, "%q (%s) is %s.\n", cred.Name, cred.Id, status)
	return err
}
