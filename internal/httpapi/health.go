package httpapi

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// readinessTimeout bounds each dependency check so that /readyz answers
// promptly even when a dependency hangs.
const readinessTimeout = 2 * time.Second

// handleHealthz answers 200 while the process runs: the liveness probe.
func (s *Server) handleHealthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

type readyBody struct {
	Status    string            `json:"status"`
	Checks    map[string]string `json:"checks"`
	Error     *errorDetail      `json:"error,omitempty"`
	RequestID string            `json:"request_id,omitempty"`
}

// handleReadyz checks every dependency at once, each with its own timeout:
// 200 when all answer, else 503 naming those that do not. It holds no
// state, so it turns green again as soon as a dependency is back.
func (s *Server) handleReadyz(c *fiber.Ctx) error {
	checks := s.cfg.Readiness
	results := make([]error, len(checks))
	// UserContext is not safe to call from several goroutines; take it once.
	parent := c.UserContext()
	var wg sync.WaitGroup
	for i, chk := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(parent, readinessTimeout)
			defer cancel()
			results[i] = chk.Check(ctx)
		}()
	}
	wg.Wait()

	body := readyBody{Status: "ready", Checks: map[string]string{}}
	var down []string
	for i, chk := range checks {
		if results[i] != nil {
			down = append(down, chk.Name)
			body.Checks[chk.Name] = credvault.ErrorMessage(results[i])
			s.log.Warn("readiness: dependency down", "dependency", chk.Name, "error", results[i].Error())
			continue
		}
		body.Checks[chk.Name] = "ok"
	}
	if len(down) == 0 {
		return c.JSON(body)
	}
	sort.Strings(down)
	body.Status = "unavailable"
	body.Error = &errorDetail{Code: "not_ready", Message: "not ready: " + strings.Join(down, ", ") + " unavailable"}
	body.RequestID = requestID(c)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusServiceUnavailable).JSON(body)
}
