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

var keyCommands = []subcommand{
	{"list", keysList},
	{"create", keysCreate},
	{"get", keysGet},
	{"roll", keysRoll},
	{"revoke", keysRevoke},
	{"disable", func(ctx context.Context, s *session, args []string) error { return keysSwitch(ctx, s, args, false) }},
	{"enable", func(ctx context.Context, s *session, args []string) error { return keysSwitch(ctx, s, args, true) }},
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

// idCommand is the start every `<noun> <verb> [flags] ID` command shares:
// it parses fs's flags and the one id, checks --output and opens the API
// client. Usage errors (exit code 2) name the command.
func (s *session) idCommand(fs *flag.FlagSet, out *string, args []string) (*client.ClientWithResponses, uuid.UUID, error) {
	id, err := parseID(fs, args)
	if err != nil {
		return nil, uuid.Nil, err
	}
	api, err := s.api(*out)
	if err != nil {
		return nil, uuid.Nil, err
	}
	return api, id, nil
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

var keyHeader = []string{"ID", "NAME", "OWNER", "KEY", "SCOPES", "STATUS", "ENABLED", "INTEGRATION", "EXPIRES", "LAST USED"}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func keysList(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("keys list")
	status := fs.String("status", "", "active, expired, revoked or all (default: active)")
	env := fs.String("environment", "", "only keys with this environment label")
	tag := fs.String("tag", "", "only keys with this tag, key=value")
	q := fs.String("search", "", "only keys whose name contains this text")
	owner := fs.String("user", "", "only keys of this member: EMAIL or USER_ID (owners and admins)")
	integration := fs.String("integration", "", "only the keys of this integration (its id), or none")
	if _, err := parseFlags(fs, args, 0, "[--status S] [--environment E] [--tag k=v] [--search TEXT] [--user EMAIL|ID] [--integration ID|none] [--output table|json]"); err != nil {
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
	if *status != "" {
		st := client.ApiKeyListParamsStatus(*status)
		params.Status = &st
	}
	if *env != "" {
		e := client.EnvironmentLabel(*env)
		params.Environment = &e
	}
	setIf(&params.Tag, *tag)
	setIf(&params.Q, *q)
	members := &memberIDs{api: api}
	if *owner != "" {
		u, err := members.resolve(ctx, "--user", *owner)
		if err != nil {
			return err
		}
		params.UserId = &u
	}
	r, err := api.ApiKeyListWithResponse(ctx, params)
	if err != nil {
		return err
	}
	if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
		return err
	}
	return s.table(keyHeader, rowsOf(r.JSON200.Data, func(k client.APIKey) []string { return keyRowOwner(ctx, members, k) }))
}

// keyRowOwner is keyRow with the OWNER column: the member's email (their
// user id when the caller may not list members), or "service".
func keyRowOwner(ctx context.Context, members *memberIDs, k client.APIKey) []string {
	owner := "service"
	if k.UserId != nil {
		if owner = members.email(ctx, *k.UserId); owner == "" {
			owner = k.UserId.String()
		}
	}
	row := keyRow(k)
	return append(row[:2:2], append([]string{owner}, row[2:]...)...)
}

func keysGet(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("keys get")
	api, id, err := s.idCommand(fs, out, args)
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
	return s.table(keyHeader, [][]string{keyRowOwner(ctx, &memberIDs{api: api}, *r.JSON200)})
}

// keysCreate is `keys create --name N --scope S...`: the new key is
// printed once, on stdout (alone in table mode, so that `> file` keeps
// just the key; in the JSON body with --output json), and never anywhere
// else.
func keysCreate(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("keys create")
	name := fs.String("name", "", "the key's name (required)")
	var scopes stringList
	fs.Var(&scopes, "scope", "a scope the key holds (repeat, or comma-separate)")
	expires := fs.String("expires-in", "", "7d, 30d, 90d or never")
	expiresAt := fs.String("expires-at", "", "an RFC 3339 date-time such as 2027-01-15T00:00:00Z (instead of --expires-in)")
	kind := fs.String("kind", "", "user (default) or service")
	userRef := fs.String("user", "", "create the key for this member: EMAIL or USER_ID (owners and admins)")
	fs.StringVar(userRef, "user-id", "", "the same as --user")
	format := fs.String("format", "", "opaque (default) or jwt (a signed token verifiable with the JWKS)")
	agent := fs.String("agent", "", "the agent or integration a jwt key is for (its agent claim)")
	mode := fs.String("mode", "", "live (default) or test: the key's prefix")
	envLabel := fs.String("environment", "", "a free label such as production or staging")
	var tags stringList
	fs.Var(&tags, "tag", "a tag key=value (repeat, or comma-separate)")
	rlReq := fs.Int("rate-limit", 0, "requests allowed per --rate-window (0: none)")
	rlWin := fs.Int("rate-window", 60, "rate-limit window in seconds")
	integration := fs.String("integration", "", "put the key in this integration (its id)")
	if _, err := parseFlags(fs, args, 0, "--name NAME --scope SCOPE... [--expires-in 30d | --expires-at TIME] [--format opaque|jwt] [--agent NAME] "+
		"[--mode live|test] [--environment LABEL] [--tag k=v]... [--kind service | --user EMAIL|ID] [--rate-limit N --rate-window SECONDS] [--integration ID]"); err != nil {
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
	if *expiresAt != "" {
		t, err := time.Parse(time.RFC3339, *expiresAt)
		if err != nil {
			return usageErrorf("--expires-at %q is not an RFC 3339 date-time such as 2027-01-15T00:00:00Z", *expiresAt)
		}
		body.ExpiresAt = &t
	}
	if *kind != "" {
		k := client.APIKeyCreateRequestKind(*kind)
		body.Kind = &k
	}
	if *format != "" {
		f := client.APIKeyCreateRequestFormat(*format)
		body.Format = &f
	}
	setIf(&body.Agent, *agent)
	if *mode != "" {
		m := client.APIKeyCreateRequestMode(*mode)
		body.Mode = &m
	}
	if *envLabel != "" {
		e := client.EnvironmentLabel(*envLabel)
		body.Environment = &e
	}
	if len(tags) > 0 {
		m := map[string]string{}
		for _, t := range tags {
			k, v, ok := strings.Cut(t, "=")
			if !ok || k == "" {
				return usageErrorf("--tag %q: want key=value, such as team=billing", t)
			}
			if _, dup := m[k]; dup {
				return usageErrorf("--tag %q: tag %q is given twice", t, k)
			}
			m[k] = v
		}
		body.Tags = &m
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
	if *userRef != "" {
		u, err := (&memberIDs{api: api}).resolve(ctx, "--user", *userRef)
		if err != nil {
			return err
		}
		body.UserId = &u
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
	fs, out := newFlags("keys roll")
	grace := fs.Int("grace", 0, "seconds the old key keeps working")
	api, id, err := s.idCommand(fs, out, args)
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
	fs, out := newFlags("keys revoke")
	api, id, err := s.idCommand(fs, out, args)
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
	return s.table(keyHeader, [][]string{keyRowOwner(ctx, &memberIDs{api: api}, *r.JSON200)})
}
