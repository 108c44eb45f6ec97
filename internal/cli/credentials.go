package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"credvault/api/client"
)

var credentialCommands = []subcommand{
	{"list", credentialsList},
	{"create", credentialsCreate},
	{"connect", credentialsConnect},
	{"share", credentialsShare},
	{"rotate", credentialsRotate},
	{"test", credentialsTest},
	{"delete", credentialsDelete},
}

var credentialHeader = []string{"ID", "NAME", "SERVICE", "PLACEMENT", "BASE URL", "HINT", "SHARING", "PERMISSION"}

func credentialRow(c client.Credential) []string {
	return []string{c.Id.String(), c.Name, orDash(c.Service), string(c.Placement), orDash(c.BaseUrl), c.Hint, string(c.Sharing.Mode), string(c.Permission)}
}

func credentialsList(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("credentials list")
	service := fs.String("service", "", "only this service (stripe, openai, a custom name)")
	scope := fs.String("scope", "", "mine, shared or all (default: all you may use)")
	if _, err := parseFlags(fs, args, 0, "[--service S] [--scope mine|shared|all] [--output table|json]"); err != nil {
		return err
	}
	api, err := s.api(*out)
	if err != nil {
		return err
	}
	params := &client.CredentialListParams{}
	setIf(&params.Service, *service)
	if *scope != "" {
		sc := client.CredentialListParamsScope(*scope)
		params.Scope = &sc
	}
	r, err := api.CredentialListWithResponse(ctx, params)
	if err != nil {
		return err
	}
	if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
		return err
	}
	return s.table(credentialHeader, rowsOf(r.JSON200.Data, credentialRow))
}

// credentialsCreate is `credentials create --name N [--service S] ...`;
// the value is read from stdin or a prompt, never from a flag.
func credentialsCreate(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("credentials create")
	name := fs.String("name", "", "the credential's name (required)")
	service := fs.String("service", "", "a preset (stripe, openai, ...) or a custom service name")
	placement := fs.String("placement", "", "header, query, bearer or basic (default: the preset's)")
	username := fs.String("username", "", "the user name sent with the value (placement basic)")
	testPath := fs.String("test-path", "", "a path (under the base URL) that `credentials test` requests with GET")
	testStatus := fs.Int("test-status", 0, "the status that means the test passed (default 200)")
	param := fs.String("param-name", "", "the header or query parameter name")
	prefix := fs.String("value-prefix", "", "text sent before the value (header placement)")
	baseURL := fs.String("base-url", "", "the API's base URL (default: the preset's)")
	var hosts stringList
	fs.Var(&hosts, "allowed-host", "a host the credential may be sent to (repeat)")
	if _, err := parseFlags(fs, args, 0, "--name NAME [--service S] [--placement P --param-name N | --username U] [--base-url URL] [--allowed-host H]... [--test-path P [--test-status N]]   (the value is read from stdin or a prompt)"); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	if *name == "" {
		return usageErrorf("credentials create needs --name")
	}
	value, err := readSecret(s.env, "credential value")
	if err != nil {
		return err
	}
	body := client.CredentialCreateRequest{Name: *name, Value: &value}
	setIf(&body.Service, *service)
	setIf(&body.ParamName, *param)
	setIf(&body.ValuePrefix, *prefix)
	setIf(&body.BaseUrl, *baseURL)
	setIf(&body.Username, *username)
	if *testStatus != 0 && *testPath == "" {
		return usageErrorf("--test-status needs --test-path")
	}
	if *testPath != "" {
		tr := client.TestRequest{Path: *testPath}
		if *testStatus != 0 {
			tr.ExpectStatus = testStatus
		}
		body.TestRequest = &tr
	}
	if *placement != "" {
		p := client.Placement(*placement)
		body.Placement = &p
	}
	if len(hosts) > 0 {
		h := []client.AllowedHost(hosts)
		body.AllowedHosts = &h
	}
	api, err := s.client()
	if err != nil {
		return err
	}
	r, err := api.CredentialCreateWithResponse(ctx, body)
	if err != nil {
		return err
	}
	if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
		return err
	}
	return s.table(credentialHeader, [][]string{credentialRow(*r.JSON201)})
}

func setIf(dst **string, v string) {
	if v != "" {
		*dst = &v
	}
}

