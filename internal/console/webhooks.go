package console

import (
	"net/url"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

type webhooksData struct {
	Webhooks []*credvault.Webhook
	Types    []string
}

type webhookData struct {
	W          *credvault.Webhook
	Deliveries []*credvault.Delivery
	Secret     string // only right after creation
	Types      []string
}

// handleWebhooks lists the org's webhooks with the form to add one (owners
// and admins whose session holds scope admin; the service says no to
// anyone else).
func (c *Console) handleWebhooks(ctx *fiber.Ctx, v *view) error {
	ws, err := c.cfg.Services.Webhooks.FindWebhooks(ctx.UserContext(), credvault.Page{Limit: 500})
	if err != nil {
		return c.fail(ctx, v, err)
	}
	if ctx.Query("notice") == "deleted" {
		v.Notice = "Webhook deleted. Its pending deliveries were dropped."
	}
	v.Title, v.Nav, v.Data = "Webhooks", "webhooks", webhooksData{Webhooks: ws, Types: credvault.EventTypes}
	return c.render(ctx, fiber.StatusOK, "webhooks", v)
}

// handleWebhookCreate adds a webhook and shows its signing secret once,
// on the webhook's own page (answered directly, never through a redirect
// that would put it in a URL).
func (c *Console) handleWebhookCreate(ctx *fiber.Ctx, v *view) error {
	types := formValues(ctx, "event_types")
	if ctx.FormValue("all") == "on" {
		types = []string{"*"}
	}
	if err := credvault.CheckPrintable("description", ctx.FormValue("description")); err != nil {
		return c.fail(ctx, v, err)
	}
	w, secret, err := c.cfg.Services.Webhooks.CreateWebhook(ctx.UserContext(), credvault.CreateWebhookInput{
		URL: ctx.FormValue("url"), Description: ctx.FormValue("description"), EventTypes: types,
	})
	if err != nil {
		return c.fail(ctx, v, err)
	}
	v.Notice = "Webhook created. Copy its signing secret now: you will not see it again."
	return c.renderWebhook(ctx, v, w.ID, secret.Reveal(), fiber.StatusCreated)
}

// handleWebhook is a webhook's page: settings, the delivery log (attempt,
// status, latency) and "send test event".
func (c *Console) handleWebhook(ctx *fiber.Ctx, v *view) error {
	switch ctx.Query("notice") {
	case "test":
		v.Notice = "Test event queued. It shows in the log below once sent (reload)."
	case "redeliver":
		v.Notice = "Delivery queued again, with the same webhook-id."
	case "saved":
		v.Notice = "Saved."
	}
	return c.renderWebhook(ctx, v, ctx.Params("id"), "", fiber.StatusOK)
}

func (c *Console) renderWebhook(ctx *fiber.Ctx, v *view, id, secret string, status int) error {
	w, err := c.cfg.Services.Webhooks.FindWebhook(ctx.UserContext(), id)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	ds, err := c.cfg.Services.Webhooks.FindDeliveries(ctx.UserContext(), id, 0, 50)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	v.Title, v.Nav, v.Data = "Webhook", "webhooks", webhookData{W: w, Deliveries: ds, Secret: secret, Types: credvault.EventTypes}
	return c.render(ctx, status, "webhook", v)
}

func (c *Console) handleWebhookTest(ctx *fiber.Ctx, v *view) error {
	id := ctx.Params("id")
	if _, err := c.cfg.Services.Webhooks.SendTestEvent(ctx.UserContext(), id); err != nil {
		return c.fail(ctx, v, err)
	}
	return ctx.Redirect("/webhooks/"+url.PathEscape(id)+"?notice=test", fiber.StatusSeeOther)
}

func (c *Console) handleWebhookRedeliver(ctx *fiber.Ctx, v *view) error {
	id := ctx.Params("id")
	did, err := strconv.ParseInt(ctx.Params("delivery"), 10, 64)
	if err != nil {
		return c.fail(ctx, v, credvault.Errorf(credvault.ENOTFOUND, "delivery not found"))
	}
	if _, err := c.cfg.Services.Webhooks.Redeliver(ctx.UserContext(), id, did); err != nil {
		return c.fail(ctx, v, err)
	}
	return ctx.Redirect("/webhooks/"+url.PathEscape(id)+"?notice=redeliver", fiber.StatusSeeOther)
}

func (c *Console) handleWebhookUpdate(ctx *fiber.Ctx, v *view) error {
	id := ctx.Params("id")
	enabled := ctx.FormValue("enabled") == "on"
	types := formValues(ctx, "event_types")
	if ctx.FormValue("all") == "on" {
		types = []string{"*"}
	}
	u := ctx.FormValue("url")
	if _, err := c.cfg.Services.Webhooks.UpdateWebhook(ctx.UserContext(), id, credvault.WebhookUpdate{URL: &u, EventTypes: types, Enabled: &enabled}); err != nil {
		return c.fail(ctx, v, err)
	}
	return ctx.Redirect("/webhooks/"+url.PathEscape(id)+"?notice=saved", fiber.StatusSeeOther)
}

func (c *Console) handleWebhookDeleteConfirm(ctx *fiber.Ctx, v *view) error {
	w, err := c.cfg.Services.Webhooks.FindWebhook(ctx.UserContext(), ctx.Params("id"))
	if err != nil {
		return c.fail(ctx, v, err)
	}
	v.Title, v.Nav = "Delete this webhook?", "webhooks"
	v.Data = confirmData{Message: w.URL + " gets no more events; its pending deliveries and delivery log are dropped.",
		Action: "/webhooks/" + url.PathEscape(w.ID) + "/delete", Button: "Delete webhook", Back: "/webhooks/" + url.PathEscape(w.ID), Danger: true}
	return c.render(ctx, fiber.StatusOK, "confirm", v)
}

func (c *Console) handleWebhookDelete(ctx *fiber.Ctx, v *view) error {
	if err := c.cfg.Services.Webhooks.DeleteWebhook(ctx.UserContext(), ctx.Params("id")); err != nil {
		return c.fail(ctx, v, err)
	}
	return ctx.Redirect("/webhooks?notice=deleted", fiber.StatusSeeOther)
}

// handleCredentialMonitor sets a credential's scheduled check and the
// value's expiry from its page.
func (c *Console) handleCredentialMonitor(ctx *fiber.Ctx, v *view) error {
	id := ctx.Params("id")
	in := credvault.MonitorInput{}
	if s := ctx.FormValue("interval_minutes"); s != "" && s != "0" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return c.fail(ctx, v, credvault.Errorf(credvault.EINVALID, "field \"interval_minutes\" must be a whole number of minutes"))
		}
		in.IntervalSeconds = n * 60
	}
	if s := ctx.FormValue("value_expires_on"); s != "" {
		t, err := parseDay(s)
		if err != nil {
			return c.fail(ctx, v, credvault.Errorf(credvault.EINVALID, "field \"value_expires_on\" must be a date (YYYY-MM-DD)"))
		}
		in.ValueExpiresAt = &t
	}
	if _, err := c.cfg.Services.Monitors.SetMonitor(ctx.UserContext(), id, in); err != nil {
		return c.fail(ctx, v, err)
	}
	return ctx.Redirect("/credentials/"+url.PathEscape(id)+"?notice=monitor", fiber.StatusSeeOther)
}

// parseDay reads an <input type="date"> value as the end of that day, UTC.
func parseDay(s string) (time.Time, error) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return t, err
	}
	return t.Add(24*time.Hour - time.Second), nil
}
