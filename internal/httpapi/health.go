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

// readinessTimeout bounds each check so that /readyz answers promptly
// even when a dependency hangs. A degradable check gets less in the
// default form: it cannot turn the answer to 503, and a load balancer's
// check must not time out waiting for it (deploy/haproxy.cfg allows 2 s).
const (
	readinessTimeout  = 2 * time.Second
	degradableTimeout = 750 * time.Millisecond
)

// handleHealthz answers 200 while the process runs: the liveness probe
// (/livez, and /healthz, its older name).
func (s *Server) handleHealthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

type readyBody struct {
	Status    string            `json:"status"`
	Checks    map[string]string `json:"checks"`
	Degraded  []string          `json:"degraded"`
	Error     *errorDetail      `json:"error,omitempty"`
	RequestID string            `json:"request_id,omitempty"`
}

// handleReadyz runs every check at once, each with its own timeout. It
// answers 200 "ready" when all pass; 200 "degraded" with the failing
// degradable checks (dependencies the hot paths do without, answering from
// caches) listed in "degraded"; 503 "unavailable" when a check the
// instance cannot serve without fails, or with ?strict=1 when any check
// fails (deploy gates). It holds no state, so it turns green again as soon
// as a dependency is back.
func (s *Server) handleReadyz(c *fiber.Ctx) error {
	var strict bool
	switch v := c.Query("strict"); v {
	case "", "0", "false":
	case "1", "true":
		strict = true
	default:
		return credvault.Errorf(credvault.EINVALID, `query parameter "strict" must be 1, true, 0 or false`)
	}
	checks := s.cfg.Readiness
	results := make([]error, len(checks))
	// UserContext is not safe to call from several goroutines; take it once.
	parent := c.UserContext()
	var wg sync.WaitGroup
	for i, chk := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			limit := readinessTimeout
			if chk.Degradable && !strict {
				limit = degradableTimeout
			}
			ctx, cancel := context.WithTimeout(parent, limit)
			defer cancel()
			results[i] = chk.Check(ctx)
		}()
	}
	wg.Wait()

	body := readyBody{Status: "ready", Checks: map[string]string{}, Degraded: []string{}}
	var down []string
	for i, chk := range checks {
		if results[i] == nil {
			body.Checks[chk.Name] = "ok"
			continue
		}
		body.Checks[chk.Name] = credvault.ErrorMessage(results[i])
		s.log.Warn("readiness: dependency down", "dependency", chk.Name, "error", results[i].Error())
		if chk.Degradable {
			body.Degraded = append(body.Degraded, chk.Name)
		}
		if !chk.Degradable || strict {
			down = append(down, chk.Name)
		}
	}
	sort.Strings(body.Degraded)
	c.Set(fiber.HeaderCacheControl, "no-store")
	if len(down) == 0 {
		if len(body.Degraded) > 0 {
			body.Status = "degraded"
		}
		return c.JSON(body)
	}
	sort.Strings(down)
	body.Status = "unavailable"
	body.Error = &errorDetail{Code: "not_ready", Message: "not ready: " + strings.Join(down, ", ") + " unavailable"}
	body.RequestID = requestID(c)
	c.Set(fiber.HeaderRetryAfter, "1")
	return c.Status(fiber.StatusServiceUnavailable).JSON(body)
}