// credentialsRotate is `credentials rotate ID`: the new value from stdin or
// a prompt; the id stays, so every workflow using it keeps working.
func credentialsRotate(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("credentials rotate")
	id, err := parseID(fs, args)
	if err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	value, err := readSecret(s.env, "new credential value")
	if err != nil {
		return err
	}
	api, err := s.client()
	if err != nil {
		return err
	}
	r, err := api.CredentialUpdateWithResponse(ctx, id, client.CredentialUpdateRequest{Value: &value})
	if err != nil {
		return err
	}
	if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
		return err
	}
	return s.table(credentialHeader, [][]string{credentialRow(*r.JSON200)})
}

// credentialsShare is `credentials share ID --mode personal|team|members
// [--member EMAIL|USER_ID[:use|manage]]...`.
func credentialsShare(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("credentials share")
	mode := fs.String("mode", "", "personal, team or members (required)")
	var members stringList
	fs.Var(&members, "member", "a member's EMAIL or USER_ID, with :manage to let them edit (repeat; mode members)")
	id, err := parseID(fs, args)
	if err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	if *mode == "" {
		return usageErrorf("credentials share needs --mode personal|team|members")
	}
	body := client.Sharing{Mode: client.SharingMode(*mode)}
	api, err := s.client()
	if err != nil {
		return err
	}
	if len(members) > 0 {
		var list []client.Share
		ids := &memberIDs{api: api}
		for _, m := range members {
			ref, perm := m, "use"
			if i := strings.LastIndexByte(m, ':'); i >= 0 {
				ref, perm = m[:i], m[i+1:]
			}
			u, err := ids.resolve(ctx, "--member", ref)
			if err != nil {
				return err
			}
			list = append(list, client.Share{UserId: u, Permission: client.SharePermission(perm)})
		}
		body.Members = &list
	}
	r, err := api.CredentialSharingWithResponse(ctx, id, body)
	if err != nil {
		return err
	}
	if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
		return err
	}
	if err := s.table(credentialHeader, [][]string{credentialRow(*r.JSON200)}); err != nil {
		return err
	}
	return s.printShares(ctx, api, r.JSON200.Sharing)
}

// printShares lists who a credential is shared with, by email where the
// caller may list members (else by user id), with each permission.
func (s *session) printShares(ctx context.Context, api *client.ClientWithResponses, sh client.Sharing) error {
	if sh.Members == nil || len(*sh.Members) == 0 {
		return nil
	}
	ids := &memberIDs{api: api}
	parts := make([]string, 0, len(*sh.Members))
	for _, m := range *sh.Members {
		who := ids.email(ctx, m.UserId)
		if who == "" {
			who = m.UserId.String()
		}
		parts = append(parts, who+" ("+string(m.Permission)+")")
	}
	_, err := fmt.Fprintln(s.env.Stdout, "Shared with: "+strings.Join(parts, ", "))
	return err
}

func credentialsTest(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("credentials test")
	api, id, err := s.idCommand(fs, out, args)
	if err != nil {
		return err
	}
	r, err := api.CredentialTestWithResponse(ctx, id)
	if err != nil {
		return err
	}
	table, err := s.result(*out, r.HTTPResponse, r.Body)
	if err != nil {
		return err
	}
	if table {
		if _, err := fmt.Fprintln(s.env.Stdout, strings.TrimSpace(string(r.Body))); err != nil {
			return err
		}
	}
	// The call succeeded; the test itself may not have: exit 10 then, so
	// that `credvault credentials test ID && deploy` stops.
	var res struct {
		OK           bool   `json:"ok"`
		Status       int    `json:"status"`
		ExpectStatus int    `json:"expect_status"`
		Code         string `json:"code"`
	}
	if err := json.Unmarshal(r.Body, &res); err != nil {
		return fmt.Errorf("unexpected answer to the credential test: %w", err)
	}
	if !res.OK {
		detail := fmt.Sprintf("upstream answered %d, expected %d", res.Status, res.ExpectStatus)
		if res.Code != "" {
			detail = res.Code
		}
		return errTestFailed{detail: detail}
	}
	return nil
}

func credentialsDelete(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("credentials delete")
	force := fs.Bool("force", false, "delete even if workflows used it in the last 30 days")
	api, id, err := s.idCommand(fs, out, args)
	if err != nil {
		return err
	}
	r, err := api.CredentialDeleteWithResponse(ctx, id, &client.CredentialDeleteParams{Force: force})
	if err != nil {
		return err
	}
	return s.deleted(*out, "credential", id.String(), r.HTTPResponse, r.Body)
}
