package httpapi

import (
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

type createIntegrationRequest struct {
	Name        string            `json:"name" validate:"required,max=200,printable_name"`
	Agent       *string           `json:"agent" validate:"omitempty,max=200,printable_name"`
	Environment string            `json:"environment"`
	Tags        map[string]string `json:"tags" validate:"omitempty,dive,keys,printable_name,endkeys,printable_name"`
	Enabled     *bool             `json:"enabled"`
}

// updateIntegrationRequest is PATCH /v1/integrations/{id}; an absent field
// is left as it is, "agent": null clears the agent.
type updateIntegrationRequest struct {
	Name        *string                     `json:"name" validate:"omitempty,printable_name"`
	Agent       optional[string]            `json:"agent" validate:"printable_name"`
	Environment *string                     `json:"environment"`
	Tags        optional[map[string]string] `json:"tags" validate:"omitempty,dive,keys,printable_name,endkeys,printable_name"`
	Enabled     optional[bool]              `json:"enabled"`
}

func (s *Server) handleIntegrationCreate(c *fiber.Ctx) error {
	var in createIntegrationRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	i, err := s.cfg.Services.Integrations.CreateIntegration(c.UserContext(), credvault.IntegrationInput{
		Name: in.Name, Agent: in.Agent, Environment: in.Environment, Tags: in.Tags, Enabled: in.Enabled,
	})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(i)
}

// handleIntegrationList is GET /v1/integrations: newest first, filtered by
// enabled, environment, agent, tag and q; unknown parameters are a 400.
func (s *Server) handleIntegrationList(c *fiber.Ctx) error {
	p, err := pageParams(c, "enabled", "environment", "agent", "tag", "q")
	if err != nil {
		return err
	}
	q := credvault.IntegrationQuery{
		Enabled: strings.Clone(c.Query("enabled")), Environment: strings.Clone(c.Query("environment")),
		Agent: strings.Clone(c.Query("agent")), Tag: strings.Clone(c.Query("tag")), Query: strings.Clone(c.Query("q")),
	}
	list, err := s.cfg.Services.Integrations.FindIntegrations(c.UserContext(), q, p)
	if err != nil {
		return err
	}
	return c.JSON(page(list, p.Limit, func(i *credvault.Integration) string { return keysetOf(i.CreatedAt, i.ID) }))
}

func (s *Server) handleIntegrationGet(c *fiber.Ctx) error {
	i, err := s.cfg.Services.Integrations.FindIntegration(c.UserContext(), pathID(c))
	if err != nil {
		return err
	}
	return c.JSON(i)
}

// handleIntegrationUpdate is PATCH /v1/integrations/{id}: rename, relabel,
// retag, and enable or disable (every key of it, on every instance).
func (s *Server) handleIntegrationUpdate(c *fiber.Ctx) error {
	var in updateIntegrationRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	if in.Enabled.Null {
		return credvault.Errorf(credvault.EINVALID, "field \"enabled\" must be true or false")
	}
	upd := credvault.IntegrationUpdate{Name: in.Name, Environment: in.Environment, Tags: in.Tags.V, ClearAgent: in.Agent.Null}
	if in.Agent.Set && !in.Agent.Null {
		upd.Agent = &in.Agent.V
	}
	if in.Tags.Set && upd.Tags == nil {
		upd.Tags = map[string]string{} // "tags": null or {} clears them
	}
	if in.Enabled.Set {
		upd.Enabled = &in.Enabled.V
	}
	i, err := s.cfg.Services.Integrations.UpdateIntegration(c.UserContext(), pathID(c), upd)
	if err != nil {
		return err
	}
	return c.JSON(i)
}

func (s *Server) handleIntegrationDelete(c *fiber.Ctx) error {
	if err := s.cfg.Services.Integrations.DeleteIntegration(c.UserContext(), pathID(c)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// usageDay is one UTC day of an integration's verifications.
type usageDay struct {
	Day         string           `json:"day"` // YYYY-MM-DD
	Valid       int64            `json:"valid"`
	RateLimited int64            `json:"rate_limited"`
	Refused     int64            `json:"refused"`
	ByReason    map[string]int64 `json:"refused_by_reason"`
}

// handleIntegrationUsage is GET /v1/integrations/{id}/usage?days=: the
// integration's verifications per UTC day, every day of the range
// present (zeros included), oldest first.
func (s *Server) handleIntegrationUsage(c *fiber.Ctx) error {
	if err := knownParams(c, "days"); err != nil {
		return err
	}
	days := 30
	if v := c.Query("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return credvault.Errorf(credvault.EINVALID, "query parameter \"days\" must be a number from 1 to %d", credvault.StatsDays)
		}
		days = n
	}
	counts, since, err := s.cfg.Services.Integrations.IntegrationUsage(c.UserContext(), pathID(c), days)
	if err != nil {
		if credvault.ErrorCode(err) == credvault.EINVALID {
			return credvault.Errorf(credvault.EINVALID, "query parameter \"days\" must be a number from 1 to %d", credvault.StatsDays)
		}
		return err
	}
	byDay := map[string]credvault.KeyDayCount{}
	for _, d := range counts {
		byDay[d.Day.UTC().Format("2006-01-02")] = d
	}
	out := make([]usageDay, 0, days)
	total := usageDay{ByReason: map[string]int64{}}
	for i := 0; i < days; i++ {
		day := since.AddDate(0, 0, i).Format("2006-01-02")
		d := byDay[day]
		u := usageDay{Day: day, Valid: d.Valid, RateLimited: d.RateLimited, Refused: d.Refused, ByReason: refusedByReason(d)}
		out = append(out, u)
		total.Valid, total.RateLimited, total.Refused = total.Valid+u.Valid, total.RateLimited+u.RateLimited, total.Refused+u.Refused
		for k, n := range u.ByReason {
			total.ByReason[k] += n
		}
	}
	return c.JSON(fiber.Map{"integration_id": pathID(c), "days": out, "total": fiber.Map{
		"valid": total.Valid, "rate_limited": total.RateLimited, "refused": total.Refused, "refused_by_reason": total.ByReason}})
}

// refusedByReason names a day's refusals by the API's error codes.
func refusedByReason(d credvault.KeyDayCount) map[string]int64 {
	return map[string]int64{
		"revoked_api_key": d.Revoked, "expired_api_key": d.Expired,
		"api_key_disabled": d.KeyDisabled, "integration_disabled": d.IntegrationDisabled,
	}
}

// handleAPIKeyDisable and handleAPIKeyEnable are POST
// /v1/api-keys/{id}/disable|enable: actions, like revoke, since they
// reach every instance's cache and enabling widens a key (PATCH only
// narrows).
func (s *Server) handleAPIKeyDisable(c *fiber.Ctx) error { return s.switchAPIKey(c, false) }

func (s *Server) handleAPIKeyEnable(c *fiber.Ctx) error { return s.switchAPIKey(c, true) }

func (s *Server) switchAPIKey(c *fiber.Ctx, enabled bool) error {
	if len(c.Body()) > 0 {
		var none struct{}
		if err := decodeBody(c, &none); err != nil {
			return err
		}
	}
	k, err := s.cfg.Services.Keys.SetAPIKeyEnabled(c.UserContext(), pathID(c), enabled)
	if err != nil {
		return err
	}
	return c.JSON(keyResponse(k, credvault.Secret{}))
}
