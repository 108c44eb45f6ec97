package httpapi

import (
	"github.com/gofiber/fiber/v2"
)

// routes is the whole API surface in one list, in the order of
// api/openapi.yaml.
func (s *Server) routes() {
	s.app.Use(s.requestIDMiddleware)
	s.app.Use(s.recoverMiddleware)
	s.app.Use(s.observeMiddleware)

	s.app.Get("/healthz", s.handleHealthz)
	s.app.Get("/readyz", s.handleReadyz)
	s.app.Get("/metrics", s.handleMetrics())

	if s.cfg.testRoutes != nil {
		s.cfg.testRoutes(s.app)
	}
	// Anything else: the JSON 404 of the error handler.
	s.app.Use(func(c *fiber.Ctx) error { return fiber.ErrNotFound })
}
