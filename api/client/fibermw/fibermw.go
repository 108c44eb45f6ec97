// Package fibermw authenticates the inbound requests of a Fiber v2
// application through credvault, with the cache and answers of
// client.Authenticator. It lives apart from api/client so that a service
// that only calls credvault does not link Fiber and fasthttp.
package fibermw

import (
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"credvault/api/client"
)

// LocalsKey is the c.Locals key under which New's handler stores the
// caller's client.Identity (also in c.UserContext(), for
// client.IdentityFrom).
const LocalsKey = "credvault.identity"

// New returns Fiber middleware: a request credvault accepts reaches the
// next handler with its Identity in c.Locals(LocalsKey) and the user
// context; any other gets credvault's status (401, 403, 429, or 503
// auth_unavailable), JSON body and WWW-Authenticate / Retry-After /
// RateLimit-* headers.
func New(a *client.Authenticator) fiber.Handler {
	return func(c *fiber.Ctx) error {
		h := http.Header{}
		for _, name := range a.HeaderNames() {
			if v := c.Get(name); v != "" {
				h.Set(name, strings.Clone(v)) // Fiber reuses the buffer behind v
			}
		}
		id, ref := a.Authenticate(c.UserContext(), h)
		if ref == nil {
			c.Locals(LocalsKey, id)
			c.SetUserContext(client.WithIdentity(c.UserContext(), id))
			return c.Next()
		}
		for k, vs := range ref.Header {
			for _, s := range vs {
				c.Set(k, s)
			}
		}
		return c.Status(ref.Status).Send(ref.Body)
	}
}
