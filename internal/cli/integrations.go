package cli

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"credvault/api/client"
)

var integrationCommands = []subcommand{
	{"list", integrationsList},
	{"create", integrationsCreate},
	{"get", integrationsGet},
	{"disable", func(ctx context.Context, s *session, args []string) error {
		return integrationsSwitch(ctx, s, args, false)
	}},
	{"enable", func(ctx context.Context, s *session, args []string) error {
		return integrationsSwitch(ctx, s, args, true)
	}},
	{"delete", integrationsDelete},
	{"usage", integrationsUsage},
}

var integrationHeader = []string{"ID", "NAME", "AGENT", "ENVIRONMENT", "ENABLED", "TAGS"}

func integrationRow(i client.Integration) []string {
	agent := "-"
	if i.Agent != nil {
		agent = *i.Agent
	}
	tags := make([]string, 0, len(i.Tags))
	for k, v := range i.Tags {
		tags = append(tags, k+"="+v)
	}
	return []string{i.Id.String(), i.Name, agent, orDash(string(i.Environment)), strconv.FormatBool(i.Enabled), orDash(strings.Join(tags, ","))}
}

func integrationsList(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("integrations list")
	enabled := fs.String("enabled", "", "true or false: only enabled or disabled integrations")
	if _, err := parseFlags(fs, args, 0, "[--enabled true|false] [--output table|json]"); err != nil {
		return err
	}
	params := &client.IntegrationListParams{}
	switch *enabled {
	case "":
	case "true", "false":
		b := *enabled == "true"
		params.Enabled = &b
	default:
		return usageErrorf("--enabled must be true or false (got %q)", *enabled)
	}
	api, err := s.api(*out)
	if err != nil {
		return err
	}
	r, err := api.IntegrationListWithResponse(ctx, params)
	if err != nil {
		return err
	}
	if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
		return err
	}
	return s.table(integrationHeader, rowsOf(r.JSON200.Data, integrationRow))
}

// integrationsCreate is `integrations create --name N [--agent A]
// [--environment E] [--tag k=v...] [--disabled]`.
func integrationsCreate(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("integrations create")
	name := fs.String("name", "", "the integration's name (required, unique in the org)")
	agent := fs.String("agent", "", "the AI agent it serves")
	env := fs.String("environment", "", "an environment label (production, staging, ...)")
	var tags stringList
	fs.Var(&tags, "tag", "a tag key=value (repeat, or comma-separate)")
	disabled := fs.Bool("disabled", false, "create it disabled")
	if _, err := parseFlags(fs, args, 0, "--name NAME [--agent AGENT] [--environment ENV] [--tag k=v...] [--disabled]"); err != nil {
		return err
	}
	if *name == "" {
		return usageErrorf("integrations create needs --name")
	}
	body := client.IntegrationCreateRequest{Name: *name}
	if *agent != "" {
		body.Agent = agent
	}
	if *env != "" {
		e := client.EnvironmentLabel(*env)
		body.Environment = &e
	}
	if len(tags) > 0 {
		m := map[string]string{}
		for _, t := range tags {
			k, v, ok := strings.Cut(t, "=")
			if !ok || k == "" {
				return usageErrorf("--tag %q must be key=value", t)
			}
			m[k] = v
		}
		body.Tags = &m
	}
	if *disabled {
		f := false
		body.Enabled = &f
	}
	api, err := s.api(*out)
	if err != nil {
		return err
	}
	r, err := api.IntegrationCreateWithResponse(ctx, body)
	if err != nil {
		return err
	}
	return showOne(s, *out, r.HTTPResponse, r.Body, r.JSON201, integrationHeader, integrationRow)
}

func integrationsGet(ctx context.Context, s *session, args []string) error {
	api, id, out, err := idStart(s, "integrations get", args)
	if err != nil {
		return err
	}
	r, err := api.IntegrationGetWithResponse(ctx, id)
	if err != nil {
		return err
	}
	return showOne(s, out, r.HTTPResponse, r.Body, r.JSON200, integrationHeader, integrationRow)
}

