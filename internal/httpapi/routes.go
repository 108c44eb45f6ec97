package httpapi

import (
	"github.com/gofiber/fiber/v2"
)

// routes is the whole API surface in one list, in the order of
// api/openapi.yaml.
func (s *Server) routes() {
	// The request id, panic recovery, metrics and access log, and the
	// route guard (404 and 405 before authentication; s.known is set
	// below), in that order, as one middleware.
	s.app.Use(s.front)

	s.app.Get("/livez", s.handleHealthz)
	s.app.Get("/healthz", s.handleHealthz)
	s.app.Get("/readyz", s.handleReadyz)
	s.app.Get("/metrics", s.handleMetrics())
	s.app.Get("/.well-known/jwks.json", s.handleJWKS)
	s.app.Get("/oauth/callback", s.handleOAuthCallback)

	if s.cfg.Services.Verifier != nil {
		v1 := s.app.Group("/v1")
		// These two authenticate by themselves: verify has a public
		// endpoint case, and forward-auth checks the client's own key.
		v1.Post("/api-keys/verify", s.handleAPIKeyVerify)
		v1.Get("/auth/check", s.handleAuthCheck)

		v1.Use(s.authenticate)
		v1.Get("/whoami", s.handleWhoami)

		v1.Post("/users", s.handleUserCreate)
		v1.Get("/users", s.handleUserList)
		v1.Get("/users/:id", s.handleUserGet)
		v1.Patch("/users/:id", s.handleUserUpdate)
		v1.Delete("/users/:id", s.handleUserDelete)
		v1.Post("/users/:id/sign-in-links", s.handleSignInLinkCreate)

		v1.Post("/api-keys", s.handleAPIKeyCreate)
		v1.Get("/api-keys", s.handleAPIKeyList)
		v1.Get("/api-keys/revocations", s.handleRevocations)
		v1.Get("/api-keys/:id", s.handleAPIKeyGet)
		v1.Patch("/api-keys/:id", s.handleAPIKeyUpdate)
		v1.Post("/api-keys/:id/roll", s.handleAPIKeyRoll)
		v1.Post("/api-keys/:id/revoke", s.handleAPIKeyRevoke)
		v1.Post("/api-keys/:id/disable", s.handleAPIKeyDisable)
		v1.Post("/api-keys/:id/enable", s.handleAPIKeyEnable)

		v1.Post("/integrations", s.handleIntegrationCreate)
		v1.Get("/integrations", s.handleIntegrationList)
		v1.Get("/integrations/:id", s.handleIntegrationGet)
		v1.Patch("/integrations/:id", s.handleIntegrationUpdate)
		v1.Delete("/integrations/:id", s.handleIntegrationDelete)
		v1.Get("/integrations/:id/usage", s.handleIntegrationUsage)

		v1.Post("/endpoints", s.handleEndpointCreate)
		v1.Get("/endpoints", s.handleEndpointList)
		v1.Patch("/endpoints/:id", s.handleEndpointUpdate)
		v1.Delete("/endpoints/:id", s.handleEndpointDelete)

		v1.Get("/services", s.handleServiceList)
		v1.Post("/credentials", s.handleCredentialCreate)
		v1.Get("/credentials", s.handleCredentialList)
		v1.Get("/credentials/:id", s.handleCredentialGet)
		v1.Patch("/credentials/:id", s.handleCredentialUpdate)
		v1.Delete("/credentials/:id", s.handleCredentialDelete)
		v1.Put("/credentials/:id/sharing", s.handleCredentialSharing)
		v1.Get("/credentials/:id/usage", s.handleCredentialUsage)
		v1.Post("/credentials/:id/test", s.handleCredentialTest)
		v1.Post("/credentials/:id/reconnect", s.handleCredentialReconnect)
		v1.Post("/oauth-apps", s.handleOAuthAppCreate)
		v1.Get("/oauth-apps", s.handleOAuthAppList)
		v1.Get("/oauth-apps/:id", s.handleOAuthAppGet)
		v1.Patch("/oauth-apps/:id", s.handleOAuthAppUpdate)
		v1.Delete("/oauth-apps/:id", s.handleOAuthAppDelete)
		for _, m := range proxyMethods {
			v1.Add(m, "/proxy/:id/*", s.handleProxy)
		}
		v1.Post("/inject", s.handleInject)

		v1.Get("/credentials/:id/monitor", s.handleMonitorGet)
		v1.Put("/credentials/:id/monitor", s.handleMonitorPut)
		v1.Get("/credentials/:id/health", s.handleHealthHistory)

		v1.Post("/webhooks", s.handleWebhookCreate)
		v1.Get("/webhooks", s.handleWebhookList)
		v1.Get("/webhooks/:id", s.handleWebhookGet)
		v1.Patch("/webhooks/:id", s.handleWebhookUpdate)
		v1.Delete("/webhooks/:id", s.handleWebhookDelete)
		v1.Get("/webhooks/:id/deliveries", s.handleWebhookDeliveries)
		v1.Post("/webhooks/:id/test", s.handleWebhookTest)
		v1.Post("/webhooks/:id/deliveries/:delivery_id/redeliver", s.handleWebhookRedeliver)

		v1.Get("/audit", s.handleAuditList)
		v1.Post("/admin/rewrap", s.handleRewrap)
	}

	s.pages = pagePaths{}
	s.pages.add("/oauth/callback")
	if s.cfg.Console != nil {
		api := map[string]bool{}
		for _, r := range s.app.GetRoutes(true) {
			api[r.Path] = true
		}
		s.cfg.Console.Mount(s.app)
		for _, r := range s.app.GetRoutes(true) {
			if !api[r.Path] {
				s.pages.add(r.Path)
			}
		}
	}
	if s.cfg.testRoutes != nil {
		s.cfg.testRoutes(s.app)
	}
	s.known = newRouteTable(s.app)
	// Anything else: the JSON 404 of the error handler.
	s.app.Use(func(c *fiber.Ctx) error { return fiber.ErrNotFound })
}
