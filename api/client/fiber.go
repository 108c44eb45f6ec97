package client

import (
	"context"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// FiberLocalsKey is the c.Locals key under which FiberMiddleware stores
// the caller's Identity (also in c.UserContext(), for IdentityFrom).
const FiberLocalsKey = "credvault.identity"

// FiberMiddleware is Middleware for Fiber v2 applications, with the same
// cache, answers and error statuses.
func (a *Authenticator) FiberMiddleware() fiber.Handler {
	return func(c *fiber.Ctx) error {
		h := http.Header{}
		for _, name := range a.keyHeaders() {
			if v := c.Get(name); v != "" {
				h.Set(name, strings.Clone(v)) // Fiber reuses the buffer behind v
			}
		}
		v := a.check(c.UserContext(), h)
		if v.ok {
			c.Locals(FiberLocalsKey, v.id)
			c.SetUserContext(context.WithValue(c.UserContext(), identityKey{}, v.id))
			return c.Next()
		}
		for k, vs := range v.header {
			for _, s := range vs {
				c.Set(k, s)
			}
		}
		status := v.status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		return c.Status(status).Send(v.body)
	}
}
