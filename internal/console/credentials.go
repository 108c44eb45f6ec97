package console

import (
	"html/template"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// maxListed bounds how many items a list page reads (pages of 500).
const maxListed = 5000

// credentialRow is one line of the credentials list.
type credentialRow struct {
	ID, Name, Service, Placement, Sharing, Hint string
	LastUsed                                    *time.Time
}

type credentialsData struct {
	// Rows is the table body, written by credentialRowsHTML.
	Rows     template.HTML
	Count    int
	Services []string // for the filter
	Service  string
	Sharing  string // personal, team, members or "" (any)
	Query    string
	Total    int
	Chart    *chart // the org's calls (owners and admins)
}

// credentialFilter is what the list is narrowed by: Service exact,
// Sharing a sharing mode, Query a case-insensitive substring of the name
// or the service.
type credentialFilter struct {
	Service, Sharing, Query string
}

// credentialRowsHTML writes the list's table rows. A list of 1,000
// credentials through template actions costs ~10 reflective calls per row
// (several milliseconds a page), so the rows are written here instead,
// every value through html/template's own escaper (HTMLEscapeString) and
// the id also path-escaped: the same escaping the template applies in
// these contexts (element text, and a quoted attribute holding a path).
func credentialRowsHTML(rows []credentialRow) template.HTML {
	var b strings.Builder
	b.Grow(len(rows) * 360)
	esc := func(s string) { b.WriteString(template.HTMLEscapeString(s)) }
	for _, r := range rows {
		b.WriteString("<tr>\n    <td><a href=\"/credentials/")
		esc(url.PathEscape(r.ID))
		b.WriteString("\">")
		esc(r.Name)
		b.WriteString("</a></td>\n    <td>")
		esc(r.Service)
		b.WriteString("</td>\n    <td class=\"wide\">")
		esc(r.Placement)
		b.WriteString("</td>\n    <td><span class=\"badge\">")
		esc(r.Sharing)
		b.WriteString("</span></td>\n    <td class=\"mono wide\">")
		esc(r.Hint)
		b.WriteString("</td>\n    <td class=\"nowrap\">")
		if r.LastUsed != nil {
			b.WriteString(string(agoHTML(*r.LastUsed)))
		} else {
			b.WriteString(`<span class="muted">never</span>`)
		}
		b.WriteString("</td>\n  </tr>\n")
	}
	return template.HTML(b.String()) // #nosec G203 -- every value is HTML-escaped by esc above; the rest is fixed markup
}

// handleCredentials lists what the caller may use, filtered by service and
// sharing and searched by name or service.
func (c *Console) handleCredentials(ctx *fiber.Ctx, v *view) error {
	f := credentialFilter{Service: strings.TrimSpace(ctx.Query("service")), Sharing: ctx.Query("sharing"), Query: strings.TrimSpace(ctx.Query("q"))}
	v.Title, v.Nav = "Credentials", "credentials"
	if f.Sharing != "" && f.Sharing != credvault.SharingPersonal && f.Sharing != credvault.SharingTeam && f.Sharing != credvault.SharingMembers {
		f.Sharing = ""
		v.Error, v.Invalid = "query parameter \"sharing\" must be personal, team or members", "sharing"
	}
	all, err := c.allCredentials(ctx, "")
	if err != nil {
		return c.fail(ctx, v, err)
	}
	lastUsed, err := c.cfg.Services.Stats.CredentialsLastUsed(ctx.UserContext(), all)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	if ctx.Query("notice") == "deleted" {
		v.Notice = "Deleted. Workflows that referenced it can no longer use it."
	}
	d := credentialsData{Service: f.Service, Sharing: f.Sharing, Query: f.Query, Total: len(all)}
	rows, services := credentialRows(all, lastUsed, v.Me.UserID, f)
	d.Rows, d.Count, d.Services = credentialRowsHTML(rows), len(rows), services
	if v.Me.Manager && d.Total > 0 {
		if days, since, err := c.cfg.Services.Stats.OrgCalls(ctx.UserContext(), chartDays); err == nil {
			d.Chart = callsChart(days, since, "No credential of the org was used in the last 14 days.")
		}
	}
	v.Data = d
	status := fiber.StatusOK
	if v.Error != "" {
		status = fiber.StatusBadRequest
	}
	return c.render(ctx, status, "credentials", v)
}

// credentialRows filters and shapes the list (see credentialFilter) and
// collects the services for the filter.
func credentialRows(all []*credvault.Credential, lastUsed map[string]time.Time, userID string, f credentialFilter) ([]credentialRow, []string) {
	lq, service := strings.ToLower(f.Query), f.Service
	seen := map[string]bool{}
	var services []string
	rows := make([]credentialRow, 0, len(all))
	for _, cr := range all {
		if !seen[cr.Service] {
			seen[cr.Service] = true
			services = append(services, cr.Service)
		}
		if service != "" && cr.Service != service {
			continue
		}
		if f.Sharing != "" && cr.Sharing.Mode != f.Sharing {
			continue
		}
		if lq != "" && !strings.Contains(strings.ToLower(cr.Name), lq) && !strings.Contains(strings.ToLower(cr.Service), lq) {
			continue
		}
		rows = append(rows, credentialRow{ID: cr.ID, Name: cr.Name, Service: cr.Service, Placement: placementLabel(cr),
			Sharing: sharingLabel(cr, userID), Hint: cr.Hint})
		if t, ok := lastUsed[cr.ID]; ok {
			rows[len(rows)-1].LastUsed = &t
		}
	}
	sort.Strings(services)
	return rows, services
}

func (c *Console) allCredentials(ctx *fiber.Ctx, service string) ([]*credvault.Credential, error) {
	var out []*credvault.Credential
	page := credvault.Page{Limit: 500}
	for len(out) < maxListed {
		items, err := c.cfg.Services.Credentials.FindCredentials(ctx.UserContext(), service, "all", page)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if len(items) < page.Limit {
			break
		}
		last := items[len(items)-1]
		page.Cursor = credvault.KeysetCursor{CreatedAt: last.CreatedAt, ID: last.ID}.Encode()
	}
	return out, nil
}

func placementLabel(cr *credvault.Credential) string {
	switch cr.Placement {
	case credvault.PlacementBearer:
		return "Authorization: Bearer"
	case credvault.PlacementHeader:
		return "header " + cr.ParamName
	case credvault.PlacementQuery:
		return "query ?" + cr.ParamName + "="
	case credvault.PlacementBasic:
		return "Authorization: Basic (user " + cr.Username + ")"
	}
	return cr.Placement
}

func sharingLabel(cr *credvault.Credential, userID string) string {
	switch cr.Sharing.Mode {
	case credvault.SharingTeam:
		return "Team"
	case credvault.SharingMembers:
		return plural(len(cr.Sharing.Members), "member", "members")
	}
	if cr.OwnerID != nil && *cr.OwnerID != userID {
		return "Personal (not yours)"
	}
	return "Personal"
}

type credentialNewData struct {
	Presets []credvault.ServicePreset
	Preset  *credvault.ServicePreset
	Custom  bool
	Form    map[string]string
	Apps    []*credvault.OAuthApp // OAuth apps to connect through
}

// handleCredentialNew shows the preset grid, one preset's form (needs only
// the key), or the custom API form.
func (c *Console) handleCredentialNew(ctx *fiber.Ctx, v *view) error {
	d := credentialNewData{Presets: credvault.ServicePresets(), Form: map[string]string{}}
	if c.cfg.Services.OAuth != nil {
		// Apps to connect through; a key without credentials:read sees none.
		d.Apps, _ = c.cfg.Services.OAuth.FindOAuthApps(ctx.UserContext(), credvault.Page{Limit: 100})
	}
	if s := ctx.Query("service"); s != "" {
		if s == "custom" {
			d.Custom = true
		} else if p, ok := credvault.FindServicePreset(s); ok {
			d.Preset = &p
		} else {
			return c.fail(ctx, v, credvault.Errorf(credvault.ENOTFOUND, "there is no preset for service %q; use the custom API form", s))
		}
	}
	v.Title, v.Nav, v.Data = "Connect a service", "credentials", d
	return c.render(ctx, fiber.StatusOK, "credential_new", v)
}

// handleCredentialCreate creates a credential from a preset or the custom
// form and opens its page.
func (c *Console) handleCredentialCreate(ctx *fiber.Ctx, v *view) error {
	in := credvault.CreateCredentialInput{
		Name:    strings.TrimSpace(ctx.FormValue("name")),
		Service: strings.TrimSpace(ctx.FormValue("service")),
		Value:   credvault.NewSecret(ctx.FormValue("value")),
		Sharing: &credvault.Sharing{Mode: ctx.FormValue("sharing", credvault.SharingPersonal)},
	}
	custom := ctx.FormValue("custom") == "1"
	if p, ok := credvault.FindServicePreset(in.Service); ok && !custom && in.Name == "" {
		in.Name = p.Name
	}
	if custom {
		in.Placement = ctx.FormValue("placement")
		in.ParamName = strings.TrimSpace(ctx.FormValue("param_name"))
		in.ValuePrefix = ctx.FormValue("value_prefix")
		in.Username = strings.TrimSpace(ctx.FormValue("username"))
		in.BaseURL = strings.TrimSpace(ctx.FormValue("base_url"))
		in.AllowedHosts = splitList(ctx.FormValue("allowed_hosts"))
		if path := strings.TrimSpace(ctx.FormValue("test_path")); path != "" {
			in.TestRequest = &credvault.TestRequest{Method: "GET", Path: path}
		}
	}
	var cr *credvault.Credential
	err := credvault.CheckPrintable("name", in.Name)
	if err == nil {
		cr, err = c.cfg.Services.Credentials.CreateCredential(ctx.UserContext(), in)
	}
	if err != nil {
		// Show the form again with what was typed, except the value.
		return c.inline(ctx, v, err, "", func(status int) error {
			d := credentialNewData{Presets: credvault.ServicePresets(), Custom: custom, Form: map[string]string{
				"name": in.Name, "service": in.Service, "placement": in.Placement, "param_name": in.ParamName,
				"value_prefix": in.ValuePrefix, "username": in.Username, "base_url": in.BaseURL, "allowed_hosts": strings.Join(in.AllowedHosts, "\n"),
				"test_path": ctx.FormValue("test_path"), "sharing": in.Sharing.Mode,
			}}
			if p, ok := credvault.FindServicePreset(in.Service); ok && !custom {
				d.Preset = &p
			}
			v.Title, v.Nav, v.Data = "Connect a service", "credentials", d
			return c.render(ctx, status, "credential_new", v)
		})
	}
	return ctx.Redirect("/credentials/"+url.PathEscape(cr.ID)+"?notice=created", fiber.StatusSeeOther)
}

// splitList splits a textarea or comma list into trimmed, non-empty items.
func splitList(s string) []string {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' || r == ' ' || r == '\t' })
	out := make([]string, 0, len(f))
	for _, x := range f {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}

type credentialData struct {
	C          *credvault.Credential
	Permission string
	Owner      bool // the caller may delete (owner of it, or a manager)
	Placement  string
	Sharing    string
	Members    []*credvault.User
	Shared     map[string]string // user id -> permission
	Usage      []*credvault.Usage
	Chart      *chart
	Audit      []*credvault.AuditEvent
	AuditShown bool
	People     people // the org's members, for names instead of ids
	Test       *credvault.TestResult
	Monitor    *credvault.CredentialMonitor
	Health     []*credvault.HealthCheck
}

// handleCredential is a credential's page: metadata, settings and rotation
// (manage), sharing (manage), test, usage with its chart, audit trail
// (owners and admins), delete.
func (c *Console) handleCredential(ctx *fiber.Ctx, v *view) error {
	switch ctx.Query("notice") {
	case "created":
		v.Notice = "Connected. The value is stored encrypted; nobody can read it back."
	case "saved":
		v.Notice = "Saved."
	case "shared":
		v.Notice = "Sharing updated."
	case "monitor":
		v.Notice = "Health check and expiry saved."
	}
	if ctx.Query("connected") == "1" {
		v.Notice = "Connected. credvault keeps the token fresh; nobody can read it."
	}
	if e := ctx.Query("oauth_error"); e != "" {
		v.Error = "The provider did not authorize the connection: " + truncateText(e, 300)
	}
	return c.renderCredential(ctx, v, nil, fiber.StatusOK)
}

func (c *Console) renderCredential(ctx *fiber.Ctx, v *view, test *credvault.TestResult, status int) error {
	uctx := ctx.UserContext()
	id := ctx.Params("id")
	cr, perm, err := c.cfg.Services.Credentials.FindCredential(uctx, id)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	d := credentialData{C: cr, Permission: perm, Placement: placementLabel(cr), Sharing: sharingLabel(cr, v.Me.UserID),
		Owner: v.Me.Manager || (cr.OwnerID != nil && *cr.OwnerID == v.Me.UserID), Test: test, Shared: map[string]string{}}
	if cr.Sharing.Mode != credvault.SharingPersonal {
		for _, m := range cr.Sharing.Members {
			d.Shared[m.UserID] = m.Permission
		}
	}
	// The sharing picker lists the org's people; without users:read (a
	// key session lacking it) it is left empty and ids show instead of
	// names.
	d.People = c.people(ctx)
	if perm == credvault.PermissionManage {
		for _, u := range d.People {
			if u.ID != v.Me.UserID && (cr.OwnerID == nil || *cr.OwnerID != u.ID) {
				d.Members = append(d.Members, u)
			}
		}
		sort.Slice(d.Members, func(i, j int) bool { return d.Members[i].Email < d.Members[j].Email })
	}
	if d.Usage, err = c.cfg.Services.Credentials.FindUsage(uctx, cr.ID, credvault.UsageFilter{Limit: 20}); err != nil {
		return c.fail(ctx, v, err)
	}
	days, since, err := c.cfg.Services.Stats.CredentialCalls(uctx, cr.ID, chartDays)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	d.Chart = callsChart(days, since, "Not used in the last 14 days. Workflows that send it through credvault's proxy show up here, by outcome.")
	if c.cfg.Services.Monitors != nil {
		if d.Monitor, err = c.cfg.Services.Monitors.FindMonitor(uctx, cr.ID); err != nil {
			return c.fail(ctx, v, err)
		}
		if d.Health, err = c.cfg.Services.Monitors.FindHealthChecks(uctx, cr.ID, 0, 20); err != nil {
			return c.fail(ctx, v, err)
		}
	}
	if v.Me.Manager {
		if evs, err := c.cfg.Services.Audit.FindAuditEvents(uctx, credvault.AuditFilter{ResourceType: "credential", ResourceID: cr.ID, Limit: 20}); err == nil {
			d.Audit, d.AuditShown = evs, true
		}
	}
	v.Title, v.Nav, v.Data = cr.Name, "credentials", d
	return c.render(ctx, status, "credential", v)
}

// handleCredentialSettings edits where the value goes and, with a new
// value, rotates it (same id: workflows keep working).
func (c *Console) handleCredentialSettings(ctx *fiber.Ctx, v *view) error {
	id := ctx.Params("id")
	cr, _, err := c.cfg.Services.Credentials.FindCredential(ctx.UserContext(), id)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	var upd credvault.CredentialUpdate
	str := func(field string, cur string, dst **string) {
		if val, ok := formField(ctx, field); ok && val != cur {
			*dst = &val
		}
	}
	str("name", cr.Name, &upd.Name)
	str("placement", cr.Placement, &upd.Placement)
	str("param_name", cr.ParamName, &upd.ParamName)
	str("value_prefix", cr.ValuePrefix, &upd.ValuePrefix)
	str("username", cr.Username, &upd.Username)
	str("base_url", cr.BaseURL, &upd.BaseURL)
	if raw, ok := formField(ctx, "allowed_hosts"); ok {
		hosts := splitList(raw)
		if !slices.Equal(hosts, cr.AllowedHosts) {
			upd.AllowedHosts = &hosts
		}
	}
	if val := ctx.FormValue("value"); val != "" {
		s := credvault.NewSecret(val)
		upd.Value = &s
	}
	if upd.Name != nil {
		if err := credvault.CheckPrintable("name", *upd.Name); err != nil {
			return c.credentialFormError(ctx, v, err)
		}
	}
	if _, err := c.cfg.Services.Credentials.UpdateCredential(ctx.UserContext(), id, upd); err != nil {
		return c.credentialFormError(ctx, v, err)
	}
	return ctx.Redirect("/credentials/"+url.PathEscape(id)+"?notice=saved", fiber.StatusSeeOther)
}

// formField returns a form field and whether the form had it at all.
func formField(ctx *fiber.Ctx, name string) (string, bool) {
	if ctx.Request().PostArgs().Has(name) {
		return strings.TrimSpace(ctx.FormValue(name)), true
	}
	if mf, err := ctx.MultipartForm(); err == nil {
		if vals, ok := mf.Value[name]; ok && len(vals) > 0 {
			return strings.TrimSpace(vals[0]), true
		}
	}
	return "", false
}

// handleCredentialSharing sets personal / team / chosen members, each with
// use or manage (form fields "perm_<user id>" = none|use|manage).
func (c *Console) handleCredentialSharing(ctx *fiber.Ctx, v *view) error {
	id := ctx.Params("id")
	sh := credvault.Sharing{Mode: ctx.FormValue("mode")}
	for k, val := range ctx.Request().PostArgs().All() {
		name := string(k)
		if uid, ok := strings.CutPrefix(name, "perm_"); ok {
			if p := string(val); p == credvault.PermissionUse || p == credvault.PermissionManage {
				sh.Members = append(sh.Members, credvault.Share{UserID: uid, Permission: p})
			}
		}
	}
	if sh.Mode == credvault.SharingPersonal {
		sh.Members = nil
	}
	sort.Slice(sh.Members, func(i, j int) bool { return sh.Members[i].UserID < sh.Members[j].UserID })
	if _, err := c.cfg.Services.Credentials.SetSharing(ctx.UserContext(), id, sh); err != nil {
		return c.credentialFormError(ctx, v, err)
	}
	return ctx.Redirect("/credentials/"+url.PathEscape(id)+"?notice=shared", fiber.StatusSeeOther)
}

// handleCredentialTest runs the credential's test request and shows the
// result on its page.
func (c *Console) handleCredentialTest(ctx *fiber.Ctx, v *view) error {
	res, err := c.cfg.Services.Proxy.Test(ctx.UserContext(), ctx.Params("id"))
	if err != nil {
		return c.credentialFormError(ctx, v, err)
	}
	return c.renderCredential(ctx, v, res, fiber.StatusOK)
}

// credentialFormError shows a refused form on the credential's page, with
// the service's message naming the field (see inline); a credential that
// is gone gets the not-found page.
func (c *Console) credentialFormError(ctx *fiber.Ctx, v *view, err error) error {
	if credvault.ErrorCode(err) == credvault.ENOTFOUND {
		return c.fail(ctx, v, err)
	}
	return c.inline(ctx, v, err, "", func(status int) error { return c.renderCredential(ctx, v, nil, status) })
}

type credentialDeleteData struct {
	C         *credvault.Credential
	Workflows []credvault.WorkflowUse
}

// handleCredentialDelete deletes, or when workflows used the credential
// recently shows them and asks again before forcing.
func (c *Console) handleCredentialDelete(ctx *fiber.Ctx, v *view) error {
	id := ctx.Params("id")
	force := ctx.FormValue("force") == "1"
	cr, _, err := c.cfg.Services.Credentials.FindCredential(ctx.UserContext(), id)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	if err := c.cfg.Services.Credentials.DeleteCredential(ctx.UserContext(), id, force); err != nil {
		if credvault.ErrorCode(err) == credvault.ECONFLICT {
			d := credentialDeleteData{C: cr}
			if det, ok := credvault.ErrorDetails(err).(map[string]any); ok {
				d.Workflows, _ = det["workflows"].([]credvault.WorkflowUse)
			}
			v.Title, v.Nav, v.Data = "Delete "+cr.Name+"?", "credentials", d
			return c.render(ctx, fiber.StatusConflict, "credential_delete", v)
		}
		return c.credentialFormError(ctx, v, err)
	}
	return ctx.Redirect("/credentials?notice=deleted", fiber.StatusSeeOther)
}