// idStart parses `<command> ID [--output table|json]` and connects: the
// shared start of the commands that act on one object.
func idStart(s *session, command string, args []string) (*client.ClientWithResponses, uuid.UUID, string, error) {
	fs, out := newFlags(command)
	api, id, err := s.idCommand(fs, out, args)
	return api, id, *out, err
}

// showOne prints the object a call answered: its JSON with --output json,
// else one table row.
func showOne[T any](s *session, out string, resp *http.Response, body []byte, item *T, header []string, row func(T) []string) error {
	if table, err := s.result(out, resp, body); !table {
		return err
	}
	return s.table(header, [][]string{row(*item)})
}

func switchVerb(enabled bool) string {
	if enabled {
		return "enable"
	}
	return "disable"
}

// integrationsSwitch is `integrations disable|enable ID`: every key of the
// integration is refused (403 integration_disabled), or works again, on
// every instance within a second.
func integrationsSwitch(ctx context.Context, s *session, args []string, enabled bool) error {
	api, id, out, err := idStart(s, "integrations "+switchVerb(enabled), args)
	if err != nil {
		return err
	}
	r, err := api.IntegrationUpdateWithResponse(ctx, id, client.IntegrationUpdateRequest{Enabled: &enabled})
	if err != nil {
		return err
	}
	return showOne(s, out, r.HTTPResponse, r.Body, r.JSON200, integrationHeader, integrationRow)
}

func integrationsDelete(ctx context.Context, s *session, args []string) error {
	api, id, out, err := idStart(s, "integrations delete", args)
	if err != nil {
		return err
	}
	r, err := api.IntegrationDeleteWithResponse(ctx, id)
	if err != nil {
		return err
	}
	return s.deleted(out, "integration", id.String(), r.HTTPResponse, r.Body)
}

// integrationsUsage is `integrations usage ID [--days N]`: verifications
// per UTC day, by outcome.
func integrationsUsage(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("integrations usage")
	days := fs.Int("days", 7, "how many days, today (UTC) included (1-90)")
	api, id, err := s.idCommand(fs, out, args)
	if err != nil {
		return err
	}
	r, err := api.IntegrationUsageWithResponse(ctx, id, &client.IntegrationUsageParams{Days: days})
	if err != nil {
		return err
	}
	if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
		return err
	}
	rows := make([][]string, 0, len(r.JSON200.Days))
	for _, d := range r.JSON200.Days {
		b := d.RefusedByReason
		rows = append(rows, []string{d.Day.String(), i64(d.Valid), i64(d.RateLimited), i64(b.IntegrationDisabled),
			i64(b.ApiKeyDisabled), i64(b.RevokedApiKey), i64(b.ExpiredApiKey)})
	}
	return s.table([]string{"DAY", "VALID", "RATE LIMITED", "INTEGRATION DISABLED", "KEY DISABLED", "REVOKED", "EXPIRED"}, rows)
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

// keysSwitch is `keys disable|enable ID`.
func keysSwitch(ctx context.Context, s *session, args []string, enabled bool) error {
	api, id, out, err := idStart(s, "keys "+switchVerb(enabled), args)
	if err != nil {
		return err
	}
	if enabled {
		r, err := api.ApiKeyEnableWithResponse(ctx, id)
		if err != nil {
			return err
		}
		return showOne(s, out, r.HTTPResponse, r.Body, r.JSON200, keyHeader, keyRow)
	}
	r, err := api.ApiKeyDisableWithResponse(ctx, id)
	if err != nil {
		return err
	}
	return showOne(s, out, r.HTTPResponse, r.Body, r.JSON200, keyHeader, keyRow)
}

// parseIntegrationFlag reads --integration (an id) for keys create.
func parseIntegrationFlag(v string) (*uuid.UUID, error) {
	if v == "" {
		return nil, nil
	}
	id, err := uuid.Parse(v)
	if err != nil {
		return nil, usageErrorf("--integration %q is not an integration id (a UUID)", v)
	}
	return &id, nil
}
