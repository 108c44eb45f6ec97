package httpapi

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// monitorRequest is PUT /v1/credentials/{id}/monitor: the whole monitor,
// so both fields are required (null or 0 turns one off).
type monitorRequest struct {
	IntervalSeconds *int                `json:"interval_seconds" validate:"required"`
	ValueExpiresAt  optional[time.Time] `json:"value_expires_at"`
}

func (s *Server) handleMonitorGet(c *fiber.Ctx) error {
	m, err := s.cfg.Services.Monitors.FindMonitor(c.UserContext(), pathID(c))
	if err != nil {
		return err
	}
	return c.JSON(m)
}

func (s *Server) handleMonitorPut(c *fiber.Ctx) error {
	var in monitorRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	if !in.ValueExpiresAt.Set {
		return credvault.Errorf(credvault.EINVALID, "field \"value_expires_at\" is required (null for no expiry)")
	}
	mi := credvault.MonitorInput{IntervalSeconds: *in.IntervalSeconds}
	if !in.ValueExpiresAt.Null {
		mi.ValueExpiresAt = &in.ValueExpiresAt.V
	}
	m, err := s.cfg.Services.Monitors.SetMonitor(c.UserContext(), pathID(c), mi)
	if err != nil {
		return err
	}
	return c.JSON(m)
}

func (s *Server) handleHealthHistory(c *fiber.Ctx) error {
	f, err := int64Page(c)
	if err != nil {
		return err
	}
	checks, err := s.cfg.Services.Monitors.FindHealthChecks(c.UserContext(), pathID(c), f.cursor, f.limit)
	if err != nil {
		return err
	}
	return c.JSON(page(checks, f.limit, func(h *credvault.HealthCheck) string { return strconv.FormatInt(h.ID, 10) }))
}
