package console

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

type apiKeyRow struct {
	K      *credvault.APIKey
	Status string
	Owner  personRef
}

type apiKeysData struct {
	Rows        []apiKeyRow
	Status      string
	Environment string
	Query       string // the search box: name or key prefix…last4
	// Filtered is set when the address narrows the list: the filters stay
	// on the page (to widen it again) even when nothing matches.
	Filtered bool
	Total    int
	Invalid  string // the query parameter a refused filter names
	Chart    *chart // the org's verifications (owners and admins)
}

// handleAPIKeys lists the keys the caller may see (their own; every key of
// the org for owners and admins), filtered by status and environment
// label. A bad filter value answers 400 with the list page and a message
// naming the query parameter.
func (c *Console) handleAPIKeys(ctx *fiber.Ctx, v *view) error {
	status, env, search := ctx.Query("status"), strings.TrimSpace(ctx.Query("environment")), strings.TrimSpace(ctx.Query("q"))
	v.Title, v.Nav = "API keys", "api-keys"
	d := apiKeysData{Status: status, Environment: env, Query: search, Filtered: status != "" || env != "" || search != ""}
	var all []*credvault.APIKey
	q := credvault.APIKeyQuery{Status: status, Environment: env, Query: search}
	if q.Status == "" {
		q.Status = credvault.KeyStatusAll
	}
	page := credvault.Page{Limit: 500}
	for len(all) < maxListed {
		items, err := c.cfg.Services.Keys.FindAPIKeys(ctx.UserContext(), q, page)
		if credvault.ErrorCode(err) == credvault.EINVALID {
			return c.inline(ctx, v, err, "", func(status int) error {
				d.Invalid = v.Invalid
				v.Data = d
				return c.render(ctx, status, "apikeys", v)
			})
		}
		if err != nil {
			return c.fail(ctx, v, err)
		}
		all = append(all, items...)
		if len(items) < page.Limit {
			break
		}
		last := items[len(items)-1]
		page.Cursor = credvault.KeysetCursor{CreatedAt: last.CreatedAt, ID: last.ID}.Encode()
	}
	ppl := c.people(ctx)
	now := time.Now()
	d.Total = len(all)
	for _, k := range all { // newest first, filtered by the service
		d.Rows = append(d.Rows, apiKeyRow{K: k, Status: k.Status(now), Owner: keyOwner(ppl, k)})
	}
	if v.Me.Manager && d.Total > 0 {
		// The whole org's verifications, for owners and admins holding
		// keys:read; a key session without it just has no chart.
		if rows, since, err := c.cfg.Services.Stats.OrgVerifications(ctx.UserContext(), chartDays); err == nil {
			d.Chart = verificationsChart(rows, since, "No key of the org was used in the last 14 days.")
		}
	}
	v.Data = d
	return c.render(ctx, fiber.StatusOK, "apikeys", v)
}

// integrations lists the org's integrations for the key form's select;
// none when the caller may not read them.
func (c *Console) integrations(ctx *fiber.Ctx) []*credvault.Integration {
	list, err := c.cfg.Services.Integrations.FindIntegrations(ctx.UserContext(), credvault.IntegrationQuery{}, credvault.Page{Limit: 500})
	if err != nil {
		return nil
	}
	return list
}

type apiKeyNewData struct {
	Scopes    []string // what the creator holds, offered as checkboxes
	Form      map[string]string
	Checked   []string
	Manager   bool
	MinExpiry string
	// Invalid is the form field the error names ("agent", "environment",
	// …), marked aria-invalid on the page; "" when none.
	Invalid string
	// Integrations are offered in a select (none when the org has none).
	Integrations []*credvault.Integration
}

// newKeyDefaults is the create form before anything is typed: an opaque
// live key without an environment label, expiring in 90 days.
func newKeyDefaults() map[string]string {
	return map[string]string{"expires_in": "90d", "format": credvault.KeyFormatOpaque, "mode": "live"}
}

// creatorScopes are the scopes a key made by p may carry: a key never
// carries a scope its creator lacks (the service enforces it; the form
// only offers those).
func creatorScopes(p *credvault.Principal) []string {
	var out []string
	for _, s := range credvault.AllScopes {
		if s == credvault.ScopeAdmin && !credvault.HasScope(p.Scopes, credvault.ScopeAdmin) {
			continue
		}
		if credvault.HasScope(p.Scopes, s) {
			out = append(out, s)
		}
	}
	return out
}

func (c *Console) handleAPIKeyNew(ctx *fiber.Ctx, v *view) error {
	p := credvault.PrincipalFrom(ctx.UserContext())
	v.Title, v.Nav = "Create an API key", "api-keys"
	v.Data = apiKeyNewData{Scopes: creatorScopes(p), Form: newKeyDefaults(),
		Manager: v.Me.Manager, MinExpiry: time.Now().AddDate(0, 0, 1).Format(time.DateOnly), Integrations: c.integrations(ctx)}
	return c.render(ctx, fiber.StatusOK, "apikey_new", v)
}

