package httpapi

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

type createWebhookRequest struct {
	URL         string   `json:"url" validate:"required,max=2048"`
	Description string   `json:"description" validate:"max=500,printable_name"`
	EventTypes  []string `json:"event_types" validate:"required"`
	Enabled     *bool    `json:"enabled"`
}

type updateWebhookRequest struct {
	URL         *string  `json:"url" validate:"omitempty,max=2048"`
	Description *string  `json:"description" validate:"omitempty,max=500,printable_name"`
	EventTypes  []string `json:"event_types"`
	Enabled     *bool    `json:"enabled"`
}

// createdWebhook is the answer to POST /v1/webhooks: the webhook and its
// signing secret, shown this once.
type createdWebhook struct {
	*credvault.Webhook
	Secret string `json:"secret"`
}

func (s *Server) handleWebhookCreate(c *fiber.Ctx) error {
	var in createWebhookRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	w, secret, err := s.cfg.Services.Webhooks.CreateWebhook(c.UserContext(), credvault.CreateWebhookInput{
		URL: in.URL, Description: in.Description, EventTypes: in.EventTypes, Enabled: in.Enabled,
	})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(createdWebhook{Webhook: w, Secret: secret.Reveal()})
}

func (s *Server) handleWebhookList(c *fiber.Ctx) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	ws, err := s.cfg.Services.Webhooks.FindWebhooks(c.UserContext(), p)
	if err != nil {
		return err
	}
	return c.JSON(page(ws, p.Limit, func(w *credvault.Webhook) string { return keysetOf(w.CreatedAt, w.ID) }))
}

func (s *Server) handleWebhookGet(c *fiber.Ctx) error {
	w, err := s.cfg.Services.Webhooks.FindWebhook(c.UserContext(), pathID(c))
	if err != nil {
		return err
	}
	return c.JSON(w)
}

func (s *Server) handleWebhookUpdate(c *fiber.Ctx) error {
	var in updateWebhookRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	w, err := s.cfg.Services.Webhooks.UpdateWebhook(c.UserContext(), pathID(c), credvault.WebhookUpdate{
		URL: in.URL, Description: in.Description, EventTypes: in.EventTypes, Enabled: in.Enabled,
	})
	if err != nil {
		return err
	}
	return c.JSON(w)
}

func (s *Server) handleWebhookDelete(c *fiber.Ctx) error {
	if err := s.cfg.Services.Webhooks.DeleteWebhook(c.UserContext(), pathID(c)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) handleWebhookDeliveries(c *fiber.Ctx) error {
	f, err := int64Page(c)
	if err != nil {
		return err
	}
	ds, err := s.cfg.Services.Webhooks.FindDeliveries(c.UserContext(), pathID(c), f.cursor, f.limit)
	if err != nil {
		return err
	}
	return c.JSON(page(ds, f.limit, func(d *credvault.Delivery) string { return strconv.FormatInt(d.ID, 10) }))
}

func (s *Server) handleWebhookTest(c *fiber.Ctx) error {
	d, err := s.cfg.Services.Webhooks.SendTestEvent(c.UserContext(), pathID(c))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(d)
}

func (s *Server) handleWebhookRedeliver(c *fiber.Ctx) error {
	id, err := strconv.ParseInt(c.Params("delivery_id"), 10, 64)
	if err != nil || id < 1 {
		return credvault.Errorf(credvault.ENOTFOUND, "delivery not found")
	}
	d, err := s.cfg.Services.Webhooks.Redeliver(c.UserContext(), pathID(c), id)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(d)
}
