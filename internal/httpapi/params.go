package httpapi

import (
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// listResponse is the shape of every listing: a page of items and the
// cursor of the next page (null on the last one).
type listResponse[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// pageParams reads ?cursor=&limit= (limit 1..500, default 100) of a
// newest-first listing, after checking that the query holds no parameter
// but those and the listing's own (extra). Errors: EINVALID naming the
// parameter.
func pageParams(c *fiber.Ctx, extra ...string) (credvault.Page, error) {
	if err := knownParams(c, extra...); err != nil {
		return credvault.Page{}, err
	}
	p := credvault.Page{Cursor: c.Query("cursor"), Limit: 100}
	if _, ok := credvault.ParseKeysetCursor(p.Cursor); p.Cursor != "" && !ok {
		return p, credvault.Errorf(credvault.EINVALID, "query parameter \"cursor\" must be the next_cursor of a previous page")
	}
	n, err := limitParam(c)
	p.Limit = n
	p.Cursor = strings.Clone(p.Cursor)
	return p, err
}

// limitParam reads ?limit= (1..500, default 100).
func limitParam(c *fiber.Ctx) (int, error) {
	v := c.Query("limit")
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 500 {
		return 100, credvault.Errorf(credvault.EINVALID, "query parameter \"limit\" must be a number from 1 to 500")
	}
	return n, nil
}

// knownParams refuses a query parameter a listing does not know, so that
// a mistyped filter is an error and not a silently unfiltered list.
// cursor and limit are always known. Errors: EINVALID naming the first
// unknown parameter and listing the accepted ones.
func knownParams(c *fiber.Ctx, names ...string) error {
	var unknown string
	for k := range c.Context().QueryArgs().All() {
		if unknown != "" {
			continue
		}
		name := string(k)
		if name != "cursor" && name != "limit" && !slices.Contains(names, name) {
			unknown = name
		}
	}
	if unknown == "" {
		return nil
	}
	accepted := append(slices.Clone(names), "cursor", "limit")
	return credvault.Errorf(credvault.EINVALID, "unknown query parameter %q (accepted: %s)", truncate(unknown, 64), strings.Join(accepted, ", "))
}

// truncate cuts s to at most n bytes (on a rune boundary), for echoing
// caller input in a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// page builds a listResponse; the next cursor is made from the last item
// when the page is full.
func page[T any](items []T, limit int, cursor func(T) string) listResponse[T] {
	r := listResponse[T]{Data: items}
	if r.Data == nil {
		r.Data = []T{}
	}
	if len(items) == limit && limit > 0 {
		next := cursor(items[len(items)-1])
		r.NextCursor = &next
	}
	return r
}

// keysetOf is the cursor after an item of a newest-first listing.
func keysetOf(createdAt time.Time, id string) string {
	return credvault.KeysetCursor{CreatedAt: createdAt, ID: id}.Encode()
}

// pathID returns the :id path parameter, copied (Fiber reuses its buffers).
func pathID(c *fiber.Ctx) string { return strings.Clone(c.Params("id")) }

func looksLikeUUID(s string) bool { return credvault.IsUUID(s) }