type revealData struct {
	Key       string
	JWT       bool // a signed key: several hundred characters, shown wrapped
	Display   string
	ID        string
	Name      string
	Canonical string
	Rolled    bool
	GraceEnds *time.Time
}

// apiKeyFormFields are the create form's single-valued fields.
var apiKeyFormFields = []string{"name", "expires_in", "expires_at", "format", "agent", "mode", "environment", "tags",
	"rate_requests", "rate_window", "kind", "integration_id"}

// handleAPIKeyCreate creates a key and shows it once (no-store). Bad input
// shows the form again with the service's message naming the field and
// writes nothing (the service checks everything before it stores).
func (c *Console) handleAPIKeyCreate(ctx *fiber.Ctx, v *view) error {
	form := map[string]string{}
	for _, f := range apiKeyFormFields {
		form[f] = ctx.FormValue(f)
	}
	scopes := formValues(ctx, "scopes")
	in, err := apiKeyInput(form, scopes)
	if err == nil {
		var k *credvault.APIKey
		var secret credvault.Secret
		k, secret, err = c.cfg.Services.Keys.CreateAPIKey(ctx.UserContext(), in)
		if err == nil {
			v.Title, v.Nav = "Copy your new API key", "api-keys"
			v.Data = revealData{Key: secret.Reveal(), JWT: k.Format == credvault.KeyFormatJWT, Display: k.Display, ID: k.ID, Name: k.Name,
				Canonical: "/api-keys/" + url.PathEscape(k.ID)}
			return c.render(ctx, fiber.StatusCreated, "reveal", v)
		}
	}
	switch credvault.ErrorCode(err) {
	case credvault.EINVALID, credvault.EFORBIDDEN, credvault.EUNAVAILABLE:
		// EUNAVAILABLE: JWT keys not configured here; an opaque key still is.
	default:
		return c.fail(ctx, v, err)
	}
	p := credvault.PrincipalFrom(ctx.UserContext())
	v.Title, v.Nav, v.Error = "Create an API key", "api-keys", credvault.ErrorMessage(err)
	v.Data = apiKeyNewData{Scopes: creatorScopes(p), Form: form, Checked: scopes, Manager: v.Me.Manager,
		MinExpiry: time.Now().AddDate(0, 0, 1).Format(time.DateOnly), Invalid: invalidField(err), Integrations: c.integrations(ctx)}
	return c.render(ctx, statusOf(err), "apikey_new", v)
}

// apiKeyInput turns the form into the service's input: format, agent,
// mode and environment label go through as typed (the service checks them
// and names the field), except that an empty agent box means no agent and
// spaces around the label are dropped.
// Errors: EINVALID naming the field.
func apiKeyInput(form map[string]string, scopes []string) (credvault.CreateAPIKeyInput, error) {
	in := credvault.CreateAPIKeyInput{Name: strings.TrimSpace(form["name"]), Scopes: scopes, Kind: form["kind"],
		Format: form["format"], Mode: form["mode"], Environment: strings.TrimSpace(form["environment"]),
		IntegrationID: form["integration_id"]}
	if a := form["agent"]; a != "" {
		in.Agent = &a
	}
	if in.Name == "" {
		return in, credvault.Errorf(credvault.EINVALID, "field \"name\" is required: say what the key is for")
	}
	if err := credvault.CheckPrintable("name", in.Name, "agent", form["agent"]); err != nil {
		return in, err
	}
	switch form["expires_in"] {
	case "date":
		t, err := time.Parse(time.DateOnly, form["expires_at"])
		if err != nil {
			return in, credvault.Errorf(credvault.EINVALID, "field \"expires_at\" must be a date such as 2030-01-31")
		}
		in.ExpiresAt = &t
	default:
		in.ExpiresIn = form["expires_in"]
	}
	tags, err := parseTags(form["tags"])
	if err != nil {
		return in, err
	}
	in.Tags = tags
	if r := strings.TrimSpace(form["rate_requests"]); r != "" {
		n, err := strconv.Atoi(r)
		w, werr := strconv.Atoi(strings.TrimSpace(form["rate_window"]))
		if err != nil || werr != nil {
			return in, credvault.Errorf(credvault.EINVALID, "field \"rate_limit\" needs whole numbers of requests and seconds")
		}
		in.RateLimit = &credvault.RateLimit{Requests: n, WindowSeconds: w}
	}
	return in, nil
}

// formValues returns every value of a repeated form field (checkboxes).
func formValues(ctx *fiber.Ctx, name string) []string {
	var out []string
	for k, val := range ctx.Request().PostArgs().All() {
		if string(k) == name {
			out = append(out, string(val))
		}
	}
	return out
}

type apiKeyData struct {
	K           *credvault.APIKey
	Status      string
	Owner       personRef
	Chart       *chart
	Integration *credvault.Integration // nil for none
}

