package cli

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"credvault/api/client"
)

var keyCommands = map[string]func(context.Context, *session, []string) error{
	"list":    keysList,
	"create":  keysCreate,
	"get":     keysGet,
	"roll":    keysRoll,
	"revoke":  keysRevoke,
	"disable": func(ctx context.Context, s *session, args []string) error { return keysSwitch(ctx, s, args, false) },
	"enable":  func(ctx context.Context, s *session, args []string) error { return keysSwitch(ctx, s, args, true) },
}

// parseID reads the one positional argument, an object id.
func parseID(fs *flag.FlagSet, args []string) (uuid.UUID, error) {
	pos, err := parseFlags(fs, args, 1, "ID")
	if err != nil {
		return uuid.Nil, err
	}
	id, err := uuid.Parse(pos[0])
	if err != nil {
		return uuid.Nil, usageErrorf("%s: %q is not an id (a UUID)", fs.Name(), pos[0])
	}
	return id, nil
}

func keyRow(k client.APIKey) []string {
	scopes := make([]string, len(k.Scopes))
	for i, s := range k.Scopes {
		scopes[i] = string(s)
	}
	integration := "-"
	if k.IntegrationId != nil {
		integration = k.IntegrationId.String()
	}
	return []string{k.Id.String(), k.Name, k.Display, strings.Join(scopes, ","), string(k.Status), strconv.FormatBool(k.Enabled), integration,
		timeOrDash(k.ExpiresAt), timeOrDash(k.LastUsedAt)}
}

var keyHeader = []string{"ID", "NAME", "KEY", "SCOPES", "STATUS", "ENABLED", "INTEGRATION", "EXPIRES", "LAST USED"}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func keysList(ctx context.Context, s *session, args []string) error {
	fs := flag.NewFlagSet("keys list", flag.ContinueOnError)
	out := outputFlag(fs)
	integration := fs.String("integration", "", "only the keys of this integration (its id), or none")
	if _, err := parseFlags(fs, args, 0, "[--integration ID|none] [--output table|json]"); err != nil {
		return err
	}
	params := &client.ApiKeyListParams{}
	if *integration != "" {
		if *integration != "none" {
			if _, err := parseIntegrationFlag(*integration); err != nil {
				return err
			}
		}
		params.IntegrationId = integration
	}
	api, err := s.api(*out)
	if err != nil {
		return err
	}
	r, err := api.ApiKeyListWithResponse(ctx, params)
	if err != nil {
		return err
	}
	if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
		return err
	}
	return s.table(keyHeader, rowsOf(r.JSON200.Data, keyRow))
}

func keysGet(ctx context.Context, s *session, args []string) error {
	fs := flag.NewFlagSet("keys get", flag.ContinueOnError)
	out := outputFlag(fs)
	id, err := parseID(fs, args)
	if err != nil {
		return err
	}
	api, err := s.api(*out)
	if err != nil {
		return err
	}
	r, err := api.ApiKeyGetWithResponse(ctx, id)
	if err != nil {
		return err
	}
	if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
		return err
	}
	return s.table(keyHeader, [][]string{keyRow(*r.JSON200)})
}

// keysCreate is `keys create --name N --scope S...`: the new key is
// printed once, on stdout (alone in table mode, so that `> file` keeps
// just the key; in the JSON body with --output json), and never anywhere
// else.
func keysCreate(ctx context.Context, s *session, args []string) error {
	fs := flag.NewFlagSet("keys create", flag.ContinueOnError)
	out := outputFlag(fs)
	name := fs.String("name", "", "the key's name (required)")
	var scopes stringList
	fs.Var(&scopes, "scope", "a scope the key holds (repeat, or comma-separate)")
	expires := fs.String("expires-in", "", "7d, 30d, 90d or never")
	kind := fs.String("kind", "", "user (default) or service")
	userID := fs.String("user-id", "", "create the key for this member (owners and admins)")
	rlReq := fs.Int("rate-limit", 0, "requests allowed per --rate-window (0: none)")
	rlWin := fs.Int("rate-window", 60, "rate-limit window in seconds")
	integration := fs.String("integration", "", "put the key in this integration (its id)")
	if _, err := parseFlags(fs, args, 0, "--name NAME --scope SCOPE... [--expires-in 30d] [--kind service] [--rate-limit N --rate-window SECONDS] [--integration ID]"); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	if *name == "" || len(scopes) == 0 {
		return usageErrorf("keys create needs --name and at least one --scope")
	}
	body := client.APIKeyCreateRequest{Name: *name}
	for _, sc := range scopes {
		body.Scopes = append(body.Scopes, client.Scope(sc))
	}
	if *expires != "" {
		e := client.APIKeyCreateRequestExpiresIn(*expires)
		body.ExpiresIn = &e
	}
	if *kind != "" {
		k := client.APIKeyCreateRequestKind(*kind)
		body.Kind = &k
	}
	if *userID != "" {
		u, err := uuid.Parse(*userID)
		if err != nil {
			return usageErrorf("--user-id %q is not an id", *userID)
		}
		body.UserId = &u
	}
	if *rlReq > 0 {
		body.RateLimit = &client.RateLimit{Requests: *rlReq, WindowSeconds: *rlWin}
	}
	var err error
	if body.IntegrationId, err = parseIntegrationFlag(*integration); err != nil {
		return err
	}
	api, err := s.client()
	if err != nil {
		return err
	}
	r, err := api.ApiKeyCreateWithResponse(ctx, body)
	if err != nil {
		return err
	}
	if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
		return err
	}
	return s.printNewKey(r.JSON201)
}

// printNewKey shows a created or rolled key: the key alone on stdout, the
// rest on stderr.
func (s *session) printNewKey(k *client.APIKeyCreated) error {
	fmt.Fprintf(s.env.Stderr, "Created key %s (%s, %s). It is shown only this once:\n", k.Id, k.Name, k.Display)
	_, err := fmt.Fprintln(s.env.Stdout, k.Key)
	return err
}

func keysRoll(ctx context.Context, s *session, args []string) error {
	fs := flag.NewFlagSet("keys roll", flag.ContinueOnError)
	out := outputFlag(fs)
	grace := fs.Int("grace", 0, "seconds the old key keeps working")
	id, err := parseID(fs, args)
	if err != nil {
		return err
	}
	api, err := s.api(*out)
	if err != nil {
		return err
	}
	r, err := api.ApiKeyRollWithResponse(ctx, id, client.APIKeyRollRequest{GraceSeconds: grace})
	if err != nil {
		return err
	}
	if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
		return err
	}
	return s.printNewKey(r.JSON201)
}

func keysRevoke(ctx context.Context, s *session, args []string) error {
	fs := flag.NewFlagSet("keys revoke", flag.ContinueOnError)
	out := outputFlag(fs)
	id, err := parseID(fs, args)
	if err != nil {
		return err
	}
	api, err := s.api(*out)
	if err != nil {
		return err
	}
	r, err := api.ApiKeyRevokeWithResponse(ctx, id)
	if err != nil {
		return err
	}
	if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
		return err
	}
	return s.table(keyHeader, [][]string{keyRow(*r.JSON200)})
}
