package httpapi

import (
	"log/slog"
	"sync"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/time/rate"

	"credvault/internal/credvault"
)

// Refusal log lines are rate-limited: at most refusalLogRate lines per
// second on average, in bursts of up to refusalLogBurst. A flood of bad
// keys therefore writes at most 5 lines a second (432,000 a day, about
// 150 MB at some 350 bytes a line) however many requests it sends; the
// lines left out are counted in the next line written
// ("suppressed") and in credvault_refusal_log_lines_suppressed_total.
const (
	refusalLogRate  = 5
	refusalLogBurst = 50
)

// refusedKey is what the auth layer learnt about the key of a request it
// refused, kept in the request's Locals for the refusal log line.
type refusedKey struct {
	id, orgID, display string
}

const refusedKeyLocal = "credvault.refused_key"

// refusalLog writes one info line per refused request (401, 403, 429 and
// egress_denied), rate-limited.
type refusalLog struct {
	log        *slog.Logger
	limit      *rate.Limiter
	mu         sync.Mutex
	suppressed int
	onDrop     func(n int)
}

func newRefusalLog(log *slog.Logger, onDrop func(int)) *refusalLog {
	return &refusalLog{log: log, limit: rate.NewLimiter(refusalLogRate, refusalLogBurst), onDrop: onDrop}
}

// isRefusal reports whether an answer is a refusal worth a line at info:
// the caller was not let in, or a credential was not let out.
func isRefusal(status int, code string) bool {
	return status == fiber.StatusUnauthorized || status == fiber.StatusForbidden ||
		status == fiber.StatusTooManyRequests || code == "egress_denied"
}

// record writes the line for a refused request: the reason (the error
// code), the key (its id, or prefix…last4 of an unknown key; never more),
// the org, the client's address, method, route template and request id.
func (r *refusalLog) record(c *fiber.Ctx, status int, code string) {
	if !r.limit.Allow() {
		r.mu.Lock()
		r.suppressed++
		r.mu.Unlock()
		r.onDrop(1)
		return
	}
	r.mu.Lock()
	suppressed := r.suppressed
	r.suppressed = 0
	r.mu.Unlock()
	attrs := []any{"reason", code, "status", status, "client_ip", c.IP(), "method", methodLabel(c.Method()),
		"route", routeOf(c), "request_id", requestID(c)}
	if k, ok := c.Locals(refusedKeyLocal).(*refusedKey); ok {
		if k.id != "" {
			attrs = append(attrs, "key_id", k.id)
		}
		if k.display != "" {
			attrs = append(attrs, "key", k.display)
		}
		if k.orgID != "" {
			attrs = append(attrs, "org_id", k.orgID)
		}
	} else if p := credvault.PrincipalFrom(c.UserContext()); p != nil {
		attrs = append(attrs, "key_id", p.KeyID, "org_id", p.OrgID)
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	r.log.Info("request refused", attrs...)
}

// noteRefusedKey keeps what is known of a refused request's key for its
// log line: the key's id and org once it was found, else for a
// well-formed key only its display form (prefix…last4). Only refusals pay
// for it.
func (s *Server) noteRefusedKey(c *fiber.Ctx, v credvault.Verification, presented string) {
	rk := &refusedKey{}
	switch {
	case v.Key != nil:
		rk.id, rk.orgID = v.Key.ID, v.Key.OrgID
	case v.Code == credvault.VerifyNotFound:
		rk.display = displayOf(presented)
	}
	c.Locals(refusedKeyLocal, rk)
}

// displayOf is "prefix_mode_…last4" of a well-formed key, the form
// listings show; "" for anything else.
func displayOf(key string) string {
	// <prefix>_<mode>_<random>_<checksum>: keep up to the second "_".
	n := 0
	for i := 0; i < len(key); i++ {
		if key[i] == '_' {
			if n++; n == 2 {
				if len(key) < i+1+8 {
					return ""
				}
				return key[:i] + "_…" + key[len(key)-4:]
			}
		}
	}
	return ""
}
