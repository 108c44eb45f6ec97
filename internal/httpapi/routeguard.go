package httpapi

import (
	"sort"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// routeTable knows the API's route templates and the methods each one
// takes, so that a request for a route that does not exist is answered
// 404 not_found, and a known route asked with another method 405 with
// Allow (RFC 9110 §15.5.6), before authentication: which routes exist is
// public (api/openapi.yaml), so saying so reveals nothing, while whatever
// a route holds stays behind the key. The table mirrors Fiber's matching
// (case-insensitive, trailing slash ignored); where it could differ it
// errs towards "known", which sends the request on to authentication.
type routeTable struct {
	routes []tableRoute
	// exact holds lookup's answer for each method of each template that
	// has no parameter, asked with the template itself as the path (the
	// path every gateway sends to /v1/auth/check), so that those are
	// answered with one map read instead of a walk of the table.
	exact map[methodPath]*tableRoute
}

type methodPath struct{ method, path string }

type tableRoute struct {
	path     string   // the template as registered, "/v1/users/:id"
	segments []string // "v1", "users", ":id"; a final "*" takes the rest
	allow    string   // e.g. "GET, HEAD, PATCH"
	methods  map[string]bool
	series   seriesSlots // this route's metric series, by method and status
}

// newRouteTable builds the table from the routes registered on app (not
// its middleware).
func newRouteTable(app *fiber.App) *routeTable {
	byPath := map[string]map[string]bool{}
	var order []string
	for _, r := range app.GetRoutes(true) {
		if byPath[r.Path] == nil {
			byPath[r.Path] = map[string]bool{}
			order = append(order, r.Path)
		}
		byPath[r.Path][r.Method] = true
	}
	t := &routeTable{}
	for _, p := range order {
		methods := make([]string, 0, len(byPath[p]))
		for m := range byPath[p] {
			methods = append(methods, m)
		}
		sort.Strings(methods)
		t.routes = append(t.routes, tableRoute{path: p, segments: splitPath(p), allow: strings.Join(methods, ", "), methods: byPath[p]})
	}
	t.exact = map[methodPath]*tableRoute{}
	for i := range t.routes {
		r := &t.routes[i]
		if strings.ContainsAny(r.path, ":*") {
			continue
		}
		for m := range r.methods {
			if found, _, _ := t.walk(m, r.path); found != nil {
				t.exact[methodPath{m, r.path}] = found
			}
		}
	}
	return t
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// lookup returns the first route template (in the order Fiber tries
// them) that matches path and takes method, or nil; known reports whether
// any template matches path, and allow lists the methods of those that
// do. It allocates only for a 405.
func (t *routeTable) lookup(method, path string) (route *tableRoute, known bool, allow string) {
	if r := t.exact[methodPath{method, path}]; r != nil {
		return r, true, ""
	}
	return t.walk(method, path)
}

// walk is lookup through the whole table.
func (t *routeTable) walk(method, path string) (route *tableRoute, known bool, allow string) {
	var allows []string
	for i := range t.routes {
		r := &t.routes[i]
		if !r.matches(path) {
			continue
		}
		known = true
		if r.methods[method] {
			return r, true, ""
		}
		allows = append(allows, r.allow)
	}
	return nil, known, strings.Join(allows, ", ")
}

// matches walks path segment by segment against the template, comparing
// literals case-insensitively; a trailing slash and empty segments are
// ignored, as Fiber does.
func (r *tableRoute) matches(path string) bool {
	rest := path
	for _, want := range r.segments {
		if want == "*" {
			return true // the rest, possibly nothing
		}
		var seg string
		if seg, rest = nextSegment(rest); seg == "" {
			return false
		}
		if want[0] != ':' && !strings.EqualFold(want, seg) {
			return false
		}
	}
	seg, _ := nextSegment(rest)
	return seg == ""
}

// nextSegment returns the first non-empty segment of p and what follows it.
func nextSegment(p string) (seg, rest string) {
	p = strings.TrimLeft(p, "/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i:]
	}
	return p, ""
}

// routeGuard answers 404 for a path no route has and 405 (with Allow) for
// a method a known path does not take; everything else goes on, with its
// route template kept for routeOf.
func (s *Server) routeGuard(c *fiber.Ctx) error {
	route, known, allow := s.known.lookup(c.Method(), c.Path())
	switch {
	case route != nil:
		c.Locals(routeLocal, route)
		return c.Next()
	case !known:
		return fiber.ErrNotFound
	}
	c.Set(fiber.HeaderAllow, allow)
	return fiber.ErrMethodNotAllowed
}
