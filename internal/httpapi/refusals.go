package httpapi

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// Refusal log lines are rate-limited to refusalLogPerSecond lines in any
// one second of the clock. A flood of bad keys therefore writes at most 10
// lines a second (864,000 a day, about 300 MB at some 350 bytes a line)
// however many requests it sends; the lines left out are counted in the
// next line written ("suppressed") and in
// credvault_refusal_log_lines_suppressed_total. The check is two atomic
// operations, so a flood does not queue on a lock either.
const refusalLogPerSecond = 10

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
	now        func() time.Time
	second     atomic.Int64 // the clock second the count is for
	count      atomic.Int64 // lines let through (or tried) in that second
	suppressed atomic.Int64 // lines left out since the last line written
	onDrop     func(n int)
	// counter, when set, is told every refusal (before the line limit): the
	// org and key it was for, and whether it was a 429. It only counts in
	// memory (events.Counter).
	counter func(orgID, keyID string, rateLimited bool)
}

func newRefusalLog(log *slog.Logger, onDrop func(int)) *refusalLog {
	return &refusalLog{log: log, now: time.Now, onDrop: onDrop}
}

// allow reports whether one more line fits in the current second. A race
// at the turn of a second can let a few extra lines through; it never
// blocks.
func (r *refusalLog) allow() bool {
	sec := r.now().Unix()
	if cur := r.second.Load(); cur != sec && r.second.CompareAndSwap(cur, sec) {
		r.count.Store(0)
	}
	return r.count.Add(1) <= refusalLogPerSecond
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
	if r.counter != nil {
		if k, ok := c.Locals(refusedKeyLocal).(*refusedKey); ok {
			r.counter(k.orgID, k.id, status == fiber.StatusTooManyRequests)
		} else if p := credvault.PrincipalFrom(c.UserContext()); p != nil {
			r.counter(p.OrgID, p.KeyID, status == fiber.StatusTooManyRequests)
		}
	}
	if !r.allow() {
		r.suppressed.Add(1)
		r.onDrop(1)
		return
	}
	suppressed := r.suppressed.Swap(0)
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
// listings show, and "jwt_…last4" of a JWT key (whose base64url holds
// underscores anywhere: cutting at one would log most of the token, whose
// signature anyone can check against the JWKS); "" for anything else.
func displayOf(key string) string {
	if credvault.LooksLikeJWS(key) {
		return "jwt_…" + key[len(key)-4:]
	}
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