// keyOwner is the person a key acts as, or "service key" for a key with
// no user.
func keyOwner(ppl people, k *credvault.APIKey) personRef {
	if k.UserID == nil {
		return personRef{Label: "service key (no user)"}
	}
	return person(ppl, credvault.KeyKindUser, *k.UserID)
}

// handleAPIKey shows a key's metadata (never the key), its verifications
// per day, roll and revoke.
func (c *Console) handleAPIKey(ctx *fiber.Ctx, v *view) error {
	return c.renderAPIKey(ctx, v, fiber.StatusOK)
}

// renderAPIKey renders a key's page with status (a refused roll or revoke
// shows its message there).
func (c *Console) renderAPIKey(ctx *fiber.Ctx, v *view, status int) error {
	k, err := c.cfg.Services.Keys.FindAPIKey(ctx.UserContext(), ctx.Params("id"))
	if err != nil {
		return c.fail(ctx, v, err)
	}
	rows, since, err := c.cfg.Services.Stats.KeyVerifications(ctx.UserContext(), k.ID, chartDays)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	owner := keyOwner(c.people(ctx), k)
	switch ctx.Query("notice") {
	case "revoked":
		v.Notice = "Revoked. Every instance refuses it from now on."
	case "disabled":
		v.Notice = "Disabled. Every instance refuses it (403 api_key_disabled) within a second."
	case "enabled":
		v.Notice = "Enabled. The key works again."
	}
	d := apiKeyData{K: k, Status: k.Status(time.Now()), Owner: owner,
		Chart: verificationsChart(rows, since, "Not used in the last 14 days. Send it in the X-API-Key header (or Authorization: Bearer) and each verification shows up here.")}
	if k.IntegrationID != nil {
		if d.Integration, err = c.cfg.Services.Integrations.FindIntegration(ctx.UserContext(), *k.IntegrationID); err != nil {
			return c.fail(ctx, v, err)
		}
	}
	v.Title, v.Nav, v.Data = k.Name, "api-keys", d
	return c.render(ctx, status, "apikey", v)
}

// handleAPIKeyRoll issues a replacement and shows it once; the old key
// keeps working for the grace period.
func (c *Console) handleAPIKeyRoll(ctx *fiber.Ctx, v *view) error {
	again := func(status int) error { return c.renderAPIKey(ctx, v, status) }
	grace, err := strconv.Atoi(ctx.FormValue("grace_seconds", "0"))
	if err != nil {
		return c.inline(ctx, v, credvault.Errorf(credvault.EINVALID, "field \"grace_seconds\" must be a whole number of seconds"), "", again)
	}
	next, secret, err := c.cfg.Services.Keys.RollAPIKey(ctx.UserContext(), ctx.Params("id"), grace)
	if err != nil {
		return c.inline(ctx, v, err, "grace_seconds", again)
	}
	ends := time.Now().Add(time.Duration(grace) * time.Second)
	v.Title, v.Nav = "Copy your new API key", "api-keys"
	v.Data = revealData{Key: secret.Reveal(), JWT: next.Format == credvault.KeyFormatJWT, Display: next.Display, ID: next.ID, Name: next.Name,
		Canonical: "/api-keys/" + url.PathEscape(next.ID), Rolled: true, GraceEnds: &ends}
	return c.render(ctx, fiber.StatusCreated, "reveal", v)
}

type confirmData struct {
	Message string
	Action  string
	Button  string
	Back    string
	Danger  bool
}

func (c *Console) handleAPIKeyRevokeConfirm(ctx *fiber.Ctx, v *view) error {
	k, err := c.cfg.Services.Keys.FindAPIKey(ctx.UserContext(), ctx.Params("id"))
	if err != nil {
		return c.fail(ctx, v, err)
	}
	id := url.PathEscape(k.ID)
	v.Title, v.Nav = "Revoke "+k.Name+"?", "api-keys"
	v.Data = confirmData{Message: "Every call made with " + k.Display + " will be refused, on every instance, from the moment you revoke it. This cannot be undone.",
		Action: "/api-keys/" + id + "/revoke", Button: "Revoke key", Back: "/api-keys/" + id, Danger: true}
	return c.render(ctx, fiber.StatusOK, "confirm", v)
}

func (c *Console) handleAPIKeyRevoke(ctx *fiber.Ctx, v *view) error {
	k, err := c.cfg.Services.Keys.RevokeAPIKey(ctx.UserContext(), ctx.Params("id"))
	if credvault.ErrorCode(err) == credvault.ENOTFOUND {
		return c.fail(ctx, v, err)
	}
	if err != nil {
		return c.inline(ctx, v, err, "", func(status int) error { return c.renderAPIKey(ctx, v, status) })
	}
	return ctx.Redirect("/api-keys/"+url.PathEscape(k.ID)+"?notice=revoked", fiber.StatusSeeOther)
}
