package console

import (
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// integrationNotice is the line shown after a switch (?notice=).
var integrationNotice = map[string]string{
	"disabled": "Disabled. Every key of it is refused (403 integration_disabled) on every instance within a second.",
	"enabled":  "Enabled. Its keys work again, with their rate limits as they were.",
}

type integrationsData struct {
	Integrations []*credvault.Integration
	Form         map[string]string
	Invalid      string // the form field an error names
}

// integrationFormFields are the create form's fields.
var integrationFormFields = []string{"name", "agent", "environment", "tags"}

// handleIntegrations lists the org's integrations with a switch each
// (owners and admins), and the create form.
func (c *Console) handleIntegrations(ctx *fiber.Ctx, v *view) error {
	return c.renderIntegrations(ctx, v, fiber.StatusOK, map[string]string{}, "")
}

func (c *Console) renderIntegrations(ctx *fiber.Ctx, v *view, status int, form map[string]string, invalid string) error {
	list, err := c.cfg.Services.Integrations.FindIntegrations(ctx.UserContext(), credvault.IntegrationQuery{}, credvault.Page{Limit: 500})
	if err != nil {
		return c.fail(ctx, v, err)
	}
	v.Notice = integrationNotice[ctx.Query("notice")]
	v.Title, v.Nav = "Integrations", "integrations"
	v.Data = integrationsData{Integrations: list, Form: form, Invalid: invalid}
	return c.render(ctx, status, "integrations", v)
}

// handleIntegrationCreate creates an integration from the form; bad input
// shows the form again with the message naming the field, and writes
// nothing.
func (c *Console) handleIntegrationCreate(ctx *fiber.Ctx, v *view) error {
	form := map[string]string{}
	for _, f := range integrationFormFields {
		form[f] = ctx.FormValue(f)
	}
	in := credvault.IntegrationInput{Name: form["name"], Environment: strings.TrimSpace(form["environment"])}
	if a := strings.TrimSpace(form["agent"]); a != "" {
		in.Agent = &a
	}
	tags, err := parseTags(form["tags"])
	if err == nil {
		err = credvault.CheckPrintable("name", in.Name, "agent", form["agent"])
	}
	if err == nil {
		in.Tags = tags
		var i *credvault.Integration
		if i, err = c.cfg.Services.Integrations.CreateIntegration(ctx.UserContext(), in); err == nil {
			return ctx.Redirect("/integrations/"+url.PathEscape(i.ID), fiber.StatusSeeOther)
		}
	}
	switch credvault.ErrorCode(err) {
	case credvault.EINVALID, credvault.ECONFLICT:
	default:
		return c.fail(ctx, v, err)
	}
	v.Error = credvault.ErrorMessage(err)
	invalid := invalidField(err)
	if credvault.ErrorCode(err) == credvault.ECONFLICT {
		invalid = "name"
	}
	return c.renderIntegrations(ctx, v, statusOf(err), form, invalid)
}

// parseTags reads "k=v, k2=v2". Errors: EINVALID naming "tags".
func parseTags(s string) (map[string]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, pair := range splitList(s) {
		k, val, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			return nil, credvault.Errorf(credvault.EINVALID, "field \"tags\" must be key=value pairs separated by commas, such as team=billing")
		}
		if err := credvault.CheckPrintable("tags", k, "tags", val); err != nil {
			return nil, err
		}
		out[k] = val
	}
	return out, nil
}

type integrationData struct {
	I     *credvault.Integration
	Keys  []apiKeyRow
	Chart *chart
}

// handleIntegration shows an integration: its switch, its keys and its
// verifications per day.
func (c *Console) handleIntegration(ctx *fiber.Ctx, v *view) error {
	i, err := c.cfg.Services.Integrations.FindIntegration(ctx.UserContext(), ctx.Params("id"))
	if err != nil {
		return c.fail(ctx, v, err)
	}
	keys, err := c.cfg.Services.Keys.FindAPIKeys(ctx.UserContext(), credvault.APIKeyQuery{IntegrationID: i.ID, Status: credvault.KeyStatusAll}, credvault.Page{Limit: 500})
	if err != nil {
		return c.fail(ctx, v, err)
	}
	rows, since, err := c.cfg.Services.Integrations.IntegrationUsage(ctx.UserContext(), i.ID, chartDays)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	ppl := c.people(ctx)
	now := time.Now()
	d := integrationData{I: i, Chart: verificationsChart(rows, since,
		"No key of this integration was checked in the last 14 days. Each verification shows up here, by outcome.")}
	for _, k := range keys {
		d.Keys = append(d.Keys, apiKeyRow{K: k, Status: k.Status(now), Owner: keyOwner(ppl, k)})
	}
	v.Notice = integrationNotice[ctx.Query("notice")]
	v.Title, v.Nav, v.Data = i.Name, "integrations", d
	return c.render(ctx, fiber.StatusOK, "integration", v)
}

// handleIntegrationSwitch disables or enables an integration, then goes
// back to the page the form came from (the list or the integration).
func (c *Console) handleIntegrationSwitch(enabled bool) handler {
	return func(ctx *fiber.Ctx, v *view) error {
		i, err := c.cfg.Services.Integrations.UpdateIntegration(ctx.UserContext(), ctx.Params("id"), credvault.IntegrationUpdate{Enabled: &enabled})
		if err != nil {
			return c.fail(ctx, v, err)
		}
		notice := "disabled"
		if enabled {
			notice = "enabled"
		}
		back := "/integrations/" + url.PathEscape(i.ID)
		if ctx.FormValue("back") == "list" {
			back = "/integrations"
		}
		return ctx.Redirect(back+"?notice="+notice, fiber.StatusSeeOther)
	}
}

// handleAPIKeySwitch disables or enables one key.
func (c *Console) handleAPIKeySwitch(enabled bool) handler {
	return func(ctx *fiber.Ctx, v *view) error {
		k, err := c.cfg.Services.Keys.SetAPIKeyEnabled(ctx.UserContext(), ctx.Params("id"), enabled)
		if err != nil {
			return c.fail(ctx, v, err)
		}
		notice := "disabled"
		if enabled {
			notice = "enabled"
		}
		return ctx.Redirect("/api-keys/"+url.PathEscape(k.ID)+"?notice="+notice, fiber.StatusSeeOther)
	}
}
