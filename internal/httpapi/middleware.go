package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

const (
	headerRequestID = "X-Request-Id"
	unmatchedRoute  = "unmatched"
)

// setRequestID gives every request an id: the caller's X-Request-Id
// when it is short and plain (so that a platform can trace a call across
// services), else a fresh random one. It is echoed in the response header,
// the error body and every log line about the request.
//
// The id lives in the response header only; requestID reads it back where
// it is needed (errors, logs, audit), so a request that needs none of them
// costs no allocation for it.
func setRequestID(c *fiber.Ctx) {
	if in := c.Request().Header.Peek(headerRequestID); plainID(in) {
		c.Response().Header.SetCanonical(headerRequestIDName, in)
	} else {
		var buf [32]byte
		c.Response().Header.SetCanonical(headerRequestIDName, appendRequestID(buf[:0]))
	}
}

// front is the middleware in front of every route: setRequestID, then
// recoverFrom around observe around routeGuard, which passes the request
// on. They are one Fiber middleware, not four: each app.Use layer costs
// Fiber a lookup of the route stack and a match per request (issue 24).
func (s *Server) front(c *fiber.Ctx) error {
	setRequestID(c)
	return s.recoverFrom(c)
}

// headerRequestIDName is headerRequestID as the canonical bytes fasthttp
// sets without normalizing them again.
var headerRequestIDName = []byte(headerRequestID)

func plainID(id []byte) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_' || b == '.') {
			return false
		}
	}
	return true
}

// requestIDs are a random per-process prefix and a counter: unique, cheap
// on the hot path (no system call per request), and not guessable from
// another process's ids.
var (
	requestIDPrefix = func() string {
		var b [6]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}()
	requestIDCounter atomic.Uint64
)

func appendRequestID(b []byte) []byte {
	b = append(b, requestIDPrefix...)
	return strconv.AppendUint(append(b, '-'), requestIDCounter.Add(1), 16)
}

// requestID returns the id of the request, creating one for requests that
// failed before the middleware ran (such as an oversized body).
func requestID(c *fiber.Ctx) string {
	if id := c.Response().Header.Peek(headerRequestID); len(id) > 0 {
		return string(id)
	}
	var buf [32]byte
	id := appendRequestID(buf[:0])
	c.Response().Header.SetCanonical(headerRequestIDName, id)
	return string(id)
}

// routeLocal holds the *tableRoute routeGuard matched for the request.
const routeLocal = "credvault.route"

// routeOf is the matched route template ("/v1/users/:id"), never the raw
// path, so that ids and whatever else a client puts in a URL stay out of
// metric labels and logs. It is the template routeGuard matched: Fiber's
// own c.Route() is the middleware that answered, so a request refused by
// the authentication of the /v1 group would be labelled "/v1".
func routeOf(c *fiber.Ctx) string {
	return routeName(c, matchedRoute(c))
}

// matchedRoute is the *tableRoute routeGuard matched, nil when none.
func matchedRoute(c *fiber.Ctx) *tableRoute {
	r, _ := c.Locals(routeLocal).(*tableRoute)
	return r
}

// routeName is routeOf given matchedRoute's answer.
func routeName(c *fiber.Ctx, tr *tableRoute) string {
	if tr != nil {
		return tr.path
	}
	r := c.Route()
	if r == nil || r.Path == "" || r.Path == "/" && c.Path() != "/" {
		return unmatchedRoute
	}
	return r.Path
}

// recoverFrom turns a panic in observe (and what it calls) into a 500
// with the request id, logging the stack (which holds code locations, not
// request data).
func (s *Server) recoverFrom(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in handler", "request_id", requestID(c), "route", routeOf(c),
				"panic", fmt.Sprintf("%T", r), "stack", string(debug.Stack()))
			err = fmt.Errorf("panic in handler: %T", r)
		}
	}()
	return s.observe(c)
}

// observe records the request in the metrics and writes one access log
// line: method, route template, status, duration, request id. Query
// strings and headers are never logged: they may carry keys. The clock is
// read here, through fasthttp's request time (LazyRequestTime: the
// server reads it on the first call, not for every request).
func (s *Server) observe(c *fiber.Ctx) error {
	start := c.Context().Time()
	if start.IsZero() { // a RequestCtx served outside a fasthttp Server
		start = time.Now()
	}
	err := s.routeGuard(c)
	if err != nil {
		// Render now so that the status below is the one the client gets.
		if herr := s.app.ErrorHandler(c, err); herr != nil {
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	elapsed := time.Since(start)
	status := c.Response().StatusCode()
	tr := matchedRoute(c)
	route := routeName(c, tr)
	method := methodLabel(c.Method())
	var slots *seriesSlots
	if tr != nil {
		slots = &tr.series
	}
	s.metrics.observe(method, route, status, elapsed, slots)
	if s.log.Enabled(c.UserContext(), slog.LevelDebug) { // spare the hot path the attribute boxing
		attrs := []any{"request_id", requestID(c), "method", method, "route", route,
			"status", status, "duration_ms", float64(elapsed.Microseconds()) / 1000, "client_ip", c.IP()}
		if p := credvault.PrincipalFrom(c.UserContext()); p != nil {
			attrs = append(attrs, "key_id", p.KeyID, "org_id", p.OrgID)
		}
		s.log.Debug("http request", attrs...)
	}
	return nil
}

// methodLabel maps a request method to a constant string: Fiber's Method()
// points into a buffer that is reused for the next request, and metric
// labels are kept for the life of the process.
func methodLabel(m string) string {
	for _, known := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		if m == known {
			return known
		}
	}
	return "OTHER"
}
